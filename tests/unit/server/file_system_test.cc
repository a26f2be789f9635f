// FileSystem semantics against a real volume on an image file (no mocks).
#include "server/file_system.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/limits.h"
#include "storage/fsck.h"
#include "storage/keys.h"
#include "tests/unit/server/fs_fixture.h"

namespace cohfs {
namespace {

using test::kOther;
using test::kRoot;
using test::kUser;
using FileSystemTest = test::FsTest;

TEST_F(FileSystemTest, CreateLookupAndErrors) {
  Attr f = Create(kRootInode, "f");
  auto l = fs_->Lookup(kRoot, kRootInode, "f");
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->ino, f.ino);
  EXPECT_EQ(fs_->Lookup(kRoot, kRootInode, "nope").errno_value(), ENOENT);
  EXPECT_EQ(fs_->Lookup(kRoot, f.ino, "x").errno_value(), ENOTDIR);
  EXPECT_EQ(fs_->Lookup(kRoot, kRootInode, std::string(256, 'a')).errno_value(), ENAMETOOLONG);
  EXPECT_EQ(fs_->Mknod(kRoot, kRootInode, "f", S_IFREG | 0644, 0, NewIno()).errno_value(), EEXIST);
  // Inode numbers must have been handed out and be unused.
  EXPECT_EQ(fs_->Mknod(kRoot, kRootInode, "g", S_IFREG, 0, InodeId(1ull << 40)).errno_value(),
            EINVAL);
  EXPECT_EQ(fs_->Mknod(kRoot, kRootInode, "g", S_IFREG, 0, f.ino).errno_value(), EEXIST);
}

TEST_F(FileSystemTest, ServerRefusesWhatTheCallerMayNot) {
  Attr priv = Mkdir(kRootInode, "priv", 0700);
  Create(priv.ino, "secret", 0600);
  EXPECT_EQ(fs_->Lookup(kUser, priv.ino, "secret").errno_value(), EACCES);
  EXPECT_EQ(fs_->Mknod(kUser, priv.ino, "x", S_IFREG | 0644, 0, NewIno()).errno_value(), EACCES);
  EXPECT_EQ(fs_->ReadDir(kUser, priv.ino, 0, 10).errno_value(), EACCES);
  Attr f = Create(kRootInode, "rootfile", 0644);
  EXPECT_EQ(fs_->Open(kUser, f.ino, O_WRONLY).errno_value(), EACCES);
  EXPECT_TRUE(fs_->Open(kUser, f.ino, O_RDONLY).ok());
  SetAttrRequest chmod;
  chmod.mask = kSetMode;
  chmod.mode = 0777;
  EXPECT_EQ(fs_->SetAttr(kUser, f.ino, chmod).errno_value(), EPERM);
  SetAttrRequest chown;
  chown.mask = kSetUid;
  chown.uid = 1000;
  EXPECT_EQ(fs_->SetAttr(kUser, f.ino, chown).errno_value(), EPERM);
  SetAttrRequest touch;
  touch.mask = kSetMtime;
  touch.mtime_ns = 5;
  EXPECT_EQ(fs_->SetAttr(kUser, f.ino, touch).errno_value(), EPERM);
  EXPECT_EQ(fs_->SetXattr(kUser, f.ino, "user.a", "b", 0).errno_value(), EACCES);
  EXPECT_EQ(fs_->SetXattr(kUser, f.ino, "trusted.a", "b", 0).errno_value(), EPERM);
  // Sticky directory: others' entries cannot be removed.
  Attr tmp = Mkdir(kRootInode, "tmp", 01777);
  Create(tmp.ino, "mine", 0644, kUser);
  EXPECT_EQ(fs_->Unlink(kOther, tmp.ino, "mine").errno_value(), EPERM);
  EXPECT_TRUE(fs_->Unlink(kUser, tmp.ino, "mine").ok());
}

TEST_F(FileSystemTest, RenameRules) {
  Attr a = Mkdir(kRootInode, "a");
  Attr b = Mkdir(a.ino, "b");
  EXPECT_EQ(fs_->Rename(kRoot, kRootInode, "a", b.ino, "a2", 0).errno_value(), EINVAL);
  Create(kRootInode, "f");
  Create(kRootInode, "g");
  EXPECT_EQ(fs_->Rename(kRoot, kRootInode, "f", kRootInode, "g", kRenameNoReplace).errno_value(),
            EEXIST);
  auto replaced = fs_->Rename(kRoot, kRootInode, "f", kRootInode, "g", 0);
  ASSERT_TRUE(replaced.ok());
  ASSERT_TRUE(replaced->has_value());
  EXPECT_EQ(fs_->GetAttr(**replaced)->nlink, 0u);  // an orphan until reclaimed
  ASSERT_TRUE(fs_->Reclaim(**replaced).ok());
  EXPECT_EQ(fs_->GetAttr(**replaced).errno_value(), ENOENT);
  EXPECT_TRUE(fs_->Rename(kRoot, kRootInode, "g", kRootInode, "a", kRenameExchange).ok());
  EXPECT_TRUE(S_ISDIR(fs_->Lookup(kRoot, kRootInode, "g")->mode));
  EXPECT_TRUE(S_ISREG(fs_->Lookup(kRoot, kRootInode, "a")->mode));
}

TEST_F(FileSystemTest, HundredThousandEntriesListInStableOrder) {
  Attr d = Mkdir(kRootInode, "big");
  const int kEntries = 100000;
  for (int i = 0; i < kEntries; i++) {
    ASSERT_TRUE(
        fs_->Mknod(kRoot, d.ino, "e" + std::to_string(i), S_IFREG | 0644, 0, NewIno()).ok());
  }
  uint64_t cookie = 0;
  int seen = 0;
  while (true) {
    auto batch = fs_->ReadDir(kRoot, d.ino, cookie, 4096);
    ASSERT_TRUE(batch.ok());
    if (batch->empty()) break;
    for (auto& e : *batch) {
      EXPECT_EQ(e.name, seen == kEntries - 1 ? "late" : "e" + std::to_string(seen));
      EXPECT_GT(e.cookie, cookie);
      cookie = e.cookie;
      seen++;
    }
    // Removing an entry not yet listed and adding one do not disturb the walk.
    if (seen == 4096) {
      ASSERT_TRUE(fs_->Unlink(kRoot, d.ino, "e99999").ok());
      Create(d.ino, "late");
    }
  }
  EXPECT_EQ(seen, kEntries);  // 99,999 originals plus "late" at the end
}

TEST_F(FileSystemTest, CopyOnWriteOverwriteSurvivesReopen) {
  Attr f = Create(kRootInode, "f");
  std::string data(3 << 20, '\0');
  for (size_t i = 0; i < data.size(); i++) data[i] = static_cast<char>(i * 13 + i / 7);
  for (size_t off = 0; off < data.size(); off += kMaxIoBytes) {
    Write(f.ino, off, data.substr(off, kMaxIoBytes));
  }
  std::string patch(10000, 'P');
  Write(f.ino, 1234567, patch);
  data.replace(1234567, patch.size(), patch);
  Reopen();
  EXPECT_EQ(Read(f.ino, 0, kMaxIoBytes) + Read(f.ino, kMaxIoBytes, kMaxIoBytes) +
                Read(f.ino, 2 * kMaxIoBytes, kMaxIoBytes),
            data);
  EXPECT_EQ(fs_->GetAttr(f.ino)->blocks * 512, 3u << 20);
}

TEST_F(FileSystemTest, InlineGrowsIntoExtentsAndTruncateZeroes) {
  Attr f = Create(kRootInode, "f");
  Write(f.ino, 0, "small");
  EXPECT_EQ(Read(f.ino, 0, 100), "small");
  Write(f.ino, 5000, "far");
  EXPECT_EQ(Read(f.ino, 0, 5), "small");
  EXPECT_EQ(Read(f.ino, 5, 10), std::string(10, '\0'));
  EXPECT_EQ(Read(f.ino, 5000, 10), "far");
  SetAttrRequest t;
  t.mask = kSetSize;
  t.size = 3;
  ASSERT_TRUE(fs_->SetAttr(kRoot, f.ino, t).ok());
  t.size = 6000;
  ASSERT_TRUE(fs_->SetAttr(kRoot, f.ino, t).ok());
  EXPECT_EQ(Read(f.ino, 0, 6000), "sma" + std::string(5997, '\0'));
}

TEST_F(FileSystemTest, SparseFilesAndSeek) {
  Attr f = Create(kRootInode, "f");
  Write(f.ino, 5ull << 30, "end");
  EXPECT_EQ(fs_->GetAttr(f.ino)->size, (5ull << 30) + 3);
  EXPECT_EQ(Read(f.ino, 1 << 30, 16), std::string(16, '\0'));
  EXPECT_EQ(*fs_->Lseek(f.ino, 0, SEEK_DATA), 5ull << 30);
  EXPECT_EQ(*fs_->Lseek(f.ino, 0, SEEK_HOLE), 0u);
  EXPECT_EQ(*fs_->Lseek(f.ino, 5ull << 30, SEEK_HOLE), (5ull << 30) + 3);
  ASSERT_TRUE(
      fs_->Fallocate(kRoot, f.ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 5ull << 30, 4096)
          .ok());
  EXPECT_EQ(fs_->Lseek(f.ino, 0, SEEK_DATA).errno_value(), ENXIO);
  EXPECT_EQ(fs_->GetAttr(f.ino)->blocks, 0u);
}

TEST_F(FileSystemTest, XattrFlags) {
  Attr f = Create(kRootInode, "f");
  EXPECT_TRUE(fs_->SetXattr(kRoot, f.ino, "user.a", "1", XATTR_CREATE).ok());
  EXPECT_EQ(fs_->SetXattr(kRoot, f.ino, "user.a", "2", XATTR_CREATE).errno_value(), EEXIST);
  EXPECT_EQ(fs_->SetXattr(kRoot, f.ino, "user.b", "2", XATTR_REPLACE).errno_value(), ENODATA);
  EXPECT_EQ(fs_->SetXattr(kRoot, f.ino, "bogus.b", "2", 0).errno_value(), EOPNOTSUPP);
  EXPECT_EQ(fs_->SetXattr(kRoot, f.ino, "user.big", std::string(kMaxXattrValueBytes + 1, 'x'), 0)
                .errno_value(),
            E2BIG);
  EXPECT_EQ(*fs_->GetXattr(kRoot, f.ino, "user.a"), "1");
  EXPECT_EQ(fs_->ListXattr(kRoot, f.ino)->size(), 1u);
  EXPECT_TRUE(fs_->RemoveXattr(kRoot, f.ino, "user.a").ok());
  EXPECT_EQ(fs_->GetXattr(kRoot, f.ino, "user.a").errno_value(), ENODATA);
}

TEST_F(FileSystemTest, OrphansAreReclaimedAtStart) {
  Attr f = Create(kRootInode, "f");
  Write(f.ino, 0, std::string(1 << 20, 'x'));
  uint64_t free_before = fs_->StatFs()->free_blocks;
  ASSERT_TRUE(fs_->Unlink(kRoot, kRootInode, "f").ok());
  EXPECT_EQ(Read(f.ino, 0, 4), "xxxx");  // still readable while referenced
  Reopen();
  ASSERT_TRUE(fs_->ReclaimAllOrphans().ok());
  EXPECT_EQ(fs_->GetAttr(f.ino).errno_value(), ENOENT);
  ASSERT_TRUE(fs_->Sync().ok());
  EXPECT_EQ(fs_->StatFs()->free_blocks, free_before + (1 << 20) / kBlockBytes);
}

TEST_F(FileSystemTest, TimestampsMoveAsOnLinux) {
  Attr d = Mkdir(kRootInode, "d");
  Attr f = Create(d.ino, "f");
  Attr d1 = *fs_->GetAttr(d.ino);
  EXPECT_GE(d1.mtime_ns, f.mtime_ns);
  Write(f.ino, 0, "x");
  Attr f1 = *fs_->GetAttr(f.ino);
  EXPECT_GT(f1.mtime_ns, f.mtime_ns);
  EXPECT_EQ(f1.ctime_ns, f1.mtime_ns);
  ASSERT_TRUE(fs_->Link(kRoot, f.ino, kRootInode, "l").ok());
  Attr f2 = *fs_->GetAttr(f.ino);
  EXPECT_GT(f2.ctime_ns, f1.ctime_ns);
  EXPECT_EQ(f2.mtime_ns, f1.mtime_ns);
  EXPECT_EQ(f2.nlink, 2u);
}

// A change a client made locally carries the client's time (DESIGN §6): every
// time it sets is that time.
TEST_F(FileSystemTest, ClientTimesAreUsedByEveryNamespaceAndXattrChange) {
  constexpr int64_t kT = 1'000'000'000;
  auto d = fs_->Mkdir(kRoot, kRootInode, "d", 0755, NewIno(), kT);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->mtime_ns, kT);
  EXPECT_EQ(Stat(kRootInode).mtime_ns, kT);
  auto s = fs_->Symlink(kRoot, d->ino, "s", "target", NewIno(), 2 * kT);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->ctime_ns, 2 * kT);
  EXPECT_EQ(Stat(d->ino).ctime_ns, 2 * kT);
  Attr f = Create(kRootInode, "f");
  ASSERT_TRUE(fs_->Link(kRoot, f.ino, d->ino, "l", 3 * kT).ok());
  EXPECT_EQ(Stat(f.ino).ctime_ns, 3 * kT);
  EXPECT_EQ(Stat(d->ino).mtime_ns, 3 * kT);
  ASSERT_TRUE(fs_->Rename(kRoot, d->ino, "l", kRootInode, "m", 0, 4 * kT).ok());
  EXPECT_EQ(Stat(f.ino).ctime_ns, 4 * kT);
  EXPECT_EQ(Stat(d->ino).mtime_ns, 4 * kT);
  EXPECT_EQ(Stat(kRootInode).ctime_ns, 4 * kT);
  ASSERT_TRUE(fs_->Unlink(kRoot, kRootInode, "m", 5 * kT).ok());
  EXPECT_EQ(Stat(f.ino).ctime_ns, 5 * kT);
  EXPECT_EQ(Stat(kRootInode).mtime_ns, 5 * kT);
  ASSERT_TRUE(fs_->SetXattr(kRoot, f.ino, "user.a", "1", 0, 6 * kT).ok());
  EXPECT_EQ(Stat(f.ino).ctime_ns, 6 * kT);
  ASSERT_TRUE(fs_->RemoveXattr(kRoot, f.ino, "user.a", 7 * kT).ok());
  EXPECT_EQ(Stat(f.ino).ctime_ns, 7 * kT);
  ASSERT_TRUE(fs_->Unlink(kRoot, d->ino, "s").ok());
  ASSERT_TRUE(fs_->Rmdir(kRoot, kRootInode, "d", 8 * kT).ok());
  EXPECT_EQ(Stat(kRootInode).mtime_ns, 8 * kT);
  EXPECT_EQ(Stat(kRootInode).ctime_ns, 8 * kT);
}

// A group: its changes see each other, the store sees none of them before
// Commit, and all of them after.
TEST_F(FileSystemTest, AGroupCommitsAllItsChangesAtOnce) {
  InodeId d = NewIno(), f = NewIno();
  {
    FileSystem::Group group(*fs_);
    ASSERT_TRUE(fs_->Mkdir(kRoot, kRootInode, "d", 0755, d).ok());
    ASSERT_TRUE(fs_->Mknod(kRoot, d, "f", S_IFREG | 0644, 0, f).ok());  // inside the new dir
    Write(f, 0, std::string(3 * kBlockBytes, 'x'));
    EXPECT_EQ(fs_->Lookup(kRoot, d, "f")->ino, f);  // the group's own reads see it
    ItemKey key{d.value, ItemType::kInode, 0};
    EXPECT_FALSE(tv_.volume().items().Get(key)->has_value());  // the store does not
    ASSERT_TRUE(group.Commit().ok());
  }
  EXPECT_EQ(fs_->Lookup(kRoot, kRootInode, "d")->ino, d);
  EXPECT_EQ(Read(f, kBlockBytes, 3), "xxx");
  EXPECT_EQ(Stat(d).nlink, 2u);
  Reopen();
  EXPECT_EQ(Read(f, 0, 2), "xx");
}

// Dropped without Commit, a group leaves no trace: no names, no inodes, and
// the space it allocated or freed is as before (fsck checks the rest).
TEST_F(FileSystemTest, ADroppedGroupLeavesNothing) {
  Attr f = Create(kRootInode, "f");
  Write(f.ino, 0, std::string(64 * kBlockBytes, 'y'));
  uint64_t free_before = FreeBlocks();
  {
    FileSystem::Group group(*fs_);
    ASSERT_TRUE(Truncate(f.ino, kBlockBytes + 10).ok());  // frees, and rewrites a tail block
    ASSERT_TRUE(fs_->Mkdir(kRoot, kRootInode, "d", 0755, NewIno()).ok());
    Attr g = Create(kRootInode, "g");
    Write(g.ino, 0, std::string(8 * kBlockBytes, 'z'));  // allocates
    ASSERT_TRUE(fs_->Unlink(kRoot, kRootInode, "f").ok());
  }
  EXPECT_EQ(FreeBlocks(), free_before);
  EXPECT_EQ(Err(fs_->Lookup(kRoot, kRootInode, "d")), ENOENT);
  EXPECT_EQ(Err(fs_->Lookup(kRoot, kRootInode, "g")), ENOENT);
  Attr a = Stat(f.ino);
  EXPECT_EQ(a.nlink, 1u);
  EXPECT_EQ(a.size, 64u * kBlockBytes);
  EXPECT_EQ(Read(f.ino, 63 * kBlockBytes, 2), "yy");
  EXPECT_EQ(Stat(kRootInode).size, 1u);  // one entry: f
}

}  // namespace
}  // namespace cohfs
