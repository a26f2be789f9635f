// The Commit request: a client's writeback log of changes it already made
// locally, applied through the real dispatcher on a real volume.
#include "tests/unit/server/commit_fixture.h"

namespace cohfs::test {
namespace {

TEST_F(CommitTest, AppliesChangesInOrderWithTheClientsClock) {
  InodeId f = CreateOwned("f");
  SetAttrRequest times;
  times.mask = kSetMtime | kSetAtimeNow;
  times.mtime_ns = 1'000'000'000;
  times.now_ns = 5'000'000'000;
  auto reply = Commit({{kRoot, f, ChmodAt(0600, 4'000'000'000)},
                       {kRoot, f, ChmodAt(0640, 4'500'000'000)},
                       {kRoot, f, times}});
  ASSERT_EQ(reply->root().getErrno(), 0);
  ASSERT_TRUE(reply->root().isFailures());
  EXPECT_EQ(reply->root().getFailures().size(), 0u);
  Attr a = Stat(f);
  EXPECT_EQ(a.mode & 07777, 0640u);  // the later chmod wins
  EXPECT_EQ(a.mtime_ns, 1'000'000'000);
  EXPECT_EQ(a.atime_ns, 5'000'000'000);  // UTIME_NOW is the client's now
  EXPECT_EQ(a.ctime_ns, 5'000'000'000);
}

TEST_F(CommitTest, RefusesInodesAnotherClientHoldsAndAppliesTheRest) {
  InodeId owned = CreateOwned("mine");
  Attr other = Create(kRootInode, "theirs");
  ASSERT_EQ(locks_.Acquire(ClientId(8), other.ino, LockMode::kShared), LockMode::kShared);
  auto reply = Commit({{kRoot, other.ino, ChmodAt(0600, 1)}, {kRoot, owned, ChmodAt(0600, 2)}});
  ASSERT_EQ(reply->root().getErrno(), 0);
  auto failures = reply->root().getFailures();
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_EQ(failures[0].getIndex(), 0u);
  EXPECT_EQ(failures[0].getIno(), other.ino.value);
  EXPECT_EQ(failures[0].getErrno(), EACCES);
  EXPECT_EQ(Stat(other.ino).mode & 07777, 0644u);
  EXPECT_EQ(Stat(owned).mode & 07777, 0600u);
  // The refused inode's attributes come back so the client can correct itself.
  ASSERT_EQ(reply->root().getChanged().size(), 1u);
  EXPECT_EQ(reply->root().getChanged()[0].getIno(), other.ino.value);
  EXPECT_EQ(reply->root().getChanged()[0].getMode() & 07777, 0644u);
}

TEST_F(CommitTest, TakesTheLockBackWhenNobodyElseHoldsIt) {
  InodeId f = CreateOwned("f");
  locks_.Release(session_.client, f);  // released while a reply still said EXCLUSIVE
  auto reply = Commit({{kRoot, f, ChmodAt(0600, 1)}});
  EXPECT_EQ(reply->root().getFailures().size(), 0u);
  EXPECT_EQ(Stat(f).mode & 07777, 0600u);
  EXPECT_EQ(locks_.HeldBy(session_.client, f), LockMode::kExclusive);
}

TEST_F(CommitTest, EnforcesPermissionsOfEachChangesCaller) {
  InodeId f = CreateOwned("f");  // owned by root
  SetAttrRequest chown;
  chown.mask = kSetUid;
  chown.uid = 1000;
  auto reply = Commit({{kUser, f, chown}, {kUser, f, ChmodAt(0777, 1)}, {kRoot, f, chown}});
  auto failures = reply->root().getFailures();
  ASSERT_EQ(failures.size(), 2u);
  EXPECT_EQ(failures[0].getIndex(), 0u);
  EXPECT_EQ(failures[0].getErrno(), EPERM);
  EXPECT_EQ(failures[1].getIndex(), 1u);
  EXPECT_EQ(failures[1].getErrno(), EPERM);
  EXPECT_EQ(Stat(f).uid, 1000u);  // root's chown went through
  EXPECT_EQ(Stat(f).mode & 07777, 0644u);
}

TEST_F(CommitTest, CreatesRegularFilesAtTheClientsTimeThenChangesThem) {
  CommitMessage c(2);
  InodeId ino(first_ino_ + 100);
  SetMknod(c.ops[0], kRootInode, "new", S_IFREG | 0640, ino.value, 7'000'000'000);
  ToWire(kRoot, c.ops[1].initCaller());
  ToWire(ino, ChmodAt(0600, 8'000'000'000), c.ops[1].initSetAttr());
  auto reply = Roundtrip(c.m);
  ASSERT_EQ(reply->root().getFailures().size(), 0u);
  auto a = fs_->Lookup(kRoot, kRootInode, "new");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->ino, ino);
  EXPECT_EQ(a->mode, S_IFREG | 0600u);
  EXPECT_EQ(a->mtime_ns, 7'000'000'000);
  EXPECT_EQ(a->ctime_ns, 8'000'000'000);
  EXPECT_EQ(Stat(kRootInode).mtime_ns, 7'000'000'000);
  EXPECT_EQ(locks_.HeldBy(session_.client, ino), LockMode::kExclusive);
}

TEST_F(CommitTest, RefusesCreatesInDirectoriesOthersHoldOrWithForeignNumbers) {
  Attr dir = Mkdir(kRootInode, "theirs");
  ASSERT_EQ(locks_.Acquire(ClientId(8), dir.ino, LockMode::kShared), LockMode::kShared);
  CommitMessage c(3);
  SetMknod(c.ops[0], dir.ino, "x", S_IFREG | 0644, first_ino_ + 200);
  SetMknod(c.ops[1], kRootInode, "a/b", S_IFREG | 0644, first_ino_ + 201);  // not a name
  SetMknod(c.ops[2], kRootInode, "x", S_IFREG | 0644, first_ino_ - 1);  // not this client's number
  auto reply = Roundtrip(c.m);
  auto failures = reply->root().getFailures();
  ASSERT_EQ(failures.size(), 3u);
  EXPECT_EQ(failures[0].getErrno(), EACCES);
  EXPECT_EQ(failures[0].getIno(), first_ino_ + 200);
  EXPECT_EQ(failures[1].getErrno(), EINVAL);
  EXPECT_EQ(failures[2].getErrno(), EINVAL);
  EXPECT_FALSE(fs_->Lookup(kRoot, dir.ino, "x").ok());
  EXPECT_FALSE(fs_->Lookup(kRoot, kRootInode, "x").ok());
}

TEST_F(CommitTest, RefusesWhatIsNotAChange) {
  InodeId f = CreateOwned("f");
  CommitMessage c(3);
  ToWire(kRoot, c.ops[0].initCaller());
  c.ops[0].setGetAttr(f.value);
  ToWire(kRoot, c.ops[1].initCaller());
  c.ops[1].initCommit(0);  // no nesting either
  ToWire(kRoot, c.ops[2].initCaller());
  c.ops[2].initWrite().setIno(f.value);  // data goes as `write` requests, not in a commit
  auto reply = Roundtrip(c.m);
  EXPECT_EQ(Failures(*reply),
            (std::vector<std::pair<uint32_t, int>>{{0, EINVAL}, {1, EINVAL}, {2, EINVAL}}));
  EXPECT_EQ(Stat(f).nlink, 1u);
}

// Recalls: a request in the way of another client's lock waits for it.
TEST_F(CommitTest, AReaderRecallsTheOwnerToSharedAndAWriterRecallsEveryHolder) {
  InodeId f = CreateOwned("f");  // session_ holds it EXCLUSIVE
  Session other;
  Open(&other);
  auto admit = [&](Session& s, capnp::MallocMessageBuilder& m,
                   std::vector<LockManager::Conflict>* recalls) {
    auto request = Decode<DecodedRequest>(EncodeFrame(FrameKind::kRequest, RequestId(1), m));
    return dispatcher_.Admit(s, *request, 0, /*other_clients=*/true, recalls);
  };
  capnp::MallocMessageBuilder lookup;
  auto l = lookup.initRoot<wire::Request>();
  ToWire(kRoot, l.initCaller());
  l.initLookup().setParent(kRootInode.value);
  l.getLookup().setName(AsData("f"));
  std::vector<LockManager::Conflict> recalls;
  EXPECT_FALSE(admit(other, lookup, &recalls));
  // The creator owns the file and, having created in it, the directory.
  ASSERT_EQ(recalls.size(), 2u);
  for (const auto& r : recalls) {
    EXPECT_EQ(r.holder, session_.client);
    EXPECT_TRUE(r.ino == f || r.ino == kRootInode);
    EXPECT_EQ(r.keep, LockMode::kShared);
  }
  recalls.clear();
  EXPECT_FALSE(admit(other, lookup, &recalls));  // still waiting; asked once
  EXPECT_TRUE(recalls.empty());

  capnp::MallocMessageBuilder downgrade;
  auto d = downgrade.initRoot<wire::Request>();
  ToWire(kRoot, d.initCaller());
  d.initDowngrade(2).set(0, f.value);
  d.getDowngrade().set(1, kRootInode.value);
  auto request = Decode<DecodedRequest>(EncodeFrame(FrameKind::kRequest, RequestId(2), downgrade));
  EXPECT_TRUE(dispatcher_.Handle(session_, *request, 0).released);
  EXPECT_TRUE(admit(other, lookup, &recalls));

  capnp::MallocMessageBuilder unlink;
  auto u = unlink.initRoot<wire::Request>();
  ToWire(kRoot, u.initCaller());
  u.initUnlink().setParent(kRootInode.value);
  u.getUnlink().setName(AsData("f"));
  EXPECT_FALSE(admit(other, unlink, &recalls));
  ASSERT_FALSE(recalls.empty());
  for (const auto& r : recalls) EXPECT_EQ(r.keep, LockMode::kNone);
}

}  // namespace
}  // namespace cohfs::test
