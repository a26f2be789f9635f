#include "storage/extent_io.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/crc32c.h"
#include "common/limits.h"
#include "tests/unit/storage/test_volume.h"

namespace cohfs {
namespace {

using test::TempVolume;

std::string Pattern(size_t n, int seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i++) s[i] = static_cast<char>((i * 131 + seed) % 251);
  return s;
}

std::vector<ExtentItem> WriteCommitted(Volume& v, const std::string& data) {
  auto txn = v.items().BeginTxn();
  auto r = v.extents().WriteNew(std::span<const char>(data.data(), data.size()), *txn);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  if (!r.ok()) return {};
  EXPECT_TRUE(v.items().Commit(*txn, true).ok());
  return *r;
}

std::string ReadAll(Volume& v, const ExtentItem& e, uint64_t off, size_t len, Status* st) {
  std::string out(len, '\x55');
  *st = v.extents().Read(e, off, std::span<char>(out.data(), out.size()));
  return out;
}

TEST(Extents, WriteReadAndChecksums) {
  TempVolume tv;
  Volume& v = tv.volume();
  std::string data = Pattern(3 * kBlockBytes + 100, 1);
  auto written = WriteCommitted(v, data);
  ASSERT_EQ(written.size(), 1u);
  const ExtentItem& e = written[0];
  EXPECT_EQ(e.length, 4 * kBlockBytes);
  EXPECT_EQ(e.flags, 0u);
  ASSERT_EQ(e.crcs.size(), 4u);
  // The tail of the last block is zero-filled, and the crc covers the whole block.
  std::string last =
      test::ReadFileRange(tv.image(), e.device_offset + 3 * kBlockBytes, kBlockBytes);
  EXPECT_EQ(last.substr(0, 100), data.substr(3 * kBlockBytes));
  EXPECT_EQ(last.substr(100), std::string(kBlockBytes - 100, '\0'));
  EXPECT_EQ(e.crcs[3], Crc32c(0, last.data(), last.size()));
  Status st;
  EXPECT_EQ(ReadAll(v, e, 0, data.size(), &st), data);
  EXPECT_TRUE(st.ok());
  EXPECT_EQ(ReadAll(v, e, 5000, 50, &st), data.substr(5000, 50));
  EXPECT_TRUE(st.ok());
  // Across a block boundary.
  EXPECT_EQ(ReadAll(v, e, kBlockBytes - 10, 20, &st), data.substr(kBlockBytes - 10, 20));
  EXPECT_TRUE(st.ok());
  EXPECT_TRUE(v.extents().Verify(e).ok());
}

TEST(Extents, ChecksumMismatchIsEio) {
  TempVolume tv;
  Volume& v = tv.volume();
  std::string data = Pattern(4 * kBlockBytes, 2);
  auto written = WriteCommitted(v, data);
  ASSERT_EQ(written.size(), 1u);
  const ExtentItem& e = written[0];
  // Corrupt one byte of block 2 directly in the image file.
  test::PatchFile(tv.image(), e.device_offset + 2 * kBlockBytes + 7, "X");
  Status st;
  ReadAll(v, e, 2 * kBlockBytes, 10, &st);
  EXPECT_EQ(st.errno_value(), EIO);
  EXPECT_NE(st.message().find(std::to_string(e.device_offset + 2 * kBlockBytes)), std::string::npos)
      << st.message();
  ReadAll(v, e, kBlockBytes, 2 * kBlockBytes, &st);  // a range that touches block 2
  EXPECT_EQ(st.errno_value(), EIO);
  EXPECT_EQ(ReadAll(v, e, 0, 2 * kBlockBytes, &st), data.substr(0, 2 * kBlockBytes));
  EXPECT_TRUE(st.ok());  // blocks 0 and 1 are fine
  EXPECT_EQ(v.extents().Verify(e).errno_value(), EIO);
}

TEST(Extents, WrongChecksumCountIsEio) {
  TempVolume tv;
  auto written = WriteCommitted(tv.volume(), Pattern(2 * kBlockBytes, 3));
  ASSERT_EQ(written.size(), 1u);
  ExtentItem e = written[0];
  e.crcs.pop_back();
  Status st;
  ReadAll(tv.volume(), e, 0, 10, &st);
  EXPECT_EQ(st.errno_value(), EIO);
}

TEST(Extents, UnwrittenReadsZeros) {
  TempVolume tv;
  Volume& v = tv.volume();
  // Put junk where the unwritten extent lives: it must not be returned.
  auto written = WriteCommitted(v, Pattern(2 * kBlockBytes, 4));
  ASSERT_EQ(written.size(), 1u);
  ExtentItem u{written[0].device_offset, 2 * kBlockBytes, ExtentItem::kUnwritten, {}};
  Status st;
  EXPECT_EQ(ReadAll(v, u, 100, 5000, &st), std::string(5000, '\0'));
  EXPECT_TRUE(st.ok());
  EXPECT_TRUE(v.extents().Verify(u).ok());
}

TEST(Extents, FragmentedWriteReturnsConsecutivePieces) {
  TempVolume tv(16ull << 20);
  Volume& v = tv.volume();
  // Leave only scattered 8 KiB holes: allocate everything in 8 KiB pieces, free every other.
  std::vector<DeviceRange> pieces;
  {
    auto txn = v.items().BeginTxn();
    while (true) {
      auto r = v.allocator().Allocate(2 * kBlockBytes, *txn);
      if (!r.ok()) break;
      for (auto& p : *r) pieces.push_back(p);
    }
    for (size_t i = 0; i < pieces.size(); i += 2) v.allocator().Free(pieces[i], *txn);
    ASSERT_TRUE(v.items().Commit(*txn, true).ok());
    v.allocator().ReleasePending();
  }
  std::string data = Pattern(5 * kBlockBytes, 5);
  auto written = WriteCommitted(v, data);
  ASSERT_EQ(written.size(), 3u);
  std::string back;
  for (const ExtentItem& e : written) {
    EXPECT_EQ(e.crcs.size() * kBlockBytes, e.length);
    Status st;
    back += ReadAll(v, e, 0, e.length, &st);
    EXPECT_TRUE(st.ok());
  }
  EXPECT_EQ(back, data);  // 2 + 2 + 1 blocks, in file order
}

TEST(Extents, FreeMakesSpacePending) {
  TempVolume tv;
  Volume& v = tv.volume();
  uint64_t before = v.allocator().free_bytes();
  auto written = WriteCommitted(v, Pattern(kBlockBytes, 6));
  ASSERT_EQ(written.size(), 1u);
  EXPECT_EQ(v.allocator().free_bytes(), before - kBlockBytes);
  auto txn = v.items().BeginTxn();
  v.extents().Free(written[0], *txn);
  ASSERT_TRUE(v.items().Commit(*txn, true).ok());
  EXPECT_EQ(v.allocator().free_bytes(), before);
  EXPECT_EQ(v.allocator().allocatable_bytes(), before - kBlockBytes);
}

TEST(Extents, SliceKeepsTheMatchingChecksums) {
  ExtentItem e{1 << 20, 4 * kBlockBytes, 0, {10, 11, 12, 13}};
  ExtentItem s = SliceExtent(e, kBlockBytes, 2 * kBlockBytes);
  EXPECT_EQ(s.device_offset, (1u << 20) + kBlockBytes);
  EXPECT_EQ(s.length, 2 * kBlockBytes);
  EXPECT_EQ(s.crcs, (std::vector<uint32_t>{11, 12}));
  ExtentItem u{1 << 20, 4 * kBlockBytes, ExtentItem::kUnwritten, {}};
  ExtentItem us = SliceExtent(u, 3 * kBlockBytes, kBlockBytes);
  EXPECT_EQ(us.flags, ExtentItem::kUnwritten);
  EXPECT_TRUE(us.crcs.empty());
  EXPECT_EQ(us.device_offset, (1u << 20) + 3 * kBlockBytes);
}

}  // namespace
}  // namespace cohfs
