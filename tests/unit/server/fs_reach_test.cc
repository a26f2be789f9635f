// What the server checks on requests that name an inode by number: that the
// caller could reach it by a path (FileSystem::Reach), and the data and link
// rules of common/permissions.h that stand in for open(2), which it never sees.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "tests/unit/server/fs_fixture.h"

namespace cohfs::test {
namespace {

using FsReach = FsTest;

TEST_F(FsReach, AnUnsearchableDirectoryHidesEverythingBelowIt) {
  Attr secret = Mkdir(kRootInode, "secret", 0700);
  Attr sub = Mkdir(secret.ino, "sub", 0777);
  Attr f = Create(sub.ino, "f", 0644);
  EXPECT_TRUE(fs_->Reach(kUser, kRootInode, false).ok());
  EXPECT_TRUE(fs_->Reach(kUser, secret.ino, false).ok());  // a directory needs x above it only
  EXPECT_EQ(Err(fs_->Reach(kUser, sub.ino, false)), EACCES);
  EXPECT_EQ(Err(fs_->Reach(kUser, f.ino, false)), EACCES);
  EXPECT_TRUE(fs_->Reach(kRoot, f.ino, false).ok());
  ASSERT_TRUE(Chmod(secret.ino, 0711).ok());
  EXPECT_TRUE(fs_->Reach(kUser, f.ino, false).ok());
  ASSERT_TRUE(Chmod(kRootInode, 0700).ok());  // the root directory counts too
  EXPECT_EQ(Err(fs_->Reach(kUser, f.ino, false)), EACCES);
  ASSERT_TRUE(Chmod(kRootInode, 0755).ok());
  EXPECT_EQ(Err(fs_->Reach(kUser, InodeId(next_ + 5), false)), ENOENT);
}

TEST_F(FsReach, AnyOneSearchablePathReachesAHardLinkedFile) {
  Attr secret = Mkdir(kRootInode, "secret", 0700);
  Attr f = Create(secret.ino, "f", 0644);
  EXPECT_EQ(Err(fs_->Reach(kUser, f.ino, false)), EACCES);
  ASSERT_TRUE(fs_->Link(kRoot, f.ino, kRootInode, "f2").ok());
  EXPECT_TRUE(fs_->Reach(kUser, f.ino, false).ok());
  ASSERT_TRUE(fs_->Unlink(kRoot, kRootInode, "f2").ok());
  EXPECT_EQ(Err(fs_->Reach(kUser, f.ino, false)), EACCES);
  // The way back moves with the name; two names in one directory count twice.
  ASSERT_TRUE(fs_->Rename(kRoot, secret.ino, "f", kRootInode, "moved", 0).ok());
  EXPECT_TRUE(fs_->Reach(kUser, f.ino, false).ok());
  ASSERT_TRUE(fs_->Link(kRoot, f.ino, kRootInode, "again").ok());
  ASSERT_TRUE(fs_->Unlink(kRoot, kRootInode, "moved").ok());
  EXPECT_TRUE(fs_->Reach(kUser, f.ino, false).ok());
  Reopen();  // the INODE_REF items are stored, not remembered
  EXPECT_TRUE(fs_->Reach(kUser, f.ino, false).ok());
  ASSERT_TRUE(fs_->Rename(kRoot, kRootInode, "again", secret.ino, "back", 0).ok());
  EXPECT_EQ(Err(fs_->Reach(kUser, f.ino, false)), EACCES);
}

TEST_F(FsReach, ARemovedInodeIsReachedOnlyByAClientHoldingIt) {
  Attr f = Create(kRootInode, "f", 0644);
  Attr d = Mkdir(kRootInode, "d", 0777);
  ASSERT_TRUE(fs_->Unlink(kRoot, kRootInode, "f").ok());
  ASSERT_TRUE(fs_->Rmdir(kRoot, kRootInode, "d").ok());
  EXPECT_EQ(Err(fs_->Reach(kUser, f.ino, false)), ENOENT);
  EXPECT_EQ(Err(fs_->Reach(kUser, d.ino, false)), ENOENT);
  EXPECT_TRUE(fs_->Reach(kUser, f.ino, true).ok());
  ASSERT_TRUE(fs_->Reclaim(f.ino).ok());
  ASSERT_TRUE(fs_->Reclaim(d.ino).ok());
}

TEST_F(FsReach, AGroupSeesTheWaysBackItMade) {
  Attr tmp = Mkdir(kRootInode, "tmp", 0777);
  Attr open_dir = Mkdir(tmp.ino, "open", 0777);
  InodeId secret = NewIno(), f = NewIno();
  FileSystem::Group g(*fs_);
  ASSERT_TRUE(fs_->Mkdir(kUser, tmp.ino, "secret", 0700, secret).ok());
  ASSERT_TRUE(fs_->Mknod(kUser, secret, "f", S_IFREG | 0644, 0, f).ok());
  EXPECT_TRUE(fs_->Reach(kUser, f, false).ok());
  EXPECT_EQ(Err(fs_->Reach(kOther, f, false)), EACCES);
  ASSERT_TRUE(fs_->Rename(kUser, secret, "f", open_dir.ino, "f", 0).ok());
  EXPECT_TRUE(fs_->Reach(kOther, f, false).ok());
  ASSERT_TRUE(g.Commit().ok());
  EXPECT_TRUE(fs_->Reach(kOther, f, false).ok());
}

TEST_F(FsReach, DataRequestsWithoutOpenState) {
  Attr tmp = Mkdir(kRootInode, "tmp", 0777);
  Attr mine = Create(tmp.ino, "mine", 0444, kUser);
  std::string data = "x";
  std::span<const char> bytes(data.data(), data.size());
  // The owner writes and reads its own file whatever the mode (through the
  // fd it created it with), ftruncate and fallocate included.
  EXPECT_TRUE(fs_->Write(kUser, mine.ino, 0, bytes).ok());
  ASSERT_TRUE(Chmod(mine.ino, 0, kUser).ok());
  EXPECT_TRUE(fs_->Read(kUser, mine.ino, 0, 1).ok());
  EXPECT_TRUE(Truncate(mine.ino, 0, kUser, /*open_handle=*/true).ok());
  EXPECT_EQ(Err(Truncate(mine.ino, 0, kUser, /*open_handle=*/false)), EACCES);  // truncate(2)
  EXPECT_TRUE(fs_->Fallocate(kUser, mine.ino, 0, 0, 4096).ok());
  // Anyone else goes by the mode; x alone lets a file be read (exec, mmap).
  Attr theirs = Create(tmp.ino, "theirs", 0644);
  EXPECT_TRUE(fs_->Read(kUser, theirs.ino, 0, 1).ok());
  EXPECT_EQ(Err(fs_->Write(kUser, theirs.ino, 0, bytes)), EACCES);
  EXPECT_EQ(Err(Truncate(theirs.ino, 0, kUser, /*open_handle=*/true)), EACCES);
  EXPECT_EQ(Err(fs_->Fallocate(kUser, theirs.ino, 0, 0, 4096)), EACCES);
  ASSERT_TRUE(Chmod(theirs.ino, 0711).ok());
  EXPECT_TRUE(fs_->Read(kUser, theirs.ino, 0, 1).ok());
  ASSERT_TRUE(Chmod(theirs.ino, 0600).ok());
  EXPECT_EQ(Err(fs_->Read(kUser, theirs.ino, 0, 1)), EACCES);
  EXPECT_TRUE(fs_->Read(kRoot, theirs.ino, 0, 1).ok());
}

TEST_F(FsReach, HardLinksToAnotherUsersFile) {
  Attr tmp = Mkdir(kRootInode, "tmp", 0777);
  Attr mine = Create(tmp.ino, "mine", 0400, kUser);
  EXPECT_TRUE(fs_->Link(kUser, mine.ino, tmp.ino, "mine2").ok());
  Attr theirs = Create(tmp.ino, "theirs", 0644);
  EXPECT_EQ(Err(fs_->Link(kUser, theirs.ino, tmp.ino, "l")), EPERM);  // may not write it
  ASSERT_TRUE(Chmod(theirs.ino, 0666).ok());
  EXPECT_TRUE(fs_->Link(kUser, theirs.ino, tmp.ino, "l").ok());
  ASSERT_TRUE(Chmod(theirs.ino, 04666).ok());
  EXPECT_EQ(Err(fs_->Link(kUser, theirs.ino, tmp.ino, "l2")), EPERM);  // set-uid
  EXPECT_TRUE(fs_->Link(kRoot, theirs.ino, tmp.ino, "l2").ok());
}

}  // namespace
}  // namespace cohfs::test
