#include "storage/volume.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "common/crc32c.h"
#include "common/limits.h"
#include "storage/fsck.h"
#include "tests/unit/storage/test_volume.h"

namespace cohfs {
namespace {

using test::TempDir;
using test::TempVolume;

// Rewrites a field of the device superblock and fixes up its crc, as another
// build (or a careful attacker) would.
void PatchSuperblock(const std::string& image, size_t offset, const std::string& bytes) {
  std::string block = test::ReadFileRange(image, 0, kBlockBytes);
  std::memcpy(block.data() + offset, bytes.data(), bytes.size());
  uint32_t crc = Crc32c(0, block.data(), kBlockBytes - 4);
  std::memcpy(block.data() + kBlockBytes - 4, &crc, 4);
  test::PatchFile(image, 0, block);
}

Result<std::unique_ptr<Volume>> OpenImage(const std::string& image, bool read_only = false) {
  VolumeOptions o;
  o.device = image;
  o.read_only = read_only;
  return Volume::Open(o);
}

TEST(Volume, FreshVolumeContents) {
  TempVolume tv;
  Volume& v = tv.volume();
  EXPECT_EQ(v.super().format_version, kFormatVersion);
  EXPECT_EQ(v.super().next_inode, 2u);
  EXPECT_EQ(v.super().generation, 1u);  // bumped by the first open
  EXPECT_EQ(v.super().data_start, kDataStartBytes);
  EXPECT_EQ(v.super().device_bytes, 64ull << 20);
  EXPECT_EQ(v.meta_dir(), tv.image() + ".meta");
  // The device superblock carries the same uuid.
  std::string block = test::ReadFileRange(tv.image(), 0, kBlockBytes);
  EXPECT_EQ(block.substr(0, 8), "COHFSDEV");
  EXPECT_EQ(std::memcmp(block.data() + 12, v.super().uuid.data(), 16), 0);
  auto raw = v.items().Get(ItemKey{kRootInode.value, ItemType::kInode, 0});
  ASSERT_TRUE(raw.ok() && raw->has_value());
  InodeItem root;
  ASSERT_TRUE(DecodeInode(**raw, &root).ok());
  EXPECT_EQ(root.mode, static_cast<uint32_t>(S_IFDIR | 0755));
  EXPECT_EQ(root.nlink, 2u);
  EXPECT_EQ(root.uid, 0u);
  EXPECT_EQ(root.gid, 0u);
  EXPECT_EQ(root.parent, kRootInode.value);
  EXPECT_GT(root.mtime_ns, 0);
  EXPECT_EQ(v.allocator().free_bytes(), (64ull << 20) - kDataStartBytes);
  tv.Reopen();
  EXPECT_EQ(tv.volume().super().generation, 2u);
  tv.Close();
  auto ro = OpenImage(tv.image(), /*read_only=*/true);
  ASSERT_TRUE(ro.ok()) << ro.status().ToString();
  EXPECT_EQ((*ro)->super().generation, 2u);  // read-only opens change nothing
  EXPECT_TRUE((*ro)->items().read_only());
  auto report = Fsck(**ro, true);  // what `cohfs fsck` does
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok());
}

TEST(Volume, FormatRefusesToOverwriteWithoutForce) {
  TempVolume tv;
  std::array<uint8_t, 16> old_uuid = tv.volume().super().uuid;
  tv.Close();
  FormatOptions f;
  f.device = tv.image();
  EXPECT_EQ(Volume::Format(f).errno_value(), EEXIST);
  f.force = true;
  Status st = Volume::Format(f);
  ASSERT_TRUE(st.ok()) << st.ToString();
  tv.Reopen();
  EXPECT_EQ(tv.volume().super().next_inode, 2u);
  EXPECT_NE(tv.volume().super().uuid, old_uuid);
  EXPECT_EQ(tv.volume().super().generation, 1u);  // a fresh store, not the old one
}

TEST(Volume, FormatRefusesAnExistingStoreAndForeignMetaDir) {
  TempDir d;
  std::string image = d.MakeImage("img", 32 << 20);
  FormatOptions f;
  f.device = image;
  f.meta_dir = d.path() + "/meta";
  ASSERT_TRUE(Volume::Format(f).ok());
  // Wipe the device superblock: the store still exists, so format needs force.
  test::PatchFile(image, 0, std::string(kBlockBytes, '\0'));
  EXPECT_EQ(Volume::Format(f).errno_value(), EEXIST);
  // A non-empty directory that is not a metadata store is never wiped, even by force.
  f.meta_dir = d.path() + "/precious";
  std::filesystem::create_directories(f.meta_dir);
  std::ofstream(f.meta_dir + "/notes.txt") << "keep me";
  f.force = true;
  EXPECT_EQ(Volume::Format(f).errno_value(), ENOTEMPTY);
  EXPECT_TRUE(std::filesystem::exists(f.meta_dir + "/notes.txt"));
  f.meta_dir = d.path() + "/meta";
  EXPECT_TRUE(Volume::Format(f).ok());
  VolumeOptions o;
  o.device = image;
  o.meta_dir = f.meta_dir;
  EXPECT_TRUE(Volume::Open(o).ok());
}

TEST(Volume, AnOpenVolumeIsLockedAgainstFormatAndSecondOpens) {
  TempVolume tv;  // open for writing, as `cohfs serve` holds it
  FormatOptions f;
  f.device = tv.image();
  f.force = true;
  Status st = Volume::Format(f);
  EXPECT_EQ(st.errno_value(), EBUSY) << st.ToString();
  EXPECT_EQ(OpenImage(tv.image()).errno_value(), EBUSY);
  EXPECT_EQ(OpenImage(tv.image(), /*read_only=*/true).errno_value(), EBUSY);
  EXPECT_EQ(tv.volume().super().next_inode, 2u);  // format touched nothing
  tv.Close();
  // Readers share the device; a writer waits for all of them to go.
  {
    auto ro1 = OpenImage(tv.image(), true);
    ASSERT_TRUE(ro1.ok()) << ro1.status().ToString();
    auto ro2 = OpenImage(tv.image(), true);
    EXPECT_TRUE(ro2.ok()) << ro2.status().ToString();
    EXPECT_EQ(OpenImage(tv.image()).errno_value(), EBUSY);
  }
  EXPECT_TRUE(OpenImage(tv.image()).ok());
}

TEST(Volume, FormatRejectsSmallDevice) {
  TempDir d;
  FormatOptions f;
  f.device = d.MakeImage("small", (16 << 20) - kBlockBytes);
  EXPECT_EQ(Volume::Format(f).errno_value(), EINVAL);
  f.device = d.MakeImage("just", 16 << 20);
  EXPECT_TRUE(Volume::Format(f).ok());
}

TEST(Volume, OpenRejectsNonCohfsDevice) {
  TempDir d;
  std::string image = d.MakeImage("plain", 32 << 20);
  EXPECT_EQ(OpenImage(image).errno_value(), EINVAL);
}

TEST(Volume, OpenRejectsDamagedOrForeignSuperblocks) {
  TempVolume tv;
  tv.Close();
  std::string saved = test::ReadFileRange(tv.image(), 0, kBlockBytes);
  // A flipped byte without a crc fix-up: checksum mismatch.
  test::PatchFile(tv.image(), 30, "\x7f");
  EXPECT_EQ(OpenImage(tv.image()).errno_value(), EIO);
  // A damaged superblock is not silently formatted over either.
  FormatOptions f;
  f.device = tv.image();
  EXPECT_EQ(Volume::Format(f).errno_value(), EEXIST);
  // Another format version.
  test::PatchFile(tv.image(), 0, saved);
  uint32_t other = kFormatVersion + 1;
  PatchSuperblock(tv.image(), 8, std::string(reinterpret_cast<char*>(&other), 4));
  EXPECT_EQ(OpenImage(tv.image()).errno_value(), EPROTO);
  // A uuid that is not the store's.
  test::PatchFile(tv.image(), 0, saved);
  PatchSuperblock(tv.image(), 12, std::string(16, '\x11'));
  EXPECT_EQ(OpenImage(tv.image()).errno_value(), EINVAL);
  // Restored, it opens again.
  test::PatchFile(tv.image(), 0, saved);
  EXPECT_TRUE(OpenImage(tv.image()).ok());
}

TEST(Volume, MissingStoreIsEnoent) {
  TempVolume tv;
  tv.Close();
  VolumeOptions o;
  o.device = tv.image();
  o.meta_dir = tv.image() + ".elsewhere";
  EXPECT_EQ(Volume::Open(o).errno_value(), ENOENT);
}

TEST(Volume, DefaultMetaDir) {
  std::array<uint8_t, 16> u{};
  for (int i = 0; i < 16; i++) u[i] = static_cast<uint8_t>(i);
  EXPECT_EQ(UuidToString(u), "00010203-0405-0607-0809-0a0b0c0d0e0f");
  EXPECT_EQ(DefaultMetaDir("/data/img", u, false), "/data/img.meta");
  EXPECT_EQ(DefaultMetaDir("/dev/sdb", u, true),
            "/var/lib/cohfs/00010203-0405-0607-0809-0a0b0c0d0e0f");
}

TEST(Volume, FreshVolumeIsFsckClean) {
  TempVolume tv;
  auto report = Fsck(tv.volume(), true);
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok()) << report->problems[0];
  EXPECT_EQ(report->inodes, 1u);
  EXPECT_EQ(report->directories, 1u);
  EXPECT_EQ(report->free_bytes, (64ull << 20) - kDataStartBytes);
}

}  // namespace
}  // namespace cohfs
