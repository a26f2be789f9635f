// The Commit request with the whole namespace in it (protocol version 3):
// every change kind at the client's time, the locks each needs, `withNext`
// groups applied entirely or not at all, and the life of unlinked inodes.
#include <sys/xattr.h>

#include "tests/unit/server/commit_fixture.h"

namespace cohfs::test {
namespace {

using Refused = std::vector<std::pair<uint32_t, int>>;
constexpr int64_t kT = 1'000'000'000;  // a client's clock, far from the server's

TEST_F(CommitTest, CreatesEveryKindOfNodeAtTheClientsTime) {
  CommitMessage c(4);
  uint64_t d = NextOwned(), s = NextOwned(), p = NextOwned(), l = NextOwned();
  SetMkdir(c.ops[0], kRootInode, "d", d, kT);
  SetSymlink(c.ops[1], InodeId(d), "s", "../target", s, 2 * kT);
  SetMknod(c.ops[2], InodeId(d), "pipe", S_IFIFO | 0600, p, 3 * kT);
  SetMknod(c.ops[3], InodeId(d), "sock", S_IFSOCK | 0600, l, 4 * kT);
  auto reply = Roundtrip(c.m);
  ASSERT_EQ(Failures(*reply), Refused{});
  EXPECT_EQ(Named(kRootInode, "d"), InodeId(d));
  EXPECT_EQ(Stat(InodeId(d)).ctime_ns, 4 * kT);
  EXPECT_EQ(Stat(InodeId(d)).nlink, 2u);
  EXPECT_EQ(Stat(kRootInode).mtime_ns, kT);
  EXPECT_EQ(*fs_->ReadLink(InodeId(s)), "../target");
  EXPECT_EQ(Stat(InodeId(s)).mtime_ns, 2 * kT);
  EXPECT_EQ(Stat(InodeId(p)).mode, S_IFIFO | 0600u);
  EXPECT_EQ(Stat(InodeId(l)).mode, S_IFSOCK | 0600u);
  for (uint64_t ino : {d, s, p, l}) {
    EXPECT_EQ(locks_.HeldBy(session_.client, InodeId(ino)), LockMode::kExclusive);
  }
}

TEST_F(CommitTest, LinksUnlinksAndRemovesDirectoriesAtTheClientsTime) {
  InodeId f = CreateOwned("f");
  CommitMessage c(4);
  uint64_t d = NextOwned();
  SetMkdir(c.ops[0], kRootInode, "d", d, kT);
  SetLink(c.ops[1], f, InodeId(d), "l", 2 * kT);
  SetUnlink(c.ops[2], kRootInode, "f", 3 * kT);
  SetRename(c.ops[3], InodeId(d), "l", kRootInode, "g", 0, 4 * kT);
  ASSERT_EQ(Failures(*Roundtrip(c.m)), Refused{});
  EXPECT_EQ(Named(kRootInode, "g"), f);
  EXPECT_EQ(Named(kRootInode, "f"), InodeId());
  Attr a = Stat(f);
  EXPECT_EQ(a.nlink, 1u);
  EXPECT_EQ(a.ctime_ns, 4 * kT);
  EXPECT_EQ(Stat(InodeId(d)).mtime_ns, 4 * kT);

  CommitMessage rm(1);
  SetRmdir(rm.ops[0], kRootInode, "d", 5 * kT);
  ASSERT_EQ(Failures(*Roundtrip(rm.m)), Refused{});
  EXPECT_EQ(Named(kRootInode, "d"), InodeId());
  EXPECT_EQ(Stat(kRootInode).mtime_ns, 5 * kT);
  EXPECT_EQ(Stat(kRootInode).nlink, 2u);
}

TEST_F(CommitTest, ChangesXattrsAtTheClientsTime) {
  InodeId f = CreateOwned("f");
  CommitMessage c(3);
  SetXattr(c.ops[0], f, "user.a", "1", kT);
  SetXattr(c.ops[1], f, "user.b", "2", 2 * kT);
  SetRemoveXattr(c.ops[2], f, "user.a", 3 * kT);
  ASSERT_EQ(Failures(*Roundtrip(c.m)), Refused{});
  EXPECT_EQ(Err(fs_->GetXattr(kRoot, f, "user.a")), ENODATA);
  EXPECT_EQ(*fs_->GetXattr(kRoot, f, "user.b"), "2");
  EXPECT_EQ(Stat(f).ctime_ns, 3 * kT);
  EXPECT_TRUE(Stat(f).flags & kInodeHasXattrs);
}

TEST_F(CommitTest, TruncationFreesSpace) {
  InodeId f = CreateOwned("f");
  Write(f, 0, std::string(1 << 20, 'x'));
  uint64_t free_before = FreeBlocks();
  CommitMessage c(1);
  SetTruncate(c.ops[0], f, 10, kT);
  ASSERT_EQ(Failures(*Roundtrip(c.m)), Refused{});
  EXPECT_EQ(Stat(f).size, 10u);
  EXPECT_EQ(Stat(f).mtime_ns, kT);
  EXPECT_EQ(Read(f, 0, 20), std::string(10, 'x'));
  EXPECT_EQ(FreeBlocks(), free_before + (1 << 20) / kBlockBytes - 1);  // one block stays
}

TEST_F(CommitTest, RefusesChangesWhereAnotherClientHoldsALock) {
  InodeId mine = CreateOwned("mine");
  Attr dir = Mkdir(kRootInode, "theirs");
  Attr child = Create(kRootInode, "child");
  Attr victim = Create(kRootInode, "victim");
  Attr file = Create(kRootInode, "file");
  for (InodeId ino : {dir.ino, child.ino, victim.ino, file.ino}) OtherHolds(ino);
  CommitMessage c(6);
  SetMkdir(c.ops[0], dir.ino, "x", NextOwned());                  // the parent
  SetUnlink(c.ops[1], kRootInode, "child");                       // the child
  SetRename(c.ops[2], kRootInode, "mine", kRootInode, "victim");  // the victim
  SetLink(c.ops[3], file.ino, kRootInode, "l");                   // the inode
  SetXattr(c.ops[4], file.ino, "user.a", "1");                    // the inode
  SetRename(c.ops[5], kRootInode, "child", kRootInode, "x");      // the moved inode
  auto reply = Roundtrip(c.m);
  EXPECT_EQ(
      Failures(*reply),
      (Refused{{0, EACCES}, {1, EACCES}, {2, EACCES}, {3, EACCES}, {4, EACCES}, {5, EACCES}}));
  EXPECT_EQ(Named(dir.ino, "x"), InodeId());
  EXPECT_EQ(Named(kRootInode, "child"), child.ino);
  EXPECT_EQ(Named(kRootInode, "victim"), victim.ino);
  EXPECT_EQ(Named(kRootInode, "mine"), mine);
  EXPECT_EQ(Stat(file.ino).nlink, 1u);
  EXPECT_FALSE(Stat(file.ino).flags & kInodeHasXattrs);
  // The unlink's failure names the directory; its child's attributes come back too.
  EXPECT_EQ(reply->root().getFailures()[1].getIno(), kRootInode.value);
  EXPECT_TRUE(Changed(*reply, child.ino));
  EXPECT_TRUE(Changed(*reply, victim.ino));
}

TEST_F(CommitTest, AGroupThatFailsLeavesNothingAndReportsEveryChange) {
  InodeId f = CreateOwned("f");
  Write(f, 0, std::string(64 * kBlockBytes, 'y'));
  uint64_t free_before = FreeBlocks();
  CommitMessage c(4);
  uint64_t d = NextOwned();
  SetMkdir(c.ops[0], kRootInode, "d", d, kT);
  c.ops[0].setWithNext(true);
  SetTruncate(c.ops[1], f, 0);  // frees space, inside the group
  c.ops[1].setWithNext(true);
  SetUnlink(c.ops[2], kRootInode, "missing");  // fails
  ToWire(kRoot, c.ops[3].initCaller());        // a group of its own: applied
  ToWire(f, ChmodAt(0600, kT), c.ops[3].initSetAttr());
  auto reply = Roundtrip(c.m);
  EXPECT_EQ(Failures(*reply), (Refused{{0, ECANCELED}, {1, ECANCELED}, {2, ENOENT}}));
  EXPECT_NE(std::string(reply->root().getFailures()[0].getMessage().cStr()).find("change 2"),
            std::string::npos);
  EXPECT_EQ(reply->root().getFailures()[0].getIno(), d);
  EXPECT_EQ(reply->root().getFailures()[1].getIno(), f.value);
  EXPECT_TRUE(Changed(*reply, f));  // the client re-learns the size it had cut
  EXPECT_EQ(Named(kRootInode, "d"), InodeId());
  EXPECT_EQ(Stat(f).size, 64u * kBlockBytes);
  EXPECT_EQ(Read(f, 63 * kBlockBytes, 2), "yy");
  EXPECT_EQ(FreeBlocks(), free_before);
  EXPECT_EQ(Stat(f).mode & 07777, 0600u);
}

TEST_F(CommitTest, AGroupSeesItsOwnChanges) {
  CommitMessage c(3);
  uint64_t d = NextOwned(), f = NextOwned();
  SetMkdir(c.ops[0], kRootInode, "d", d, kT);
  c.ops[0].setWithNext(true);
  SetMknod(c.ops[1], InodeId(d), "f", S_IFREG | 0644, f, kT);  // inside the new directory
  c.ops[1].setWithNext(true);
  SetRename(c.ops[2], InodeId(d), "f", InodeId(d), "g", 0, 2 * kT);
  ASSERT_EQ(Failures(*Roundtrip(c.m)), Refused{});
  EXPECT_EQ(Named(InodeId(d), "g"), InodeId(f));
  EXPECT_EQ(Stat(InodeId(d)).mtime_ns, 2 * kT);
  EXPECT_EQ(locks_.HeldBy(session_.client, InodeId(f)), LockMode::kExclusive);
}

TEST_F(CommitTest, RefusesGroupsTooLongOrCutOffByTheEnd) {
  CommitMessage c(kMaxCommitGroupOps + 2);
  for (unsigned i = 0; i < kMaxCommitGroupOps + 2; i++) {
    std::string name = "d" + std::to_string(i);
    SetMkdir(c.ops[i], kRootInode, name.c_str(), NextOwned());
    c.ops[i].setWithNext(i != kMaxCommitGroupOps);  // 65 changes, then one running off the end
  }
  auto reply = Roundtrip(c.m);
  auto failures = Failures(*reply);
  ASSERT_EQ(failures.size(), kMaxCommitGroupOps + 2);
  for (const auto& [index, err] : failures) EXPECT_EQ(err, EINVAL) << index;
  EXPECT_EQ(Named(kRootInode, "d0"), InodeId());
  EXPECT_EQ(Named(kRootInode, "d65"), InodeId());
}

// Found by fuzz_dispatch: a commit of empty changes cost its sender a word
// each, and their failures made a reply too large to send (a CHECK).
TEST_F(CommitTest, RefusesACommitLongerThanAClientSends) {
  CommitMessage c(kMaxCommitOps + 1);
  SetMkdir(c.ops[0], kRootInode, "d", NextOwned());
  auto reply = Roundtrip(c.m);
  EXPECT_EQ(reply->root().getErrno(), EINVAL);
  EXPECT_EQ(Named(kRootInode, "d"), InodeId());
}

TEST_F(CommitTest, RenameNoReplaceAndExchange) {
  InodeId a = CreateOwned("a");
  InodeId b = CreateOwned("b");
  CommitMessage c(2);
  SetRename(c.ops[0], kRootInode, "a", kRootInode, "b", kRenameNoReplace, kT);
  SetRename(c.ops[1], kRootInode, "a", kRootInode, "b", kRenameExchange, 2 * kT);
  auto reply = Roundtrip(c.m);
  EXPECT_EQ(Failures(*reply), (Refused{{0, EEXIST}}));
  EXPECT_EQ(Named(kRootInode, "a"), b);
  EXPECT_EQ(Named(kRootInode, "b"), a);
  EXPECT_EQ(Stat(a).ctime_ns, 2 * kT);
  EXPECT_EQ(Stat(b).ctime_ns, 2 * kT);
  EXPECT_EQ(Stat(kRootInode).mtime_ns, 2 * kT);
}

// The committing client holds the inode it unlinked (it had to, to unlink it):
// the inode outlives its names until that client lets it go.
TEST_F(CommitTest, AnUnlinkedInodeTheClientHoldsLivesUntilItsRelease) {
  InodeId f = CreateOwned("f");
  InodeId v = CreateOwned("v");
  Write(f, 0, "still here");
  CommitMessage c(2);
  SetUnlink(c.ops[0], kRootInode, "f");
  SetRename(c.ops[1], kRootInode, "v", kRootInode, "w");
  ASSERT_EQ(Failures(*Roundtrip(c.m)), Refused{});
  InodeId x = CreateOwned("x");
  CommitMessage r(1);
  SetRename(r.ops[0], kRootInode, "x", kRootInode, "w");  // v loses its last name
  ASSERT_EQ(Failures(*Roundtrip(r.m)), Refused{});
  EXPECT_EQ(Named(kRootInode, "w"), x);
  EXPECT_EQ(Stat(f).nlink, 0u);
  EXPECT_EQ(Read(f, 0, 64), "still here");
  EXPECT_EQ(Stat(v).nlink, 0u);

  Send([&](wire::Request::Builder req) {
    auto list = req.initRelease(2);
    list.set(0, f.value);
    list.set(1, v.value);
  });
  EXPECT_EQ(Err(fs_->GetAttr(f)), ENOENT);
  EXPECT_EQ(Err(fs_->GetAttr(v)), ENOENT);
}

// Outside a commit, a change carries the client's time too (0: the server's).
TEST_F(CommitTest, OrdinaryChangesTakeTheClientsTime) {
  uint64_t d = NextOwned();
  auto reply = Send([&](wire::Request::Builder req) {
    auto m = req.initMkdir();
    m.setParent(kRootInode.value);
    m.setName(AsData("d"));
    m.setMode(0755);
    m.setNewIno(d);
    m.setNowNs(kT);
  });
  ASSERT_EQ(reply->root().getErrno(), 0);
  EXPECT_EQ(Stat(InodeId(d)).mtime_ns, kT);
  Send([&](wire::Request::Builder req) {
    auto m = req.initRmdir();
    m.setParent(kRootInode.value);
    m.setName(AsData("d"));
    m.setNowNs(2 * kT);
  });
  EXPECT_EQ(Stat(kRootInode).mtime_ns, 2 * kT);
}

}  // namespace
}  // namespace cohfs::test
