// Data semantics: inline files, copy-on-write extents, holes, truncate,
// fallocate, SEEK_DATA/SEEK_HOLE, ENOSPC leaving nothing changed, and data
// surviving a reopen; checked against a byte-for-byte model.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <random>

#include "storage/items.h"
#include "storage/keys.h"
#include "tests/unit/server/fs_fixture.h"

namespace cohfs::test {
namespace {

using FsData = FsTest;

std::string Pattern(size_t n, int seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i++) s[i] = static_cast<char>('a' + (i * 7 + seed + i / 4096) % 26);
  return s;
}

TEST_F(FsData, InlineFilesAndConversion) {
  Attr f = Create(kRootInode, "f");
  Write(f.ino, 0, "hello");
  EXPECT_EQ(Read(f.ino, 0, 100), "hello");  // short at EOF
  EXPECT_EQ(Read(f.ino, 2, 2), "ll");
  EXPECT_EQ(Read(f.ino, 5, 10), "");
  EXPECT_EQ(Read(f.ino, 1000, 10), "");
  Attr a = Stat(f.ino);
  EXPECT_EQ(a.size, 5u);
  EXPECT_EQ(a.blocks, 1u);
  // Up to kInlineMaxBytes stays inline: no device space used.
  uint64_t free0 = FreeBlocks();
  std::string full = Pattern(kInlineMaxBytes, 1);
  Write(f.ino, 0, full);
  EXPECT_EQ(FreeBlocks(), free0);
  EXPECT_EQ(Read(f.ino, 0, kInlineMaxBytes + 10), full);
  // One byte more converts to an extent.
  Write(f.ino, kInlineMaxBytes, "X");
  EXPECT_EQ(Stat(f.ino).size, kInlineMaxBytes + 1);
  EXPECT_EQ(Stat(f.ino).blocks, 2 * kBlockBytes / 512);
  EXPECT_EQ(Read(f.ino, 0, kInlineMaxBytes + 10), full + "X");
  EXPECT_EQ(FreeBlocks(), free0 - 2);
  // A write in the middle of an inline file with a gap before it.
  Attr g = Create(kRootInode, "g");
  Write(g.ino, 100, "xyz");
  EXPECT_EQ(Read(g.ino, 0, 200), std::string(100, '\0') + "xyz");
  Reopen();
  EXPECT_EQ(Read(f.ino, 0, kInlineMaxBytes + 10), full + "X");
  EXPECT_EQ(Read(g.ino, 0, 200), std::string(100, '\0') + "xyz");
  Attr d = Mkdir(kRootInode, "d");
  EXPECT_EQ(Err(fs_->Read(kRoot, d.ino, 0, 10)), EISDIR);
  EXPECT_EQ(Err(fs_->Write(kRoot, d.ino, 0, std::span<const char>("x", 1))), EISDIR);
  EXPECT_EQ(Err(fs_->Read(kRoot, InodeId(next_ + 3), 0, 10)), ENOENT);
}

TEST_F(FsData, SparseHolesAndHugeOffsets) {
  Attr f = Create(kRootInode, "f");
  Write(f.ino, 10 << 20, "tail");
  EXPECT_EQ(Stat(f.ino).size, (10u << 20) + 4);
  EXPECT_EQ(Stat(f.ino).blocks, kBlockBytes / 512);  // only the written block
  EXPECT_EQ(Read(f.ino, 0, 4096), std::string(4096, '\0'));
  EXPECT_EQ(Read(f.ino, (10 << 20) - 2, 10), std::string(2, '\0') + "tail");
  // Past 4 GiB and across the 2^32 boundary.
  Attr g = Create(kRootInode, "g");
  uint64_t off = (4ull << 30) - 3;
  Write(g.ino, off, "abcdef");
  Write(g.ino, 9ull << 30, "far");
  EXPECT_EQ(Stat(g.ino).size, (9ull << 30) + 3);
  Reopen();
  EXPECT_EQ(Read(g.ino, off - 1, 8), std::string(1, 0) + "abcdef" + std::string(1, 0));
  EXPECT_EQ(Read(g.ino, 9ull << 30, 10), "far");
  EXPECT_EQ(Read(g.ino, 6ull << 30, 8), std::string(8, '\0'));
  EXPECT_EQ(*fs_->Lseek(g.ino, 0, SEEK_DATA), ((off) / kBlockBytes * kBlockBytes));
  EXPECT_EQ(*fs_->Lseek(g.ino, off, SEEK_HOLE),
            ((off) / kBlockBytes * kBlockBytes) + 2 * kBlockBytes);
  EXPECT_EQ(*fs_->Lseek(g.ino, ((off) / kBlockBytes * kBlockBytes) + 2 * kBlockBytes, SEEK_DATA),
            9ull << 30);
  EXPECT_EQ(*fs_->Lseek(g.ino, 9ull << 30, SEEK_HOLE), (9ull << 30) + 3);
  EXPECT_EQ(Err(fs_->Lseek(g.ino, (9ull << 30) + 3, SEEK_DATA)), ENXIO);
  EXPECT_EQ(Err(fs_->Lseek(g.ino, (9ull << 30) + 3, SEEK_HOLE)), ENXIO);
  EXPECT_EQ(Err(fs_->Lseek(g.ino, 0, SEEK_SET)), EINVAL);
  EXPECT_EQ(Err(fs_->Write(kRoot, g.ino, kMaxFileBytes, std::span<const char>("x", 1))), EFBIG);
}

TEST_F(FsData, OverwriteSplitsExtentsAndFreesOldSpace) {
  Attr f = Create(kRootInode, "f");
  std::string data = Pattern(2 << 20, 3);
  Write(f.ino, 0, data.substr(0, 1 << 20));
  Write(f.ino, 1 << 20, data.substr(1 << 20));
  uint64_t free0 = FreeBlocks();
  // Unaligned overwrite in the middle of the first extent: head and tail blocks are CoW.
  std::string patch(10000, 'P');
  Write(f.ino, 12345, patch);
  data.replace(12345, patch.size(), patch);
  // Overwrite across the boundary between the two extents.
  std::string patch2(8192, 'Q');
  Write(f.ino, (1 << 20) - 4000, patch2);
  data.replace((1 << 20) - 4000, patch2.size(), patch2);
  EXPECT_EQ(Read(f.ino, 0, 2 << 20), data);
  EXPECT_EQ(Stat(f.ino).blocks * 512, 2u << 20);
  EXPECT_EQ(FreeBlocks(), free0);  // the replaced blocks came back
  Reopen();
  EXPECT_EQ(Read(f.ino, 0, 2 << 20), data);
}

TEST_F(FsData, TruncateShrinkThenGrowReadsZeros) {
  // Extent file: the partial last block's tail must be zero after regrowth.
  Attr f = Create(kRootInode, "f");
  std::string data = Pattern(100000, 5);
  Write(f.ino, 0, data);
  uint64_t free0 = FreeBlocks();
  ASSERT_TRUE(Truncate(f.ino, 5000).ok());
  EXPECT_EQ(Stat(f.ino).size, 5000u);
  EXPECT_EQ(Stat(f.ino).blocks * 512, 2u * kBlockBytes);
  EXPECT_GT(FreeBlocks(), free0);
  ASSERT_TRUE(Truncate(f.ino, 200000).ok());
  EXPECT_EQ(Read(f.ino, 0, 200000), data.substr(0, 5000) + std::string(195000, '\0'));
  // Extending by a write past EOF: the gap reads as zeros too.
  ASSERT_TRUE(Truncate(f.ino, 4097).ok());
  Write(f.ino, 6000, "w");
  EXPECT_EQ(Read(f.ino, 4090, 100),
            data.substr(4090, 7) + std::string(6000 - 4097, '\0').substr(0, 93));
  EXPECT_EQ(Read(f.ino, 4097, 1904), std::string(1903, '\0') + "w");
  // Inline file.
  Attr g = Create(kRootInode, "g");
  Write(g.ino, 0, "0123456789");
  ASSERT_TRUE(Truncate(g.ino, 3).ok());
  ASSERT_TRUE(Truncate(g.ino, 8).ok());
  EXPECT_EQ(Read(g.ino, 0, 100), std::string("012") + std::string(5, '\0'));
  Write(g.ino, 9, "z");
  EXPECT_EQ(Read(g.ino, 0, 100), std::string("012") + std::string(6, '\0') + "z");
  ASSERT_TRUE(Truncate(g.ino, 0).ok());
  EXPECT_EQ(Read(g.ino, 0, 100), "");
  ASSERT_TRUE(Truncate(g.ino, 10000).ok());  // grows past inline size: a hole
  EXPECT_EQ(Read(g.ino, 0, 10000), std::string(10000, '\0'));
  EXPECT_EQ(Stat(g.ino).blocks, 0u);
  Write(g.ino, 0, "again");
  EXPECT_EQ(Read(g.ino, 0, 6), std::string("again") + '\0');
  // Truncate to 0 and reuse.
  ASSERT_TRUE(Truncate(f.ino, 0).ok());
  EXPECT_EQ(Stat(f.ino).blocks, 0u);
  Write(f.ino, 0, "tiny");
  EXPECT_EQ(Read(f.ino, 0, 10), "tiny");
  Reopen();
  EXPECT_EQ(Read(f.ino, 0, 10), "tiny");
  EXPECT_EQ(Err(Truncate(kRootInode, 0)), EISDIR);
  EXPECT_EQ(Err(Truncate(f.ino, kMaxFileBytes + 1)), EFBIG);
}

TEST_F(FsData, FallocateAndSeek) {
  Attr f = Create(kRootInode, "f");
  // Mode 0: blocks reserved, size grows, reads zeros, and SEEK_DATA sees a hole.
  auto a = fs_->Fallocate(kRoot, f.ino, 0, 0, 1 << 20);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->size, 1u << 20);
  EXPECT_EQ(a->blocks * 512, 1u << 20);
  EXPECT_EQ(Read(f.ino, 4096, 4096), std::string(4096, '\0'));
  EXPECT_EQ(Err(fs_->Lseek(f.ino, 0, SEEK_DATA)), ENXIO);
  EXPECT_EQ(*fs_->Lseek(f.ino, 0, SEEK_HOLE), 0u);
  // Writing into preallocated space.
  Write(f.ino, 8192, "data");
  EXPECT_EQ(*fs_->Lseek(f.ino, 0, SEEK_DATA), 8192u);
  EXPECT_EQ(*fs_->Lseek(f.ino, 8192, SEEK_HOLE), 12288u);
  EXPECT_EQ(Stat(f.ino).blocks * 512, 1u << 20);
  // KEEP_SIZE past EOF: size unchanged, blocks grow.
  a = fs_->Fallocate(kRoot, f.ino, FALLOC_FL_KEEP_SIZE, 1 << 20, 1 << 20);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->size, 1u << 20);
  EXPECT_EQ(a->blocks * 512, 2u << 20);
  // Punch a hole: whole blocks freed, partial blocks zeroed.
  std::string data = Pattern(64 << 10, 9);
  Attr g = Create(kRootInode, "g");
  Write(g.ino, 0, data);
  a = fs_->Fallocate(kRoot, g.ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 1000, 20000);
  ASSERT_TRUE(a.ok());
  data.replace(1000, 20000, std::string(20000, '\0'));
  EXPECT_EQ(Read(g.ino, 0, 64 << 10), data);
  EXPECT_EQ(a->size, 64u << 10);
  EXPECT_EQ(a->blocks * 512, (64u << 10) - 4 * kBlockBytes);  // blocks 1..4 are gone
  EXPECT_EQ(*fs_->Lseek(g.ino, 0, SEEK_HOLE), kBlockBytes);
  EXPECT_EQ(*fs_->Lseek(g.ino, kBlockBytes, SEEK_DATA), 5 * kBlockBytes);
  // Punch inside one block, and past EOF (no growth).
  a = fs_->Fallocate(kRoot, g.ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 30000, 10);
  ASSERT_TRUE(a.ok());
  data.replace(30000, 10, std::string(10, '\0'));
  a = fs_->Fallocate(kRoot, g.ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 60000, 1 << 20);
  ASSERT_TRUE(a.ok());
  data.replace(60000, data.size() - 60000, std::string(data.size() - 60000, '\0'));
  EXPECT_EQ(a->size, 64u << 10);
  EXPECT_EQ(Read(g.ino, 0, 64 << 10), data);
  // Punching a hole in a hole allocates nothing.
  Attr h = Create(kRootInode, "h");
  ASSERT_TRUE(Truncate(h.ino, 1 << 30).ok());
  ASSERT_TRUE(
      fs_->Fallocate(kRoot, h.ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 100, 1 << 29).ok());
  EXPECT_EQ(Stat(h.ino).blocks, 0u);
  // ZERO_RANGE: zeros, and extends the size without KEEP_SIZE.
  Attr z = Create(kRootInode, "z");
  std::string zd = Pattern(20000, 2);
  Write(z.ino, 0, zd);
  a = fs_->Fallocate(kRoot, z.ino, FALLOC_FL_ZERO_RANGE, 5000, 20000);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->size, 25000u);
  EXPECT_EQ(Read(z.ino, 0, 30000), zd.substr(0, 5000) + std::string(20000, '\0'));
  // An inline file stays inline for a small fallocate, not for one past a block.
  Attr in = Create(kRootInode, "in");
  Write(in.ino, 0, "inline");
  ASSERT_TRUE(fs_->Fallocate(kRoot, in.ino, 0, 0, 100).ok());
  EXPECT_EQ(Stat(in.ino).size, 100u);
  EXPECT_EQ(Read(in.ino, 0, 200), "inline" + std::string(94, '\0'));
  ASSERT_TRUE(fs_->Fallocate(kRoot, in.ino, FALLOC_FL_KEEP_SIZE, 0, 1 << 20).ok());
  EXPECT_EQ(Stat(in.ino).size, 100u);
  EXPECT_EQ(Stat(in.ino).blocks * 512, 1u << 20);
  EXPECT_EQ(Read(in.ino, 0, 200), "inline" + std::string(94, '\0'));
  EXPECT_EQ(*fs_->Lseek(in.ino, 0, SEEK_DATA), 0u);
  EXPECT_EQ(*fs_->Lseek(in.ino, 0, SEEK_HOLE), 100u);  // the hole at EOF
  // Inline punch.
  Attr s = Create(kRootInode, "s");
  Write(s.ino, 0, "abcdefgh");
  ASSERT_TRUE(fs_->Fallocate(kRoot, s.ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 2, 3).ok());
  EXPECT_EQ(Read(s.ino, 0, 10), std::string("ab") + std::string(3, '\0') + "fgh");
  // Errors.
  EXPECT_EQ(Err(fs_->Fallocate(kRoot, g.ino, FALLOC_FL_PUNCH_HOLE, 0, 4096)), EOPNOTSUPP);
  EXPECT_EQ(Err(fs_->Fallocate(kRoot, g.ino, 0, 0, 0)), EINVAL);
  EXPECT_EQ(Err(fs_->Fallocate(kRoot, kRootInode, 0, 0, 4096)), EISDIR);
  auto fifo = fs_->Mknod(kRoot, kRootInode, "fifo", S_IFIFO | 0644, 0, NewIno());
  EXPECT_EQ(Err(fs_->Fallocate(kRoot, fifo->ino, 0, 0, 4096)), ENODEV);
  EXPECT_EQ(Err(fs_->Fallocate(kRoot, g.ino, 0, kMaxFileBytes, 1)), EFBIG);
  Reopen();
  EXPECT_EQ(Read(g.ino, 0, 64 << 10), data);
  EXPECT_EQ(Read(f.ino, 8192, 4), "data");
}

TEST_F(FsData, TruncateDropsPreallocatedBlocks) {
  Attr f = Create(kRootInode, "f");
  Write(f.ino, 0, Pattern(10000, 1));
  ASSERT_TRUE(fs_->Fallocate(kRoot, f.ino, FALLOC_FL_KEEP_SIZE, 0, 8 << 20).ok());
  EXPECT_EQ(Stat(f.ino).blocks * 512, 8u << 20);
  ASSERT_TRUE(Truncate(f.ino, 6000).ok());
  EXPECT_EQ(Stat(f.ino).blocks * 512, 2u * kBlockBytes);
  EXPECT_EQ(Read(f.ino, 0, 7000), Pattern(10000, 1).substr(0, 6000));
}

TEST_F(FsData, NoSpaceChangesNothing) {
  Attr f = Create(kRootInode, "f");
  std::string data = Pattern(100000, 4);
  Write(f.ino, 0, data);
  Attr before = Stat(f.ino);
  uint64_t free0 = FreeBlocks();
  auto st = fs_->StatFs();
  // Bigger than the device: ENOSPC, and neither size nor space changes.
  EXPECT_EQ(Err(fs_->Fallocate(kRoot, f.ino, 0, 0, (st->total_blocks + 10) * kBlockBytes)), ENOSPC);
  EXPECT_EQ(Stat(f.ino).size, before.size);
  EXPECT_EQ(Stat(f.ino).blocks, before.blocks);
  EXPECT_EQ(FreeBlocks(), free0);
  // Fill the device almost completely, then a write that does not fit fails whole.
  Attr big = Create(kRootInode, "big");
  ASSERT_TRUE(fs_->Fallocate(kRoot, big.ino, 0, 0, (free0 - 10) * kBlockBytes).ok());
  std::string mib(1 << 20, 'M');
  EXPECT_EQ(Err(fs_->Write(kRoot, f.ino, 50000, std::span<const char>(mib.data(), mib.size()))),
            ENOSPC);
  EXPECT_EQ(Read(f.ino, 0, 200000), data);
  EXPECT_EQ(Stat(f.ino).size, before.size);
  EXPECT_EQ(FreeBlocks(), 10u);
  // Space freed by an unlink becomes usable (after it is durable).
  ASSERT_TRUE(fs_->Unlink(kRoot, kRootInode, "big").ok());
  ASSERT_TRUE(fs_->Reclaim(big.ino).ok());
  Write(f.ino, 50000, mib);
  EXPECT_EQ(Read(f.ino, 50000, 1 << 20), mib);
  // Likewise for fallocate.
  Attr big2 = Create(kRootInode, "big2");
  uint64_t avail = fs_->StatFs()->free_blocks - 10;
  ASSERT_TRUE(fs_->Fallocate(kRoot, big2.ino, 0, 0, avail * kBlockBytes).ok());
  ASSERT_TRUE(fs_->Unlink(kRoot, kRootInode, "big2").ok());
  ASSERT_TRUE(fs_->Reclaim(big2.ino).ok());
  Attr big3 = Create(kRootInode, "big3");
  EXPECT_TRUE(fs_->Fallocate(kRoot, big3.ino, 0, 0, avail * kBlockBytes).ok());
}

// COHFS_STRESS_STEPS=n and COHFS_STRESS_SEED=s run a longer walk.
TEST_F(FsData, RandomOperationsMatchAModel) {
  const char* steps_env = getenv("COHFS_STRESS_STEPS");
  const char* seed_env = getenv("COHFS_STRESS_SEED");
  const int steps = steps_env ? atoi(steps_env) : 400;
  const uint64_t seed = seed_env ? strtoull(seed_env, nullptr, 10) : 12345;
  std::mt19937_64 rng(seed);
  Attr f = Create(kRootInode, "f");
  std::string model;
  const uint64_t kSpan = 3 << 20;
  for (int step = 0; step < steps; step++) {
    int op = static_cast<int>(rng() % 14);
    uint64_t off = rng() % kSpan;
    if (rng() % 4 == 0) off = rng() % 10000;  // exercise the inline range too
    uint64_t len = 1 + rng() % (rng() % 3 == 0 ? 300000 : 5000);
    if (op < 6) {
      std::string d = Pattern(len, step);
      Write(f.ino, off, d);
      if (model.size() < off + len) model.resize(off + len, '\0');
      model.replace(off, len, d);
    } else if (op < 8) {
      uint64_t size = rng() % 3 == 0 ? rng() % 8000 : rng() % kSpan;
      ASSERT_TRUE(Truncate(f.ino, size).ok());
      model.resize(size, '\0');
    } else if (op < 10) {
      ASSERT_TRUE(
          fs_->Fallocate(kRoot, f.ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len).ok());
      if (off < model.size()) {
        uint64_t n = std::min<uint64_t>(len, model.size() - off);
        model.replace(off, n, std::string(n, '\0'));
      }
    } else if (op < 12) {
      bool keep = rng() % 2;
      ASSERT_TRUE(fs_->Fallocate(kRoot, f.ino,
                                 FALLOC_FL_ZERO_RANGE | (keep ? FALLOC_FL_KEEP_SIZE : 0), off, len)
                      .ok());
      if (off < model.size()) {
        uint64_t n = std::min<uint64_t>(len, model.size() - off);
        model.replace(off, n, std::string(n, '\0'));
      }
      if (!keep && model.size() < off + len) model.resize(off + len, '\0');
    } else {
      bool keep = rng() % 2;
      ASSERT_TRUE(fs_->Fallocate(kRoot, f.ino, keep ? FALLOC_FL_KEEP_SIZE : 0, off, len).ok());
      if (!keep && model.size() < off + len) model.resize(off + len, '\0');
    }
    ASSERT_EQ(Stat(f.ino).size, model.size()) << "step " << step << " op " << op;
    if (step % 25 == 0 || step == steps - 1) {
      ASSERT_EQ(Read(f.ino, 0, static_cast<uint32_t>(model.size())), model) << "step " << step;
      if (step % 100 == 0) Reopen();
    }
    if (step % 200 == 199) {
      ExpectFsckClean();
      if (HasFailure()) return;
    }
  }
  ASSERT_EQ(Read(f.ino, 0, static_cast<uint32_t>(model.size())), model);
}

TEST_F(FsData, ChecksumMismatchIsEio) {
  Attr f = Create(kRootInode, "f");
  std::string data = Pattern(2 * kBlockBytes, 6);
  Write(f.ino, 0, data);
  ASSERT_TRUE(fs_->Sync().ok());
  auto raw = tv_.volume().items().Get(ItemKey{f.ino.value, ItemType::kExtent, 0});
  ASSERT_TRUE(raw.ok() && raw->has_value());
  ExtentItem e;
  ASSERT_TRUE(DecodeExtent(**raw, &e).ok());
  int fd = open(tv_.image().c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(pwrite(fd, "garbage", 7, static_cast<off_t>(e.device_offset + 100)), 7);
  ASSERT_EQ(fsync(fd), 0);
  close(fd);
  EXPECT_EQ(Err(fs_->Read(kRoot, f.ino, 0, 10)), EIO);
  EXPECT_EQ(Err(fs_->Read(kRoot, f.ino, 4000, 200)), EIO);
  EXPECT_EQ(Read(f.ino, kBlockBytes, kBlockBytes), data.substr(kBlockBytes));  // own checksum
  // A partial write into the bad block needs its old bytes: EIO, nothing changed.
  EXPECT_EQ(Err(fs_->Write(kRoot, f.ino, 10, std::span<const char>("x", 1))), EIO);
  // Overwriting the whole block replaces it.
  Write(f.ino, 0, data.substr(0, kBlockBytes));
  EXPECT_EQ(Read(f.ino, 0, 2 * kBlockBytes), data);
}

TEST_F(FsData, ReadOnlyStoreFailsWritesWithEio) {
  Attr f = Create(kRootInode, "f");
  Write(f.ino, 0, "keep");
  ASSERT_TRUE(fs_->Sync().ok());
  fs_.reset();
  tv_.Close();
  {
    VolumeOptions o;
    o.device = tv_.image();
    o.read_only = true;
    auto v = Volume::Open(o);
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    FileSystem ro(**v);
    EXPECT_EQ(*ro.Read(kRoot, f.ino, 0, 10), "keep");
    EXPECT_EQ(ro.Mknod(kRoot, kRootInode, "g", S_IFREG | 0644, 0, InodeId(next_)).errno_value(),
              EIO);
    EXPECT_EQ(ro.Write(kRoot, f.ino, 0, std::span<const char>("x", 1)).errno_value(), EIO);
    EXPECT_EQ(ro.Unlink(kRoot, kRootInode, "f").errno_value(), EIO);
    EXPECT_EQ(ro.SetXattr(kRoot, f.ino, "user.a", "b", 0).errno_value(), EIO);
  }
  tv_.Reopen();
  Open();
  EXPECT_EQ(Read(f.ino, 0, 10), "keep");
}

}  // namespace
}  // namespace cohfs::test
