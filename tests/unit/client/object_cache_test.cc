// The object cache's coherency bookkeeping: grants that crossed a lock given
// back, the names the kernel was told about, and the LRU bound.
#include "client/object_cache.h"

#include <gtest/gtest.h>

namespace cohfs {
namespace {

Attr Node(uint64_t ino, uint32_t mode = S_IFREG | 0644) {
  Attr a;
  a.ino = InodeId(ino);
  a.mode = mode;
  a.nlink = 1;
  return a;
}

TEST(ObjectCacheCoherency, AGrantInAReplyThatCrossedARecallIsNotBelieved) {
  ObjectCache cache;
  cache.PutAttr(Node(5), LockMode::kExclusive, ObjectCache::ReplyOrder(0, 10));
  cache.Revoke(InodeId(5), LockMode::kShared, /*last_request_id=*/20);
  EXPECT_EQ(cache.lock(InodeId(5)), LockMode::kShared);
  // The reply to request 15 left the server before it saw the downgrade.
  cache.PutAttr(Node(5), LockMode::kExclusive, ObjectCache::ReplyOrder(0, 15));
  EXPECT_EQ(cache.lock(InodeId(5)), LockMode::kShared);
  cache.Revoke(InodeId(5), LockMode::kNone, 21);
  cache.PutAttr(Node(5), LockMode::kShared, ObjectCache::ReplyOrder(0, 21));
  EXPECT_EQ(cache.lock(InodeId(5)), LockMode::kNone);
  EXPECT_FALSE(cache.GetAttr(InodeId(5)).has_value());
  // A request sent after the release: its grant stands.
  cache.PutAttr(Node(5), LockMode::kShared, ObjectCache::ReplyOrder(0, 22));
  EXPECT_EQ(cache.lock(InodeId(5)), LockMode::kShared);
  cache.PruneRevocations(/*oldest_unanswered_id=*/30);
  cache.PutAttr(Node(5), LockMode::kExclusive, ObjectCache::ReplyOrder(0, 12));
  EXPECT_EQ(cache.lock(InodeId(5)), LockMode::kExclusive);  // forgotten once nothing older is out
}

// Found by the simulation (seed 1773): a release voided the grant in the
// reply to request 14; a later recall to SHARED (watermark 15) must not lift
// that cap, or the client believes in SHARED the release gave back.
// Found by the simulation (tests/sim): a read's grant came back after a
// recall, and a stat then answered with the mode from before another client's chmod.
TEST(ObjectCacheCoherency, AGrantWithoutAttributesDoesNotRevalidateStaleOnes) {
  ObjectCache cache;
  cache.PutAttr(Node(5), LockMode::kShared, ObjectCache::ReplyOrder(0, 10));
  cache.Revoke(InodeId(5), LockMode::kNone, /*last_request_id=*/10);
  cache.SetLock(InodeId(5), LockMode::kShared, /*request_id=*/11);  // a read's grant
  EXPECT_EQ(cache.lock(InodeId(5)), LockMode::kShared);
  EXPECT_FALSE(cache.GetAttr(InodeId(5)).has_value());  // the server must be asked
  cache.PutAttr(Node(5, S_IFREG | 0600), LockMode::kShared, ObjectCache::ReplyOrder(0, 12));
  ASSERT_TRUE(cache.GetAttr(InodeId(5)).has_value());
  EXPECT_EQ(cache.GetAttr(InodeId(5))->mode, S_IFREG | 0600u);
  cache.SetLock(InodeId(5), LockMode::kShared, 13);  // held all along: the attributes stay
  EXPECT_TRUE(cache.GetAttr(InodeId(5)).has_value());
}

TEST(ObjectCacheCoherency, ALaterRecallToSharedDoesNotLiftAnEarlierReleasesCap) {
  ObjectCache cache;
  cache.PutAttr(Node(4), LockMode::kShared, ObjectCache::ReplyOrder(0, 10));
  cache.Revoke(InodeId(4), LockMode::kNone, 14);
  cache.Revoke(InodeId(4), LockMode::kShared, 15);
  cache.PutAttr(Node(4), LockMode::kExclusive, ObjectCache::ReplyOrder(0, 14));
  EXPECT_EQ(cache.lock(InodeId(4)), LockMode::kNone);
  cache.PutAttr(Node(4), LockMode::kExclusive, ObjectCache::ReplyOrder(0, 15));
  EXPECT_EQ(cache.lock(InodeId(4)), LockMode::kShared);
}

TEST(ObjectCacheCoherency, ARecallToNoneForgetsADirectorysNamesAndReturnsTheKernels) {
  ObjectCache cache;
  InodeId dir(2);
  cache.PutAttr(Node(2, S_IFDIR | 0755), LockMode::kShared, 0);
  DirEntry e;
  e.name = "a";
  e.attr = Node(7);
  cache.SetDirectory(dir, {e}, 0);
  cache.NoteKernelName(dir, "a");
  cache.NoteKernelName(dir, "missing");  // a negative entry
  Attr found;
  EXPECT_EQ(cache.Lookup(dir, "b", &found), ObjectCache::LookupResult::kNegative);
  auto names = cache.Revoke(dir, LockMode::kNone, 1);
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"a", "missing"}));
  EXPECT_EQ(cache.Lookup(dir, "b", &found), ObjectCache::LookupResult::kUnknown);
  // A listing in a reply that crossed the recall does not make it complete again.
  cache.SetDirectory(dir, {e}, ObjectCache::ReplyOrder(0, 1));
  EXPECT_EQ(cache.Lookup(dir, "b", &found), ObjectCache::LookupResult::kUnknown);
}

// Data written here and not yet sent: a reply (an unlink's) is older than
// its size and times, not than its link count (simulation seed 2566).
TEST(ObjectCacheCoherency, ARepliesLinkCountCountsWhileDataIsHeldBack) {
  ObjectCache cache;
  cache.PutAttr(Node(5), LockMode::kExclusive, ObjectCache::ReplyOrder(0, 10));
  cache.NoteLocalWrite(InodeId(5), Caller{}, 64, /*now_ns=*/1000, /*seq=*/3);
  Attr unlinked = Node(5);
  unlinked.nlink = 0;
  unlinked.ctime_ns = 2000;
  Attr a = cache.PutAttr(unlinked, LockMode::kExclusive, ObjectCache::ReplyOrder(3, 11),
                         /*data_held=*/true);
  EXPECT_EQ(a.nlink, 0u);
  EXPECT_EQ(a.size, 64u);
  EXPECT_EQ(a.mtime_ns, 1000);
  EXPECT_EQ(a.ctime_ns, 2000);
  // Data sent behind after the request left: still only its size and times.
  cache.NoteLocalChange(InodeId(5), 4);
  unlinked.nlink = 3;
  a = cache.PutAttr(unlinked, LockMode::kExclusive, ObjectCache::ReplyOrder(3, 12), false);
  EXPECT_EQ(a.nlink, 3u);
  EXPECT_EQ(a.size, 64u);
}

TEST(ObjectCacheCoherency, LocksOverTheBoundAreTheLeastRecentlyUsed) {
  ObjectCache cache;
  for (uint64_t ino = 10; ino < 42; ino++) cache.PutAttr(Node(ino), LockMode::kShared, 0);
  EXPECT_TRUE(cache.LocksOverBound(32).empty());
  for (uint64_t ino = 10; ino < 42; ino += 2) ASSERT_TRUE(cache.GetAttr(InodeId(ino)));  // used
  auto victims = cache.LocksOverBound(16);
  ASSERT_EQ(victims.size(), 17u);  // the 16 over the bound and 1/16 of it more
  for (InodeId v : victims) EXPECT_TRUE(v.value % 2 == 1 || v.value == 10) << v.value;
}

}  // namespace
}  // namespace cohfs
