// The client's writeback log and the cache rule that keeps local changes
// from being undone by replies that predate them.
#include <gtest/gtest.h>

#include "client/object_cache.h"
#include "client/writeback_log.h"

namespace cohfs {
namespace {

WritebackLog::Op Chmod(uint64_t ino, uint32_t mode, int64_t now_ns) {
  WritebackLog::Op op;
  op.ino = InodeId(ino);
  op.now_ns = now_ns;
  op.setattr.mask = kSetMode;
  op.setattr.mode = mode;
  op.setattr.now_ns = now_ns;
  return op;
}

TEST(WritebackLog, NumbersChangesAndDrainsThemInOrder) {
  WritebackLog log;
  EXPECT_TRUE(log.empty());
  EXPECT_EQ(log.last_seq(), 0u);
  EXPECT_EQ(log.Append(Chmod(5, 0600, 100)), 1u);
  EXPECT_EQ(log.Append(Chmod(6, 0700, 200)), 2u);
  EXPECT_EQ(log.oldest_ns(), 100);
  auto ops = log.Drain();
  ASSERT_EQ(ops.size(), 2u);
  EXPECT_EQ(ops[0].ino, InodeId(5));
  EXPECT_EQ(ops[1].setattr.mode, 0700u);
  EXPECT_TRUE(log.empty());
  // Sequence numbers keep growing across drains.
  EXPECT_EQ(log.Append(Chmod(5, 0644, 300)), 3u);
  EXPECT_EQ(log.oldest_ns(), 300);
}

Attr File(uint64_t ino, uint32_t mode) {
  Attr a;
  a.ino = InodeId(ino);
  a.mode = S_IFREG | mode;
  a.nlink = 1;
  return a;
}

TEST(ObjectCache, LocalChangesNeedExclusive) {
  ObjectCache cache;
  auto change = [](Attr& a) {
    a.mode = S_IFREG | 0600;
    return Status::Ok();
  };
  EXPECT_FALSE(cache.UpdateAttr(InodeId(5), 1, change).has_value());  // unknown
  cache.PutAttr(File(5, 0644), LockMode::kShared, 0);
  EXPECT_FALSE(cache.UpdateAttr(InodeId(5), 1, change).has_value());  // only shared
  cache.PutAttr(File(5, 0644), LockMode::kExclusive, 0);
  auto r = cache.UpdateAttr(InodeId(5), 1, change);
  ASSERT_TRUE(r.has_value() && r->ok());
  EXPECT_EQ((*r)->mode & 07777, 0600u);
  EXPECT_EQ(cache.GetAttr(InodeId(5))->mode & 07777, 0600u);
}

TEST(ObjectCache, ARefusedLocalChangeLeavesTheCacheAlone) {
  ObjectCache cache;
  cache.PutAttr(File(5, 0644), LockMode::kExclusive, 0);
  auto r = cache.UpdateAttr(InodeId(5), 1, [](Attr& a) {
    a.mode = 0;
    return Status::Error(EPERM);
  });
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->errno_value(), EPERM);
  EXPECT_EQ(cache.GetAttr(InodeId(5))->mode & 07777, 0644u);
}

TEST(ObjectCache, RepliesOlderThanALocalChangeDoNotUndoIt) {
  ObjectCache cache;
  cache.PutAttr(File(5, 0644), LockMode::kExclusive, 0);
  ASSERT_TRUE(cache.UpdateAttr(InodeId(5), 3, [](Attr& a) {
    a.mode = S_IFREG | 0600;
    return Status::Ok();
  }));
  // A reply to a request sent before change 3 was shipped: stale.
  cache.PutAttr(File(5, 0644), LockMode::kExclusive, 2);
  EXPECT_EQ(cache.GetAttr(InodeId(5))->mode & 07777, 0600u);
  // A reply to a request sent after it: the server's word.
  cache.PutAttr(File(5, 0640), LockMode::kExclusive, 3);
  EXPECT_EQ(cache.GetAttr(InodeId(5))->mode & 07777, 0640u);
}

TEST(ObjectCache, AReplyForEarlierDataDoesNotShrinkALaterWrite) {
  ObjectCache cache;
  WritebackLog log;
  cache.PutAttr(File(5, 0644), LockMode::kExclusive, log.last_seq());
  uint64_t first_sent = log.last_seq();  // the first MiB goes out (posted)
  cache.NoteLocalWrite(InodeId(5), Caller{}, 2 << 20, 100,
                       log.NoteLocalChange());  // the second is buffered
  Attr server = File(5, 0644);
  server.size = 1 << 20;
  cache.PutAttr(server, LockMode::kExclusive, first_sent);  // the first write's reply
  EXPECT_EQ(cache.GetAttr(InodeId(5))->size, 2u << 20);
  server.size = 2 << 20;
  server.blocks = 4096;
  cache.PutAttr(server, LockMode::kExclusive, log.last_seq());  // the second write's reply
  EXPECT_EQ(cache.GetAttr(InodeId(5))->blocks, 4096u);
}

TEST(ObjectCache, LocalCreatesNeedACompleteExclusiveDirectoryAndSurviveOlderListings) {
  ObjectCache cache;
  Attr dir = File(2, 0755);
  dir.mode = S_IFDIR | 0755;
  auto make = [](Attr& d, Attr& f) {
    f.ino = InodeId(9);
    f.mode = S_IFREG | 0644;
    d.size++;
    return Status::Ok();
  };
  cache.PutAttr(dir, LockMode::kExclusive, 0);
  EXPECT_FALSE(cache.CreateLocally(InodeId(2), "x", 1, make).has_value());  // not complete
  cache.SetDirectory(InodeId(2), {}, 0);
  auto r = cache.CreateLocally(InodeId(2), "x", 1, make);
  ASSERT_TRUE(r.has_value() && r->ok());
  EXPECT_EQ(cache.lock(InodeId(9)), LockMode::kExclusive);
  EXPECT_EQ(cache.GetAttr(InodeId(2))->size, 1u);
  EXPECT_EQ(cache.CreateLocally(InodeId(2), "x", 2, make)->errno_value(), EEXIST);
  // A listing from before the create does not drop the new name.
  cache.SetDirectory(InodeId(2), {}, 0);
  Attr found;
  EXPECT_EQ(cache.Lookup(InodeId(2), "x", &found), ObjectCache::LookupResult::kFound);
  EXPECT_EQ(found.ino, InodeId(9));
}

// A create and the attribute changes of the new inode right after it are one
// group (the server applies them in one WriteBatch); anything else ends it.
TEST(WritebackLog, GroupsACreateWithItsFirstAttributes) {
  WritebackLog log;
  WritebackLog::Op create;
  create.kind = WritebackLog::Op::Kind::kCreate;
  create.ino = InodeId(9);
  log.Append(create);
  log.Append(Chmod(9, 0600, 1));
  log.Append(Chmod(9, 0640, 2));
  log.Append(Chmod(5, 0600, 3));  // another inode: a group of its own
  log.Append(Chmod(9, 0600, 4));  // the group ended
  auto ops = log.Drain();
  ASSERT_EQ(ops.size(), 5u);
  EXPECT_TRUE(ops[0].with_next);
  EXPECT_TRUE(ops[1].with_next);
  EXPECT_FALSE(ops[2].with_next);
  EXPECT_FALSE(ops[3].with_next);
  EXPECT_FALSE(ops[4].with_next);
  // A drain closes the group: a change shipped later stands alone.
  log.Append(create);
  ops = log.Drain();
  log.Append(Chmod(9, 0600, 5));
  EXPECT_FALSE(log.Drain()[0].with_next);
}

TEST(WritebackLog, AGroupIsBounded) {
  WritebackLog log;
  WritebackLog::Op create;
  create.kind = WritebackLog::Op::Kind::kCreate;
  create.ino = InodeId(9);
  log.Append(create);
  for (int i = 0; i < 100; i++) log.Append(Chmod(9, 0600, i));
  auto ops = log.Drain();
  size_t longest = 0, run = 0;
  for (const auto& op : ops) {
    run++;
    if (!op.with_next) longest = std::max(longest, run), run = 0;
  }
  EXPECT_LE(longest, 32u);
  EXPECT_GE(longest, 2u);
}

}  // namespace
}  // namespace cohfs
