#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "common/limits.h"
#include "storage/allocator.h"
#include "storage/fsck.h"
#include "storage/items.h"
#include "storage/keys.h"
#include "tests/unit/storage/test_volume.h"

namespace cohfs {
namespace {

using test::TempVolume;

TEST(Keys, RoundTripAndNaturalOrder) {
  std::vector<ItemKey> keys = {
      {0, ItemType::kOrphan, 5},      {0, ItemType::kFree, 1ull << 40}, {1, ItemType::kInode, 0},
      {1, ItemType::kDirIndex, 3},    {1, ItemType::kDirIndex, 256},    {2, ItemType::kInode, 0},
      {256, ItemType::kInode, 0},     {256, ItemType::kExtent, 4096},   {1ull << 33, ItemType::kInode, 0}};
  std::vector<std::string> encoded;
  for (auto& k : keys) {
    std::string e = EncodeKey(k);
    ASSERT_EQ(e.size(), kEncodedKeyBytes);
    ItemKey back;
    ASSERT_TRUE(DecodeKey(e, &back).ok());
    EXPECT_EQ(back, k);
    encoded.push_back(e);
  }
  // Bytewise order of the encodings is the numeric order of (objectid, type, offset).
  EXPECT_TRUE(std::is_sorted(encoded.begin(), encoded.end()));
  ItemKey k;
  EXPECT_EQ(DecodeKey("short", &k).errno_value(), EIO);
  std::string bad_type = EncodeKey({1, ItemType::kInode, 0});
  bad_type[8] = 99;
  EXPECT_EQ(DecodeKey(bad_type, &k).errno_value(), EIO);
}

TEST(Keys, NameHashIsStable) {
  // Golden values: the on-disk format depends on them never changing.
  EXPECT_EQ(NameHash(""), NameHash(""));
  EXPECT_NE(NameHash("a"), NameHash("b"));
  EXPECT_LT(NameHash("Makefile"), 1ull << 63);
}

TEST(Items, RoundTrips) {
  InodeItem i;
  i.mode = 0100644;
  i.uid = 7;
  i.size = 1ull << 40;
  i.mtime_ns = -5;
  i.next_dir_seq = 99;
  InodeItem i2;
  ASSERT_TRUE(DecodeInode(EncodeInode(i), &i2).ok());
  EXPECT_EQ(i2.mode, i.mode);
  EXPECT_EQ(i2.size, i.size);
  EXPECT_EQ(i2.mtime_ns, -5);
  EXPECT_EQ(i2.next_dir_seq, 99u);

  ExtentItem e{1 << 20, 8192, 0, {1, 2}};
  ExtentItem e2;
  ASSERT_TRUE(DecodeExtent(EncodeExtent(e), &e2).ok());
  EXPECT_EQ(e2.crcs, e.crcs);
  EXPECT_EQ(e2.device_offset, e.device_offset);

  DirNameItem d{{{"a", 3}, {"b", 4}}};
  DirNameItem d2;
  ASSERT_TRUE(DecodeDirName(EncodeDirName(d), &d2).ok());
  EXPECT_EQ(d2.entries, d.entries);

  XattrItem x{{{"user.k", std::string("v\0w", 3)}}};
  XattrItem x2;
  ASSERT_TRUE(DecodeXattr(EncodeXattr(x), &x2).ok());
  EXPECT_EQ(x2.entries, x.entries);
}

TEST(Items, MalformedValuesAreEio) {
  std::string inode = EncodeInode(InodeItem{});
  InodeItem i;
  EXPECT_EQ(DecodeInode(inode.substr(0, inode.size() - 1), &i).errno_value(), EIO);
  EXPECT_EQ(DecodeInode(inode + "x", &i).errno_value(), EIO);
  EXPECT_EQ(DecodeInode("", &i).errno_value(), EIO);
  std::string bad_version = inode;
  bad_version[0] = 9;
  EXPECT_EQ(DecodeInode(bad_version, &i).errno_value(), EIO);
  // A list count far larger than the bytes present must not allocate or crash.
  std::string names = EncodeDirName(DirNameItem{{{"a", 1}}});
  names[1] = names[2] = names[3] = names[4] = '\xff';
  DirNameItem d;
  EXPECT_EQ(DecodeDirName(names, &d).errno_value(), EIO);
  std::string ext = EncodeExtent(ExtentItem{0, 4096, 0, {1}});
  ExtentItem e;
  EXPECT_EQ(DecodeExtent(ext.substr(0, 10), &e).errno_value(), EIO);
}

TEST(Allocator, AllocateFreePendingAndAbort) {
  TempVolume tv;
  Volume& v = tv.volume();
  Allocator& a = v.allocator();
  uint64_t total = a.free_bytes();
  EXPECT_EQ(total, (64ull << 20) - kDataStartBytes);
  std::vector<DeviceRange> got;
  {
    auto txn = v.items().BeginTxn();
    auto r = a.Allocate(10000, *txn);  // rounds up to 3 blocks
    ASSERT_TRUE(r.ok());
    ASSERT_EQ(r->size(), 1u);
    EXPECT_EQ((*r)[0].length, 3 * kBlockBytes);
    EXPECT_EQ(a.allocatable_bytes(), total - 3 * kBlockBytes);
    // Dropped uncommitted: the space comes back.
  }
  EXPECT_EQ(a.allocatable_bytes(), total);
  {
    auto txn = v.items().BeginTxn();
    auto r = a.Allocate(1 << 20, *txn);
    ASSERT_TRUE(r.ok());
    got = *r;
    ASSERT_TRUE(v.items().Commit(*txn, true).ok());
  }
  {
    auto txn = v.items().BeginTxn();
    a.Free(got[0], *txn);
    ASSERT_TRUE(v.items().Commit(*txn, true).ok());
  }
  // Freed but not yet released: counted free, not allocatable.
  EXPECT_EQ(a.free_bytes(), total);
  EXPECT_EQ(a.allocatable_bytes(), total - (1 << 20));
  a.ReleasePending();
  EXPECT_EQ(a.allocatable_bytes(), total);
  {
    auto txn = v.items().BeginTxn();
    EXPECT_EQ(a.Allocate(total + kBlockBytes, *txn).errno_value(), ENOSPC);
  }
  EXPECT_EQ(a.allocatable_bytes(), total);
  // The persisted FREE items match memory after a reopen, and fsck agrees.
  tv.Reopen();
  EXPECT_EQ(tv.volume().allocator().free_bytes(), total);
  auto report = Fsck(tv.volume(), true);
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok()) << report->problems[0];
}

TEST(Allocator, FragmentedAllocationSpansRanges) {
  TempVolume tv;
  Volume& v = tv.volume();
  Allocator& a = v.allocator();
  // Fill the device with 1 MiB pieces, free every other one.
  std::vector<DeviceRange> pieces;
  while (true) {
    auto txn = v.items().BeginTxn();
    auto r = a.Allocate(1 << 20, *txn);
    if (!r.ok()) break;
    ASSERT_TRUE(v.items().Commit(*txn, false).ok());
    for (auto& p : *r) pieces.push_back(p);
  }
  auto txn = v.items().BeginTxn();
  for (size_t i = 0; i < pieces.size(); i += 2) a.Free(pieces[i], *txn);
  ASSERT_TRUE(v.items().Commit(*txn, false).ok());
  a.ReleasePending();
  auto txn2 = v.items().BeginTxn();
  auto r = a.Allocate(3 << 20, *txn2);
  ASSERT_TRUE(r.ok());
  EXPECT_GE(r->size(), 3u);
  uint64_t sum = 0;
  for (auto& p : *r) sum += p.length;
  EXPECT_EQ(sum, 3u << 20);
}

TEST(Extents, ChecksumMismatchIsEio) {
  TempVolume tv;
  Volume& v = tv.volume();
  std::string data(3 * kBlockBytes + 100, 'q');
  for (size_t i = 0; i < data.size(); i++) data[i] = static_cast<char>(i % 251);
  ExtentItem e;
  {
    auto txn = v.items().BeginTxn();
    auto r = v.extents().WriteNew(std::span<const char>(data.data(), data.size()), *txn);
    ASSERT_TRUE(r.ok());
    ASSERT_EQ(r->size(), 1u);
    e = (*r)[0];
    ASSERT_TRUE(v.items().Commit(*txn, true).ok());
  }
  EXPECT_EQ(e.length, 4 * kBlockBytes);
  std::string out(data.size(), '\0');
  ASSERT_TRUE(v.extents().Read(e, 0, std::span<char>(out.data(), out.size())).ok());
  EXPECT_EQ(out, data);
  std::string mid(50, '\0');
  ASSERT_TRUE(v.extents().Read(e, 5000, std::span<char>(mid.data(), mid.size())).ok());
  EXPECT_EQ(mid, data.substr(5000, 50));
  // Corrupt one byte of block 2 directly on the image file.
  int fd = open(tv.image().c_str(), O_RDWR);
  char x = 'X';
  ASSERT_EQ(pwrite(fd, &x, 1, static_cast<off_t>(e.device_offset + 2 * kBlockBytes + 7)), 1);
  close(fd);
  EXPECT_EQ(v.extents().Read(e, 2 * kBlockBytes, std::span<char>(mid.data(), 10)).errno_value(), EIO);
  EXPECT_TRUE(v.extents().Read(e, 0, std::span<char>(mid.data(), 10)).ok());  // block 0 is fine
  EXPECT_EQ(v.extents().Verify(e).errno_value(), EIO);
}

TEST(Volume, FormatRefusesToOverwriteWithoutForce) {
  TempVolume tv;
  tv.Close();
  FormatOptions f;
  f.device = tv.image();
  EXPECT_EQ(Volume::Format(f).errno_value(), EEXIST);
  f.force = true;
  EXPECT_TRUE(Volume::Format(f).ok());
  tv.Reopen();
  EXPECT_EQ(tv.volume().super().next_inode, 2u);
}

TEST(Volume, OpenRejectsNonCohfsDevice) {
  char tmpl[] = "/var/tmp/cohfs-unit-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  std::string image = dir + "/plain";
  int fd = open(image.c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_EQ(ftruncate(fd, 32 << 20), 0);
  close(fd);
  VolumeOptions o;
  o.device = image;
  EXPECT_EQ(Volume::Open(o).errno_value(), EINVAL);
  std::filesystem::remove_all(dir);
}

TEST(Fsck, ReportsInjectedProblems) {
  TempVolume tv;
  Volume& v = tv.volume();
  auto clean = Fsck(v, true);
  ASSERT_TRUE(clean.ok());
  EXPECT_TRUE(clean->ok());
  EXPECT_EQ(clean->inodes, 1u);
  // A wrong link count on the root and a leaked device range.
  auto txn = v.items().BeginTxn();
  auto raw = txn->Get(ItemKey{1, ItemType::kInode, 0});
  ASSERT_TRUE(raw.ok() && raw->has_value());
  InodeItem root;
  ASSERT_TRUE(DecodeInode(**raw, &root).ok());
  root.nlink = 7;
  txn->Put(ItemKey{1, ItemType::kInode, 0}, EncodeInode(root));
  auto leaked = v.allocator().Allocate(kBlockBytes, *txn);
  ASSERT_TRUE(leaked.ok());
  // And an entry naming an inode that does not exist.
  txn->Put(ItemKey{1, ItemType::kDirIndex, 5}, EncodeDirIndex(DirIndexItem{"ghost", 77, 8}));
  ASSERT_TRUE(v.items().Commit(*txn, true).ok());
  auto bad = Fsck(v, true);
  ASSERT_TRUE(bad.ok());
  auto has = [&](const std::string& needle) {
    return std::any_of(bad->problems.begin(), bad->problems.end(),
                       [&](const std::string& p) { return p.find(needle) != std::string::npos; });
  };
  EXPECT_TRUE(has("nlink 7")) << bad->problems.size();
  EXPECT_TRUE(has("leaked"));
  EXPECT_TRUE(has("ghost"));
}

}  // namespace
}  // namespace cohfs
