// ObjectCache's local namespace changes: when they may run locally (locks and
// complete listings), and what they leave in the cache. The POSIX rules are
// the caller's (FsClient), so these tests pass rules that only record.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "client/object_cache.h"

namespace cohfs {
namespace {

constexpr InodeId kDir(10), kOther(11);

class LocalNamespace : public ::testing::Test {
 protected:
  LocalNamespace() {
    for (InodeId d : {kDir, kOther}) {
      Attr a;
      a.ino = d;
      a.mode = S_IFDIR | 0755;
      a.nlink = 2;
      cache_.PutAttr(a, LockMode::kExclusive, ObjectCache::ReplyOrder(0, 1));
      cache_.SetDirectory(d, {}, ObjectCache::ReplyOrder(0, 1));
    }
  }
  // Makes `name` in `dir` as inode `ino` of `mode`.
  InodeId Make(InodeId dir, const std::string& name, uint64_t ino, uint32_t mode = S_IFREG | 0644,
               const std::string& target = {}) {
    auto r = cache_.CreateLocally(
        dir, name, ++seq_,
        [&](Attr&, Attr& child) {
          child.ino = InodeId(ino);
          child.mode = mode;
          child.nlink = S_ISDIR(mode) ? 2 : 1;
          return Status::Ok();
        },
        target);
    EXPECT_TRUE(r && r->ok());
    return InodeId(ino);
  }
  ObjectCache::LookupResult Find(InodeId dir, const std::string& name, InodeId* ino = nullptr) {
    Attr a;
    auto r = cache_.Lookup(dir, name, &a);
    if (ino) *ino = a.ino;
    return r;
  }
  std::optional<Status> Rename(InodeId from, const std::string& name, InodeId to,
                               const std::string& new_name, uint32_t flags = 0) {
    return cache_.RenameLocally(from, name, to, new_name, flags, ++seq_,
                                [&](ObjectCache::RenameAttrs& r) {
                                  seen_victim_ = r.victim != nullptr;
                                  aliased_ = &r.from_dir == &r.to_dir;
                                  r.moved.ctime_ns = 77;
                                  return Status::Ok();
                                });
  }
  ObjectCache cache_;
  uint64_t seq_ = 1;
  bool seen_victim_ = false, aliased_ = false;
};

TEST_F(LocalNamespace, ANewDirectoryIsCompleteAndASymlinkKeepsItsTarget) {
  InodeId sub = Make(kDir, "sub", 20, S_IFDIR | 0755);
  EXPECT_EQ(cache_.lock(sub), LockMode::kExclusive);
  EXPECT_EQ(Find(sub, "anything"), ObjectCache::LookupResult::kNegative);
  InodeId link = Make(sub, "l", 21, S_IFLNK | 0777, "../target");
  EXPECT_EQ(cache_.SymlinkTarget(link), "../target");
  EXPECT_FALSE(cache_.SymlinkTarget(sub).has_value());
  auto dup = cache_.CreateLocally(sub, "l", ++seq_, [](Attr&, Attr&) { return Status::Ok(); });
  ASSERT_TRUE(dup.has_value());
  EXPECT_EQ(dup->status().errno_value(), EEXIST);
}

TEST_F(LocalNamespace, RemoveNeedsTheChildHeldAndAnEmptinessItCanSee) {
  InodeId sub = Make(kDir, "sub", 20, S_IFDIR | 0755);
  Make(sub, "f", 21);
  bool empty = true;
  auto rules = [&](Attr&, Attr& child, bool child_empty) {
    empty = child_empty;
    child.nlink = 0;
    return Status::Ok();
  };
  ASSERT_TRUE(cache_.RemoveLocally(kDir, "sub", ++seq_, rules).has_value());
  EXPECT_FALSE(empty);  // "sub" holds "f"
  EXPECT_EQ(Find(kDir, "sub"), ObjectCache::LookupResult::kNegative);
  // A name whose inode is only SHARED here: the server decides.
  Attr shared;
  shared.ino = InodeId(30);
  shared.mode = S_IFREG | 0644;
  cache_.PutAttr(shared, LockMode::kShared, ObjectCache::ReplyOrder(0, 2));
  cache_.AddName(kDir, "shared", shared.ino);
  EXPECT_FALSE(cache_.RemoveLocally(kDir, "shared", ++seq_, rules).has_value());
  EXPECT_EQ(Find(kDir, "shared"), ObjectCache::LookupResult::kFound);
  auto missing = cache_.RemoveLocally(kDir, "missing", ++seq_, rules);
  ASSERT_TRUE(missing.has_value());
  EXPECT_EQ(missing->status().errno_value(), ENOENT);
}

TEST_F(LocalNamespace, RenameMovesNamesAndReplacesOrExchanges) {
  InodeId a = Make(kDir, "a", 20), b = Make(kDir, "b", 21);
  ASSERT_TRUE(Rename(kDir, "a", kDir, "b").value().ok());
  EXPECT_TRUE(seen_victim_);
  EXPECT_TRUE(aliased_);
  InodeId found;
  EXPECT_EQ(Find(kDir, "b", &found), ObjectCache::LookupResult::kFound);
  EXPECT_EQ(found, a);
  EXPECT_EQ(Find(kDir, "a"), ObjectCache::LookupResult::kNegative);
  EXPECT_EQ(cache_.GetAttr(a)->ctime_ns, 77);
  (void)b;
  // Across directories, a file moves; NOREPLACE and EXCHANGE are honoured.
  InodeId c = Make(kOther, "c", 22);
  EXPECT_EQ(Rename(kDir, "b", kOther, "c", kRenameNoReplace)->errno_value(), EEXIST);
  ASSERT_TRUE(Rename(kDir, "b", kOther, "c", kRenameExchange).value().ok());
  EXPECT_FALSE(aliased_);
  EXPECT_EQ(Find(kDir, "b", &found), ObjectCache::LookupResult::kFound);
  EXPECT_EQ(found, c);
  EXPECT_EQ(Find(kOther, "c", &found), ObjectCache::LookupResult::kFound);
  EXPECT_EQ(found, a);
  EXPECT_EQ(Rename(kDir, "x", kOther, "y", kRenameExchange)->errno_value(), ENOENT);
}

TEST_F(LocalNamespace, ADirectoryMovingToAnotherParentGoesToTheServer) {
  Make(kDir, "sub", 20, S_IFDIR | 0755);
  EXPECT_FALSE(Rename(kDir, "sub", kOther, "sub").has_value());  // the server checks loops
  ASSERT_TRUE(Rename(kDir, "sub", kDir, "sub2").value().ok());   // within one directory: local
  EXPECT_EQ(Find(kDir, "sub2"), ObjectCache::LookupResult::kFound);
}

// rename("d/f", "d") must fail with ENOTEMPTY (the victim is the source's
// parent), which only the server's loop check sees (simulation seed 1279).
TEST_F(LocalNamespace, AFileReplacingADirectoryInAnotherParentGoesToTheServer) {
  Make(kDir, "f", 20);
  Make(kOther, "sub", 21, S_IFDIR | 0755);
  EXPECT_FALSE(Rename(kDir, "f", kOther, "sub").has_value());
  EXPECT_FALSE(Rename(kDir, "f", kOther, "sub", kRenameExchange).has_value());
}

TEST_F(LocalNamespace, NothingIsLocalInADirectoryThatIsNotCompleteOrNotExclusive) {
  Attr d;
  d.ino = InodeId(40);
  d.mode = S_IFDIR | 0755;
  cache_.PutAttr(d, LockMode::kExclusive, ObjectCache::ReplyOrder(0, 3));  // listing unknown
  auto make = [](Attr&, Attr& c) {
    c.ino = InodeId(41);
    c.mode = S_IFREG | 0644;
    return Status::Ok();
  };
  EXPECT_FALSE(cache_.CreateLocally(d.ino, "f", ++seq_, make).has_value());
  cache_.Revoke(kDir, LockMode::kShared, 5);
  EXPECT_FALSE(cache_.CreateLocally(kDir, "f", ++seq_, make).has_value());
  Make(kOther, "f", 42);
  auto link = cache_.LinkLocally(InodeId(42), kDir, "g", ++seq_,
                                 [](Attr&, Attr&) { return Status::Ok(); });
  EXPECT_FALSE(link.has_value());
}

TEST_F(LocalNamespace, LinkAddsANameForTheSameInode) {
  InodeId f = Make(kDir, "f", 20);
  auto r = cache_.LinkLocally(f, kOther, "g", ++seq_, [](Attr&, Attr& child) {
    child.nlink++;
    return Status::Ok();
  });
  ASSERT_TRUE(r && r->ok());
  EXPECT_EQ((*r)->nlink, 2u);
  InodeId found;
  EXPECT_EQ(Find(kOther, "g", &found), ObjectCache::LookupResult::kFound);
  EXPECT_EQ(found, f);
  auto dup = cache_.LinkLocally(f, kOther, "g", ++seq_, [](Attr&, Attr&) { return Status::Ok(); });
  EXPECT_EQ(dup->status().errno_value(), EEXIST);
}

// After a rename through the server (FuseOps::Rename). Simulation seeds
// showed both holes: a rename between two names of one inode changes
// nothing, and a listing forgotten keeps the names the kernel caches.
TEST_F(LocalNamespace, ARenameBetweenTwoNamesOfOneInodeLeavesBoth) {
  Attr f;
  f.ino = InodeId(20);
  f.mode = S_IFREG | 0644;
  f.nlink = 2;
  cache_.SetDirectory(kDir, {DirEntry{"a", 3, f}, DirEntry{"b", 4, f}}, {0, 2});
  cache_.PutAttr(f, LockMode::kShared, {0, 2});
  cache_.NoteRenamed(kDir, "a", kDir, "b", false, &f, ObjectCache::LookupResult::kFound, f);
  EXPECT_EQ(Find(kDir, "a"), ObjectCache::LookupResult::kFound);
  EXPECT_EQ(Find(kDir, "b"), ObjectCache::LookupResult::kFound);
  // The victim unknown: it may be the same inode, so nothing is believed.
  cache_.NoteKernelName(kOther, "x");
  cache_.NoteRenamed(kDir, "a", kOther, "b", false, &f, ObjectCache::LookupResult::kUnknown, {});
  EXPECT_EQ(Find(kDir, "a"), ObjectCache::LookupResult::kUnknown);
  EXPECT_EQ(Find(kOther, "b"), ObjectCache::LookupResult::kUnknown);
  EXPECT_EQ(cache_.Revoke(kOther, LockMode::kNone, 9), std::vector<std::string>{"x"});
}

TEST_F(LocalNamespace, ARenameOfAnInodeWithOneNameMovesIt) {
  InodeId f = Make(kDir, "a", 20);
  Attr moved = *cache_.GetAttr(f);
  cache_.NoteRenamed(kDir, "a", kOther, "b", false, &moved, ObjectCache::LookupResult::kUnknown,
                     {});
  EXPECT_EQ(Find(kDir, "a"), ObjectCache::LookupResult::kNegative);
  InodeId found;
  EXPECT_EQ(Find(kOther, "b", &found), ObjectCache::LookupResult::kFound);
  EXPECT_EQ(found, f);
}

}  // namespace
}  // namespace cohfs
