// chattr flags (IMMUTABLE and APPEND enforced as ext4 does, the rest kept),
// RENAME_WHITEOUT, and fallocate COLLAPSE_RANGE / INSERT_RANGE; fsck must
// stay clean after each (the fixture checks at teardown).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/stat.h>

#include "common/inode_flags.h"
#include "tests/unit/server/fs_fixture.h"

namespace cohfs::test {
namespace {

using FsChattr = FsTest;

std::string Blocks(const std::string& letters) {  // one 4 KiB block per letter
  std::string s;
  for (char ch : letters) s += std::string(kBlockBytes, ch);
  return s;
}

TEST_F(FsChattr, WhoMaySetWhich) {
  Attr u = Mkdir(kRootInode, "u", 0777);
  Attr f = Create(u.ino, "f", 0644, kUser);
  EXPECT_EQ(Err(fs_->SetFlags(kUser, f.ino, FS_NOATIME_FL | FS_NODUMP_FL)), 0);
  EXPECT_EQ(FsFlags(Stat(f.ino).flags), FS_NOATIME_FL | FS_NODUMP_FL);
  EXPECT_EQ(Err(fs_->SetFlags(kOther, f.ino, 0)), EPERM);               // not the owner
  EXPECT_EQ(Err(fs_->SetFlags(kUser, f.ino, FS_IMMUTABLE_FL)), EPERM);  // root only
  EXPECT_EQ(Err(fs_->SetFlags(kUser, f.ino, FS_APPEND_FL)), EPERM);
  EXPECT_EQ(Err(fs_->SetFlags(kUser, f.ino, FS_COMPR_FL)), EOPNOTSUPP);
  EXPECT_EQ(Err(fs_->SetFlags(kRoot, f.ino, FS_IMMUTABLE_FL)), 0);
  // Only root may clear it again, and the owner's other flags cannot move while it stays.
  EXPECT_EQ(Err(fs_->SetFlags(kUser, f.ino, 0)), EPERM);
  EXPECT_EQ(Err(fs_->SetFlags(kRoot, f.ino, 0)), 0);
  EXPECT_EQ(FsFlags(Stat(f.ino).flags), 0u);
  // Our own bit is not the caller's to touch and survives a change.
  ASSERT_TRUE(fs_->SetXattr(kRoot, f.ino, "user.x", "1", 0).ok());
  EXPECT_EQ(Err(fs_->SetFlags(kRoot, f.ino, FS_NODUMP_FL)), 0);
  EXPECT_EQ(Stat(f.ino).flags, kInodeHasXattrs | FS_NODUMP_FL);
  Reopen();
  EXPECT_EQ(Stat(f.ino).flags, kInodeHasXattrs | FS_NODUMP_FL);
}

TEST_F(FsChattr, ImmutableRefusesEveryChange) {
  Attr d = Mkdir(kRootInode, "d");
  Attr f = Create(d.ino, "f");
  Write(f.ino, 0, Blocks("ab"));
  ASSERT_EQ(Err(fs_->SetFlags(kRoot, f.ino, FS_IMMUTABLE_FL)), 0);
  const std::string one = "x";
  EXPECT_EQ(Err(fs_->Write(kRoot, f.ino, 0, one)), EPERM);
  EXPECT_EQ(Err(Truncate(f.ino, 0)), EPERM);
  EXPECT_EQ(Err(Chmod(f.ino, 0600)), EPERM);
  EXPECT_EQ(Err(fs_->Open(kRoot, f.ino, O_WRONLY)), EPERM);
  EXPECT_EQ(Err(fs_->Open(kRoot, f.ino, O_RDONLY)), 0);
  EXPECT_EQ(Err(fs_->Unlink(kRoot, d.ino, "f")), EPERM);
  EXPECT_EQ(Err(fs_->Rename(kRoot, d.ino, "f", d.ino, "g", 0)), EPERM);
  EXPECT_EQ(Err(fs_->Link(kRoot, f.ino, d.ino, "l")), EPERM);
  EXPECT_EQ(Err(fs_->SetXattr(kRoot, f.ino, "user.x", "1", 0)), EPERM);
  EXPECT_EQ(Err(fs_->Fallocate(kRoot, f.ino, FALLOC_FL_KEEP_SIZE, 0, 4096)), EPERM);
  EXPECT_EQ(Read(f.ino, 0, 2 * kBlockBytes), Blocks("ab"));
  // An immutable directory takes no new name and loses none.
  Attr g = Create(d.ino, "g");
  ASSERT_EQ(Err(fs_->SetFlags(kRoot, d.ino, FS_IMMUTABLE_FL)), 0);
  EXPECT_EQ(Err(fs_->Mknod(kRoot, d.ino, "n", S_IFREG | 0644, 0, InodeId(next_++))), EPERM);
  EXPECT_EQ(Err(fs_->Unlink(kRoot, d.ino, "g")), EPERM);
  ASSERT_EQ(Err(fs_->SetFlags(kRoot, d.ino, 0)), 0);
  ASSERT_EQ(Err(fs_->SetFlags(kRoot, f.ino, 0)), 0);
  EXPECT_EQ(Err(fs_->Unlink(kRoot, d.ino, "f")), 0);
  (void)g;
}

TEST_F(FsChattr, AppendOnlyTakesWritesAtTheEndOnly) {
  Attr d = Mkdir(kRootInode, "d");
  Attr f = Create(d.ino, "f");
  Write(f.ino, 0, "abc");
  ASSERT_EQ(Err(fs_->SetFlags(kRoot, f.ino, FS_APPEND_FL)), 0);
  const std::string more = "def";
  EXPECT_EQ(Err(fs_->Write(kRoot, f.ino, 0, more)), EPERM);
  EXPECT_EQ(Err(fs_->Write(kRoot, f.ino, 3, more)), 0);
  EXPECT_EQ(Read(f.ino, 0, 10), "abcdef");
  EXPECT_EQ(Err(Truncate(f.ino, 1)), EPERM);
  EXPECT_EQ(Err(fs_->Open(kRoot, f.ino, O_WRONLY)), EPERM);
  EXPECT_EQ(Err(fs_->Open(kRoot, f.ino, O_WRONLY | O_APPEND)), 0);
  EXPECT_EQ(Err(fs_->Open(kRoot, f.ino, O_WRONLY | O_APPEND | O_TRUNC)), EPERM);
  EXPECT_EQ(Err(fs_->Unlink(kRoot, d.ino, "f")), EPERM);
  EXPECT_EQ(Err(fs_->Fallocate(kRoot, f.ino, FALLOC_FL_KEEP_SIZE, 0, 8192)), 0);
  EXPECT_EQ(Err(fs_->Fallocate(kRoot, f.ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096)),
            EPERM);
  SetAttrRequest touch;
  touch.mask = kSetAtimeNow | kSetMtimeNow;
  EXPECT_EQ(Err(SetAttr(f.ino, touch)), 0);  // touch(1) still works
  // An append-only directory takes new names but loses none.
  ASSERT_EQ(Err(fs_->SetFlags(kRoot, d.ino, FS_APPEND_FL)), 0);
  Attr g = Create(d.ino, "g");
  EXPECT_EQ(Err(fs_->Unlink(kRoot, d.ino, "g")), EPERM);
  EXPECT_EQ(Err(fs_->Rename(kRoot, d.ino, "g", d.ino, "h", 0)), EPERM);
  ASSERT_EQ(Err(fs_->SetFlags(kRoot, d.ino, 0)), 0);
  ASSERT_EQ(Err(fs_->SetFlags(kRoot, f.ino, 0)), 0);
  (void)g;
}

TEST_F(FsChattr, RenameWhiteoutLeavesACharacterDevice) {
  Attr d = Mkdir(kRootInode, "d");
  Attr f = Create(d.ino, "f");
  Write(f.ino, 0, "data");
  EXPECT_EQ(Err(fs_->Rename(kUser, d.ino, "f", d.ino, "g", kRenameWhiteout)), EPERM);
  EXPECT_EQ(Err(fs_->Rename(kRoot, d.ino, "f", d.ino, "g", kRenameWhiteout | kRenameExchange)),
            EINVAL);
  ASSERT_EQ(Err(fs_->Rename(kRoot, d.ino, "f", kRootInode, "g", kRenameWhiteout)), 0);
  EXPECT_EQ(fs_->Lookup(kRoot, kRootInode, "g")->ino, f.ino);
  auto w = fs_->Lookup(kRoot, d.ino, "f");
  ASSERT_TRUE(w.ok());
  EXPECT_NE(w->ino, f.ino);
  EXPECT_EQ(w->mode, S_IFCHR);
  EXPECT_EQ(w->rdev, 0u);
  EXPECT_EQ(w->nlink, 1u);
  // A second one gets a fresh number too, and both survive a restart.
  Create(d.ino, "h");
  ASSERT_EQ(Err(fs_->Rename(kRoot, d.ino, "h", d.ino, "h2", kRenameWhiteout | kRenameNoReplace)),
            0);
  auto w2 = fs_->Lookup(kRoot, d.ino, "h");
  ASSERT_TRUE(w2.ok());
  EXPECT_NE(w2->ino, w->ino);
  Reopen();
  EXPECT_EQ(fs_->Lookup(kRoot, d.ino, "f")->mode, S_IFCHR);
  EXPECT_EQ(Stat(d.ino).size, 3u);  // f (whiteout), h (whiteout), h2
}

TEST_F(FsChattr, CollapseRangeShiftsTheTailDown) {
  Attr f = Create(kRootInode, "f");
  Write(f.ino, 0, Blocks("abcdef"));
  Write(f.ino, 6 * kBlockBytes, "tail");  // a partial last block
  const uint64_t free0 = FreeBlocks();
  EXPECT_EQ(Err(fs_->Fallocate(kRoot, f.ino, FALLOC_FL_COLLAPSE_RANGE, 100, 4096)), EINVAL);
  EXPECT_EQ(Err(fs_->Fallocate(kRoot, f.ino, FALLOC_FL_COLLAPSE_RANGE, 0, 100)), EINVAL);
  EXPECT_EQ(Err(fs_->Fallocate(kRoot, f.ino, FALLOC_FL_COLLAPSE_RANGE, 4096, 6 * 4096)),
            EINVAL);  // reaches the end
  EXPECT_EQ(
      Err(fs_->Fallocate(kRoot, f.ino, FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_KEEP_SIZE, 0, 4096)),
      EINVAL);
  ASSERT_EQ(
      Err(fs_->Fallocate(kRoot, f.ino, FALLOC_FL_COLLAPSE_RANGE, kBlockBytes, 2 * kBlockBytes)), 0);
  EXPECT_EQ(Stat(f.ino).size, 4 * kBlockBytes + 4);
  EXPECT_EQ(Read(f.ino, 0, 8 * kBlockBytes), Blocks("adef") + "tail");
  EXPECT_EQ(FreeBlocks(), free0 + 2);  // the collapsed blocks are free again
  Reopen();
  EXPECT_EQ(Read(f.ino, 0, 8 * kBlockBytes), Blocks("adef") + "tail");
}

TEST_F(FsChattr, InsertRangeOpensAHole) {
  Attr f = Create(kRootInode, "f");
  Write(f.ino, 0, Blocks("abc"));
  EXPECT_EQ(Err(fs_->Fallocate(kRoot, f.ino, FALLOC_FL_INSERT_RANGE, 3 * kBlockBytes, 4096)),
            EINVAL);  // at the end: nothing to shift
  EXPECT_EQ(Err(fs_->Fallocate(kRoot, f.ino, FALLOC_FL_INSERT_RANGE, 4096, 512)), EINVAL);
  ASSERT_EQ(Err(fs_->Fallocate(kRoot, f.ino, FALLOC_FL_INSERT_RANGE, kBlockBytes, 2 * kBlockBytes)),
            0);
  EXPECT_EQ(Stat(f.ino).size, 5 * kBlockBytes);
  EXPECT_EQ(Read(f.ino, 0, 5 * kBlockBytes),
            Blocks("a") + std::string(2 * kBlockBytes, '\0') + Blocks("bc"));
  auto data = fs_->Lseek(f.ino, kBlockBytes, SEEK_DATA);
  ASSERT_TRUE(data.ok());
  EXPECT_EQ(*data, 3 * kBlockBytes);
  // Inside one extent (it is split), and into an inline file (it becomes extents).
  ASSERT_EQ(Err(fs_->Fallocate(kRoot, f.ino, FALLOC_FL_INSERT_RANGE, 4 * kBlockBytes, kBlockBytes)),
            0);
  EXPECT_EQ(Read(f.ino, 3 * kBlockBytes, 3 * kBlockBytes),
            Blocks("b") + std::string(kBlockBytes, '\0') + Blocks("c"));
  Attr g = Create(kRootInode, "g");
  Write(g.ino, 0, "small");
  ASSERT_EQ(Err(fs_->Fallocate(kRoot, g.ino, FALLOC_FL_INSERT_RANGE, 0, kBlockBytes)), 0);
  EXPECT_EQ(Read(g.ino, 0, 2 * kBlockBytes), std::string(kBlockBytes, '\0') + "small");
}

}  // namespace
}  // namespace cohfs::test
