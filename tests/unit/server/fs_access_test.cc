// Permission checks for non-root callers, sticky directories, setattr rules,
// xattr namespaces and flags, and timestamps as Linux moves them.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <thread>

#include "tests/unit/server/fs_fixture.h"

namespace cohfs::test {
namespace {

using FsAccess = FsTest;

const Caller kUserInStaff{1000, 1000, {50}, 0};  // supplementary group 50

TEST_F(FsAccess, ModeClasses) {
  Attr f = Create(kRootInode, "f", 0640);
  ASSERT_TRUE(fs_->SetAttr(kRoot, f.ino, SetAttrRequest{kSetUid | kSetGid, 0, 1000, 50}).ok());
  // Owner: rw-, group (primary or supplementary): r--, other: ---.
  EXPECT_TRUE(fs_->Access(kUser, f.ino, R_OK | W_OK).ok());
  EXPECT_EQ(Err(fs_->Access(kUser, f.ino, X_OK)), EACCES);
  Caller member{3000, 3000, {50}, 0};
  EXPECT_TRUE(fs_->Access(member, f.ino, R_OK).ok());
  EXPECT_EQ(Err(fs_->Access(member, f.ino, W_OK)), EACCES);
  Caller primary{3001, 50, {}, 0};
  EXPECT_TRUE(fs_->Access(primary, f.ino, R_OK).ok());
  EXPECT_EQ(Err(fs_->Access(kOther, f.ino, R_OK)), EACCES);
  EXPECT_TRUE(fs_->Access(kOther, f.ino, F_OK).ok());
  // Only one class applies: an owner without bits is refused even if others may.
  ASSERT_TRUE(Chmod(f.ino, 0077).ok());
  EXPECT_EQ(Err(fs_->Access(kUser, f.ino, R_OK)), EACCES);
  EXPECT_TRUE(fs_->Access(kOther, f.ino, R_OK | W_OK | X_OK).ok());
  // Root: everything, but exec needs some x bit on a file.
  ASSERT_TRUE(Chmod(f.ino, 0600).ok());
  EXPECT_TRUE(fs_->Access(kRoot, f.ino, R_OK | W_OK).ok());
  EXPECT_EQ(Err(fs_->Access(kRoot, f.ino, X_OK)), EACCES);
  ASSERT_TRUE(Chmod(f.ino, 0601).ok());
  EXPECT_TRUE(fs_->Access(kRoot, f.ino, X_OK).ok());
  Attr d = Mkdir(kRootInode, "d", 0);
  EXPECT_TRUE(fs_->Access(kRoot, d.ino, X_OK).ok());
  EXPECT_EQ(Err(fs_->Access(kUser, d.ino, X_OK)), EACCES);
}

TEST_F(FsAccess, OpenChecks) {
  Attr f = Create(kRootInode, "f", 0644);
  Write(f.ino, 0, "content");
  EXPECT_TRUE(fs_->Open(kUser, f.ino, O_RDONLY).ok());
  EXPECT_EQ(Err(fs_->Open(kUser, f.ino, O_WRONLY)), EACCES);
  EXPECT_EQ(Err(fs_->Open(kUser, f.ino, O_RDWR)), EACCES);
  EXPECT_EQ(Err(fs_->Open(kUser, f.ino, O_RDONLY | O_TRUNC)), EACCES);
  EXPECT_EQ(Stat(f.ino).size, 7u);
  EXPECT_EQ(Err(fs_->Open(kRoot, kRootInode, O_WRONLY)), EISDIR);
  EXPECT_EQ(Err(fs_->Open(kRoot, kRootInode, O_RDWR)), EISDIR);
  EXPECT_TRUE(fs_->Open(kRoot, kRootInode, O_RDONLY).ok());
  Attr before = Stat(f.ino);
  ASSERT_TRUE(fs_->Open(kRoot, f.ino, O_WRONLY | O_TRUNC).ok());
  Attr after = Stat(f.ino);
  EXPECT_EQ(after.size, 0u);
  EXPECT_GT(after.mtime_ns, before.mtime_ns);
  EXPECT_EQ(Read(f.ino, 0, 10), "");
  Attr priv = Create(kRootInode, "priv", 0600);
  EXPECT_EQ(Err(fs_->Open(kUser, priv.ino, O_RDONLY)), EACCES);
}

TEST_F(FsAccess, DirectoryWriteAndSearchPermission) {
  Attr ro = Mkdir(kRootInode, "ro", 0555);
  Attr f = Create(ro.ino, "f");
  Attr rw = Mkdir(kRootInode, "rw", 0777);
  EXPECT_EQ(Err(fs_->Mknod(kUser, ro.ino, "x", S_IFREG | 0644, 0, NewIno())), EACCES);
  EXPECT_EQ(Err(fs_->Mkdir(kUser, ro.ino, "x", 0755, NewIno())), EACCES);
  EXPECT_EQ(Err(fs_->Symlink(kUser, ro.ino, "x", "t", NewIno())), EACCES);
  EXPECT_EQ(Err(fs_->Unlink(kUser, ro.ino, "f")), EACCES);
  Attr own = Create(rw.ino, "own", 0644, kUser);
  EXPECT_EQ(Err(fs_->Link(kUser, own.ino, ro.ino, "l")), EACCES);
  EXPECT_EQ(Err(fs_->Link(kUser, f.ino, ro.ino, "l")), EPERM);  // protected_hardlinks first
  EXPECT_EQ(Err(fs_->Rename(kUser, ro.ino, "f", rw.ino, "f", 0)), EACCES);
  // Existence is reported before the missing write permission, as Linux does.
  EXPECT_EQ(Err(fs_->Mknod(kUser, ro.ino, "f", S_IFREG | 0644, 0, NewIno())), EEXIST);
  EXPECT_EQ(Err(fs_->Unlink(kUser, ro.ino, "nope")), ENOENT);
  // Write without search is not enough.
  Attr wo = Mkdir(kRootInode, "wo", 0333 & ~0111);
  EXPECT_EQ(Err(fs_->Mknod(kUser, wo.ino, "x", S_IFREG | 0644, 0, NewIno())), EACCES);
  // Moving a directory to another parent rewrites its "..": needs write on it.
  Attr theirs = Mkdir(rw.ino, "theirs", 0555);
  EXPECT_EQ(Err(fs_->Rename(kUser, rw.ino, "theirs", kRootInode, "x", 0)), EACCES);
  Attr sub = Mkdir(rw.ino, "sub", 0777);
  EXPECT_EQ(Err(fs_->Rename(kUser, rw.ino, "theirs", sub.ino, "t", 0)), EACCES);
  EXPECT_TRUE(fs_->Rename(kUser, rw.ino, "theirs", rw.ino, "renamed", 0).ok());  // same parent
  (void)theirs;
  Create(rw.ino, "mine", 0644, kUser);
  EXPECT_TRUE(fs_->Rename(kUser, rw.ino, "mine", sub.ino, "mine", 0).ok());
  EXPECT_TRUE(fs_->Unlink(kUser, sub.ino, "mine").ok());
  ASSERT_TRUE(fs_->ReclaimAllOrphans().ok());
}

TEST_F(FsAccess, StickyDirectory) {
  Attr tmp = Mkdir(kRootInode, "tmp", 01777);
  Create(tmp.ino, "mine", 0644, kUser);
  Create(tmp.ino, "theirs", 0644, kOther);
  Create(tmp.ino, "target", 0644, kOther);
  EXPECT_EQ(Err(fs_->Unlink(kUser, tmp.ino, "theirs")), EPERM);
  EXPECT_EQ(Err(fs_->Rename(kUser, tmp.ino, "theirs", tmp.ino, "stolen", 0)), EPERM);
  // Replacing someone else's entry is removing it.
  EXPECT_EQ(Err(fs_->Rename(kUser, tmp.ino, "mine", tmp.ino, "target", 0)), EPERM);
  EXPECT_TRUE(fs_->Rename(kUser, tmp.ino, "mine", tmp.ino, "mine2", 0).ok());
  EXPECT_TRUE(fs_->Unlink(kUser, tmp.ino, "mine2").ok());
  EXPECT_TRUE(fs_->Unlink(kRoot, tmp.ino, "theirs").ok());
  // The directory's owner may remove anything in it.
  Attr own = Mkdir(kRootInode, "own", 01777);
  ASSERT_TRUE(fs_->SetAttr(kRoot, own.ino, SetAttrRequest{kSetUid, 0, 1000, 0}).ok());
  Create(own.ino, "x", 0644, kOther);
  EXPECT_TRUE(fs_->Unlink(kUser, own.ino, "x").ok());
  // user.* xattrs on a sticky directory: owner only.
  EXPECT_EQ(Err(fs_->SetXattr(kOther, tmp.ino, "user.a", "v", 0)), EPERM);
  ASSERT_TRUE(fs_->ReclaimAllOrphans().ok());
}

TEST_F(FsAccess, SetAttrRules) {
  Attr f = Create(kRootInode, "f", 0644);
  ASSERT_TRUE(fs_->SetAttr(kRoot, f.ino, SetAttrRequest{kSetUid | kSetGid, 0, 1000, 1000}).ok());
  // chmod: owner or root.
  EXPECT_EQ(Err(Chmod(f.ino, 0600, kOther)), EPERM);
  EXPECT_TRUE(Chmod(f.ino, 0666, kUser).ok());
  // chown to another uid: root only; to itself by the owner is fine.
  EXPECT_EQ(Err(SetAttr(f.ino, SetAttrRequest{kSetUid, 0, 2000}, kUser)), EPERM);
  EXPECT_TRUE(SetAttr(f.ino, SetAttrRequest{kSetUid, 0, 1000}, kUser).ok());
  EXPECT_EQ(Err(SetAttr(f.ino, SetAttrRequest{kSetUid, 0, 1000}, kOther)), EPERM);
  // chgrp: the owner, to a group it is in.
  EXPECT_EQ(Err(SetAttr(f.ino, SetAttrRequest{kSetGid, 0, 0, 77}, kUser)), EPERM);
  EXPECT_TRUE(SetAttr(f.ino, SetAttrRequest{kSetGid, 0, 0, 50}, kUserInStaff).ok());
  EXPECT_EQ(Stat(f.ino).gid, 50u);
  EXPECT_EQ(Err(SetAttr(f.ino, SetAttrRequest{kSetGid, 0, 0, 50}, Caller{2000, 50, {}, 0})), EPERM);
  // chmod by an owner outside the file's group drops setgid.
  ASSERT_TRUE(Chmod(f.ino, 02755, kUser).ok());
  EXPECT_EQ(Stat(f.ino).mode & 07777, 0755u);
  ASSERT_TRUE(Chmod(f.ino, 02755, kUserInStaff).ok());
  EXPECT_EQ(Stat(f.ino).mode & 07777, 02755u);
  // chown clears setuid, and setgid with group exec, even for root.
  ASSERT_TRUE(Chmod(f.ino, 06755).ok());
  ASSERT_TRUE(SetAttr(f.ino, SetAttrRequest{kSetUid, 0, 1000}).ok());
  EXPECT_EQ(Stat(f.ino).mode & 07777, 0755u);
  // A directory keeps its setgid on chown.
  Attr d = Mkdir(kRootInode, "d", 02755);
  ASSERT_TRUE(SetAttr(d.ino, SetAttrRequest{kSetUid, 0, 1000}).ok());
  EXPECT_TRUE(Stat(d.ino).mode & S_ISGID);
  // Times: explicit values need ownership; "now" needs ownership or write access.
  SetAttrRequest explicit_times;
  explicit_times.mask = kSetAtime | kSetMtime;
  explicit_times.atime_ns = 1000;
  explicit_times.mtime_ns = 2000;
  ASSERT_TRUE(Chmod(f.ino, 0666).ok());
  EXPECT_EQ(Err(SetAttr(f.ino, explicit_times, kOther)), EPERM);
  EXPECT_TRUE(SetAttr(f.ino, explicit_times, kUser).ok());
  EXPECT_EQ(Stat(f.ino).atime_ns, 1000);
  EXPECT_EQ(Stat(f.ino).mtime_ns, 2000);
  SetAttrRequest touch;
  touch.mask = kSetAtimeNow | kSetMtimeNow;
  EXPECT_TRUE(SetAttr(f.ino, touch, kOther).ok());  // 0666: others may write
  EXPECT_GT(Stat(f.ino).mtime_ns, 2000);
  ASSERT_TRUE(Chmod(f.ino, 0644).ok());
  EXPECT_EQ(Err(SetAttr(f.ino, touch, kOther)), EACCES);
  // Truncate: write permission. Through an open handle the server cannot see
  // the fd, so it checks as for a write: the owner may, whatever the mode.
  Write(f.ino, 0, "0123456789");
  EXPECT_EQ(Err(Truncate(f.ino, 2, kOther)), EACCES);
  EXPECT_EQ(Err(Truncate(f.ino, 2, kOther, /*open_handle=*/true)), EACCES);
  ASSERT_TRUE(SetAttr(f.ino, SetAttrRequest{kSetUid | kSetMode, 0444, kOther.uid}).ok());
  EXPECT_EQ(Err(Truncate(f.ino, 2, kOther)), EACCES);
  EXPECT_TRUE(Truncate(f.ino, 2, kOther, /*open_handle=*/true).ok());
  EXPECT_EQ(Stat(f.ino).size, 2u);
  ASSERT_TRUE(SetAttr(f.ino, SetAttrRequest{kSetUid | kSetMode, 0644, kUser.uid}).ok());
  EXPECT_EQ(Err(Truncate(kRootInode, 0)), EISDIR);
  auto fifo = fs_->Mknod(kRoot, kRootInode, "p", S_IFIFO | 0644, 0, NewIno());
  EXPECT_EQ(Err(Truncate(fifo->ino, 0)), EINVAL);
  // A failed setattr changes nothing.
  Attr before = Stat(f.ino);
  SetAttrRequest mixed;
  mixed.mask = kSetMode | kSetUid;
  mixed.mode = 0777;
  mixed.uid = 2000;
  EXPECT_EQ(Err(SetAttr(f.ino, mixed, kUser)), EPERM);
  Attr after = Stat(f.ino);
  EXPECT_EQ(after.mode, before.mode);
  EXPECT_EQ(after.ctime_ns, before.ctime_ns);
}

TEST_F(FsAccess, WriteClearsSetuidAndSetgid) {
  Attr f = Create(kRootInode, "f", 0666);
  ASSERT_TRUE(Chmod(f.ino, 06777).ok());
  Write(f.ino, 0, "root keeps the bits");
  EXPECT_EQ(Stat(f.ino).mode & 07777, 06777u);
  Write(f.ino, 0, "a user does not", kUser);
  EXPECT_EQ(Stat(f.ino).mode & 07777, 0777u);
  // setgid without group exec (a locking mark) stays for a group member.
  ASSERT_TRUE(Chmod(f.ino, 02666).ok());
  Write(f.ino, 0, "member", Caller{1000, 0, {}, 0});
  EXPECT_EQ(Stat(f.ino).mode & 07777, 02666u);
  ASSERT_TRUE(Chmod(f.ino, 04666).ok());
  ASSERT_TRUE(Truncate(f.ino, 1, kUser).ok());
  EXPECT_EQ(Stat(f.ino).mode & 07777, 0666u);
  // The kernel's own kill-privileges chmod from a non-owner is accepted.
  ASSERT_TRUE(Chmod(f.ino, 06666).ok());
  EXPECT_TRUE(Chmod(f.ino, 0666, kOther).ok());
  EXPECT_EQ(Err(Chmod(f.ino, 0777, kOther)), EPERM);
}

TEST_F(FsAccess, Xattrs) {
  Attr f = Create(kRootInode, "f", 0644);
  EXPECT_EQ(Stat(f.ino).flags & kInodeHasXattrs, 0u);
  EXPECT_TRUE(fs_->SetXattr(kRoot, f.ino, "user.a", "1", XATTR_CREATE).ok());
  EXPECT_NE(Stat(f.ino).flags & kInodeHasXattrs, 0u);
  EXPECT_EQ(Err(fs_->SetXattr(kRoot, f.ino, "user.a", "2", XATTR_CREATE)), EEXIST);
  EXPECT_TRUE(fs_->SetXattr(kRoot, f.ino, "user.a", "2", XATTR_REPLACE).ok());
  EXPECT_EQ(*fs_->GetXattr(kRoot, f.ino, "user.a"), "2");
  EXPECT_EQ(Err(fs_->SetXattr(kRoot, f.ino, "user.b", "2", XATTR_REPLACE)), ENODATA);
  EXPECT_EQ(Err(fs_->SetXattr(kRoot, f.ino, "user.b", "2", 8)), EINVAL);
  EXPECT_TRUE(fs_->SetXattr(kRoot, f.ino, "user.empty", "", 0).ok());
  EXPECT_EQ(*fs_->GetXattr(kRoot, f.ino, "user.empty"), "");
  std::string big(kMaxXattrValueBytes, 'v');
  EXPECT_TRUE(fs_->SetXattr(kRoot, f.ino, "user.big", big, 0).ok());
  EXPECT_EQ(*fs_->GetXattr(kRoot, f.ino, "user.big"), big);
  EXPECT_EQ(Err(fs_->SetXattr(kRoot, f.ino, "user.big", big + "v", 0)), E2BIG);
  std::string long_name = "user." + std::string(kMaxXattrNameBytes - 5, 'n');
  EXPECT_TRUE(fs_->SetXattr(kRoot, f.ino, long_name, "x", 0).ok());
  EXPECT_EQ(Err(fs_->SetXattr(kRoot, f.ino, long_name + "n", "x", 0)), ERANGE);
  EXPECT_EQ(Err(fs_->GetXattr(kRoot, f.ino, long_name + "n")), ERANGE);
  EXPECT_EQ(Err(fs_->SetXattr(kRoot, f.ino, "", "x", 0)), ERANGE);
  EXPECT_EQ(Err(fs_->SetXattr(kRoot, f.ino, "user.", "x", 0)), EINVAL);
  EXPECT_EQ(Err(fs_->SetXattr(kRoot, f.ino, "bogus.a", "x", 0)), EOPNOTSUPP);
  EXPECT_EQ(Err(fs_->GetXattr(kRoot, f.ino, "bogus.a")), EOPNOTSUPP);
  EXPECT_EQ(Err(fs_->SetXattr(kRoot, f.ino, "system.posix_acl_access", "x", 0)), EOPNOTSUPP);
  EXPECT_EQ(Err(fs_->GetXattr(kRoot, f.ino, "user.none")), ENODATA);
  EXPECT_EQ(Err(fs_->RemoveXattr(kRoot, f.ino, "user.none")), ENODATA);
  // Namespaces: trusted.* is root's, security.* writes are root's.
  EXPECT_TRUE(fs_->SetXattr(kRoot, f.ino, "trusted.t", "x", 0).ok());
  EXPECT_TRUE(fs_->SetXattr(kRoot, f.ino, "security.s", "x", 0).ok());
  EXPECT_EQ(Err(fs_->SetXattr(kUser, f.ino, "trusted.t", "y", 0)), EPERM);
  EXPECT_EQ(Err(fs_->GetXattr(kUser, f.ino, "trusted.t")), ENODATA);
  EXPECT_EQ(Err(fs_->SetXattr(kUser, f.ino, "security.s", "y", 0)), EPERM);
  EXPECT_EQ(*fs_->GetXattr(kUser, f.ino, "security.s"), "x");
  auto names = fs_->ListXattr(kRoot, f.ino);
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(names->size(), 6u);
  auto user_names = fs_->ListXattr(kUser, f.ino);
  EXPECT_EQ(std::count(user_names->begin(), user_names->end(), "trusted.t"), 0);
  EXPECT_EQ(user_names->size(), 5u);
  // user.*: read needs r, write needs w; only files and directories.
  EXPECT_EQ(*fs_->GetXattr(kUser, f.ino, "user.a"), "2");
  EXPECT_EQ(Err(fs_->SetXattr(kUser, f.ino, "user.a", "3", 0)), EACCES);
  EXPECT_EQ(Err(fs_->RemoveXattr(kUser, f.ino, "user.a")), EACCES);
  ASSERT_TRUE(Chmod(f.ino, 0600).ok());
  EXPECT_EQ(Err(fs_->GetXattr(kUser, f.ino, "user.a")), EACCES);
  auto link = fs_->Symlink(kRoot, kRootInode, "l", "f", NewIno());
  EXPECT_EQ(Err(fs_->SetXattr(kRoot, link->ino, "user.a", "x", 0)), EPERM);
  EXPECT_EQ(Err(fs_->GetXattr(kRoot, link->ino, "user.a")), ENODATA);
  EXPECT_TRUE(fs_->SetXattr(kRoot, link->ino, "trusted.a", "x", 0).ok());
  auto fifo = fs_->Mknod(kRoot, kRootInode, "p", S_IFIFO | 0666, 0, NewIno());
  EXPECT_EQ(Err(fs_->SetXattr(kRoot, fifo->ino, "user.a", "x", 0)), EPERM);
  EXPECT_TRUE(fs_->SetXattr(kRoot, kRootInode, "user.dir", "x", 0).ok());
  // Removing the last one clears the has-xattrs flag.
  for (const char* n : {"user.a", "user.empty", "user.big", "trusted.t", "security.s"}) {
    ASSERT_TRUE(fs_->RemoveXattr(kRoot, f.ino, n).ok()) << n;
  }
  EXPECT_NE(Stat(f.ino).flags & kInodeHasXattrs, 0u);
  ASSERT_TRUE(fs_->RemoveXattr(kRoot, f.ino, long_name).ok());
  EXPECT_EQ(Stat(f.ino).flags & kInodeHasXattrs, 0u);
  EXPECT_TRUE(fs_->ListXattr(kRoot, f.ino)->empty());
  Reopen();
  EXPECT_EQ(*fs_->GetXattr(kRoot, kRootInode, "user.dir"), "x");
}

// Timestamps, as ext4 moves them.
class FsTimes : public FsTest {
 protected:
  // Lets the clock move so that "changed" and "unchanged" differ.
  void Tick() { std::this_thread::sleep_for(std::chrono::microseconds(50)); }
};

TEST_F(FsTimes, NamespaceOperations) {
  Attr d = Mkdir(kRootInode, "d");
  Tick();
  Attr f = Create(d.ino, "f");
  EXPECT_EQ(f.atime_ns, f.mtime_ns);
  EXPECT_EQ(f.ctime_ns, f.mtime_ns);
  Attr d1 = Stat(d.ino);
  EXPECT_EQ(d1.mtime_ns, f.mtime_ns);
  EXPECT_EQ(d1.ctime_ns, f.mtime_ns);
  EXPECT_LT(d1.atime_ns, d1.mtime_ns);
  Tick();
  // link: inode ctime, new parent m/ctime; inode mtime unchanged.
  ASSERT_TRUE(fs_->Link(kRoot, f.ino, kRootInode, "l").ok());
  Attr f2 = Stat(f.ino), root2 = Stat(kRootInode);
  EXPECT_GT(f2.ctime_ns, f.ctime_ns);
  EXPECT_EQ(f2.mtime_ns, f.mtime_ns);
  EXPECT_EQ(root2.mtime_ns, f2.ctime_ns);
  EXPECT_EQ(Stat(d.ino).mtime_ns, d1.mtime_ns);
  Tick();
  // unlink: parent m/ctime and the child's ctime.
  ASSERT_TRUE(fs_->Unlink(kRoot, kRootInode, "l").ok());
  Attr f3 = Stat(f.ino), root3 = Stat(kRootInode);
  EXPECT_GT(root3.mtime_ns, root2.mtime_ns);
  EXPECT_EQ(f3.ctime_ns, root3.mtime_ns);
  EXPECT_EQ(f3.mtime_ns, f.mtime_ns);
  Tick();
  // rename: both parents m/ctime, the moved inode's ctime, the replaced inode's ctime.
  Attr e = Mkdir(kRootInode, "e");
  Attr victim = Create(e.ino, "victim");
  Tick();
  ASSERT_TRUE(fs_->Rename(kRoot, d.ino, "f", e.ino, "victim", 0).ok());
  Attr f4 = Stat(f.ino), d4 = Stat(d.ino), e4 = Stat(e.ino), v4 = Stat(victim.ino);
  EXPECT_EQ(d4.mtime_ns, f4.ctime_ns);
  EXPECT_EQ(e4.mtime_ns, f4.ctime_ns);
  EXPECT_EQ(v4.ctime_ns, f4.ctime_ns);
  EXPECT_GT(f4.ctime_ns, f3.ctime_ns);
  EXPECT_EQ(f4.mtime_ns, f.mtime_ns);
  Tick();
  // rmdir: parent m/ctime.
  Mkdir(e.ino, "sub");
  Tick();
  Attr e5 = Stat(e.ino);
  ASSERT_TRUE(fs_->Rmdir(kRoot, e.ino, "sub").ok());
  EXPECT_GT(Stat(e.ino).mtime_ns, e5.mtime_ns);
  ASSERT_TRUE(fs_->ReclaimAllOrphans().ok());
}

TEST_F(FsTimes, DataAttributesAndXattrs) {
  Attr f = Create(kRootInode, "f");
  Tick();
  Write(f.ino, 0, "x");
  Attr a1 = Stat(f.ino);
  EXPECT_GT(a1.mtime_ns, f.mtime_ns);
  EXPECT_EQ(a1.ctime_ns, a1.mtime_ns);
  EXPECT_EQ(a1.atime_ns, f.atime_ns);
  Tick();
  // relatime: the first read after a change updates atime, the next does not.
  Read(f.ino, 0, 1);
  Attr a2 = Stat(f.ino);
  EXPECT_GT(a2.atime_ns, a1.mtime_ns);
  EXPECT_EQ(a2.mtime_ns, a1.mtime_ns);
  Tick();
  Read(f.ino, 0, 1);
  EXPECT_EQ(Stat(f.ino).atime_ns, a2.atime_ns);
  // An atime older than a day is updated.
  SetAttrRequest old;
  old.mask = kSetAtime | kSetMtime;
  old.atime_ns = 3 * 86400LL * 1000000000;
  old.mtime_ns = 1 * 86400LL * 1000000000;
  ASSERT_TRUE(SetAttr(f.ino, old).ok());

  Read(f.ino, 0, 1);
  EXPECT_GT(Stat(f.ino).atime_ns, old.atime_ns);
  Tick();
  // setattr: ctime always; a size change also mtime; the same size does not.
  Attr b = Stat(f.ino);
  ASSERT_TRUE(Chmod(f.ino, 0600).ok());
  Attr c = Stat(f.ino);
  EXPECT_GT(c.ctime_ns, b.ctime_ns);
  EXPECT_EQ(c.mtime_ns, b.mtime_ns);
  Tick();
  ASSERT_TRUE(Truncate(f.ino, 1).ok());
  Attr same = Stat(f.ino);
  EXPECT_GT(same.ctime_ns, c.ctime_ns);
  EXPECT_EQ(same.mtime_ns, c.mtime_ns);
  Tick();
  ASSERT_TRUE(Truncate(f.ino, 100).ok());
  Attr grown = Stat(f.ino);
  EXPECT_GT(grown.mtime_ns, same.mtime_ns);
  EXPECT_EQ(grown.ctime_ns, grown.mtime_ns);
  Tick();
  // UTIME_NOW for mtime only.
  SetAttrRequest now;
  now.mask = kSetMtimeNow;
  ASSERT_TRUE(SetAttr(f.ino, now).ok());
  Attr t = Stat(f.ino);
  EXPECT_GT(t.mtime_ns, grown.mtime_ns);
  EXPECT_EQ(t.atime_ns, grown.atime_ns);
  Tick();
  // xattrs: ctime only.
  ASSERT_TRUE(fs_->SetXattr(kRoot, f.ino, "user.k", "v", 0).ok());
  Attr x1 = Stat(f.ino);
  EXPECT_GT(x1.ctime_ns, t.ctime_ns);
  EXPECT_EQ(x1.mtime_ns, t.mtime_ns);
  Tick();
  ASSERT_TRUE(fs_->RemoveXattr(kRoot, f.ino, "user.k").ok());
  EXPECT_GT(Stat(f.ino).ctime_ns, x1.ctime_ns);
  // A zero-length write changes nothing.
  Attr z = Stat(f.ino);
  ASSERT_TRUE(fs_->Write(kRoot, f.ino, 0, std::span<const char>()).ok());
  EXPECT_EQ(Stat(f.ino).mtime_ns, z.mtime_ns);
  // fallocate KEEP_SIZE: ctime, not mtime; punch: both.
  Tick();
  ASSERT_TRUE(fs_->Fallocate(kRoot, f.ino, FALLOC_FL_KEEP_SIZE, 0, 1 << 16).ok());
  Attr k = Stat(f.ino);
  EXPECT_GT(k.ctime_ns, z.ctime_ns);
  EXPECT_EQ(k.mtime_ns, z.mtime_ns);
  Tick();
  ASSERT_TRUE(fs_->Fallocate(kRoot, f.ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 10).ok());
  EXPECT_GT(Stat(f.ino).mtime_ns, k.mtime_ns);
}

}  // namespace
}  // namespace cohfs::test
