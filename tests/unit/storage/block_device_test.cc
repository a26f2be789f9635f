#include "storage/block_device.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>

#include "common/limits.h"
#include "tests/unit/storage/test_volume.h"

namespace cohfs {
namespace {

using test::TempDir;

TEST(AlignedBuffer, AlignedZeroedAndRounded) {
  AlignedBuffer b(5000);
  EXPECT_EQ(b.size(), 2u * kBlockBytes);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data()) % kBlockBytes, 0u);
  for (size_t i = 0; i < b.size(); i++) ASSERT_EQ(b.data()[i], 0) << i;
  AlignedBuffer one(1);
  EXPECT_EQ(one.size(), kBlockBytes);
}

TEST(BlockDevice, RoundTripOnImageFile) {
  TempDir d;
  // Not a whole number of blocks: the tail is not usable.
  std::string image = d.MakeImage("img", 64 * kBlockBytes + 100);
  auto dev = BlockDevice::Open(image, false);
  ASSERT_TRUE(dev.ok()) << dev.status().ToString();
  EXPECT_EQ((*dev)->size_bytes(), 64u * kBlockBytes);
  EXPECT_FALSE((*dev)->is_block_device());

  AlignedBuffer w(3 * kBlockBytes);
  for (size_t i = 0; i < w.size(); i++) w.data()[i] = static_cast<char>(i * 7 + 1);
  ASSERT_TRUE((*dev)->Write(5 * kBlockBytes, w.data(), w.size(), /*durable=*/true).ok());
  ASSERT_TRUE((*dev)->Write(60 * kBlockBytes, w.data(), kBlockBytes, /*durable=*/false).ok());
  ASSERT_TRUE((*dev)->Flush().ok());
  AlignedBuffer r(3 * kBlockBytes);
  ASSERT_TRUE((*dev)->Read(5 * kBlockBytes, r.data(), r.size()).ok());
  EXPECT_EQ(std::memcmp(r.data(), w.data(), w.size()), 0);
  // The bytes really are in the file at that offset.
  EXPECT_EQ(test::ReadFileRange(image, 5 * kBlockBytes, 3 * kBlockBytes),
            std::string(w.data(), w.size()));
  EXPECT_EQ(test::ReadFileRange(image, 60 * kBlockBytes, kBlockBytes),
            std::string(w.data(), kBlockBytes));
  // Beyond the end is EIO, not a short read.
  EXPECT_EQ((*dev)->Read(63 * kBlockBytes, r.data(), 2 * kBlockBytes).errno_value(), EIO);
  EXPECT_EQ((*dev)->Write(64 * kBlockBytes, w.data(), kBlockBytes, false).errno_value(), EIO);
}

TEST(BlockDevice, ReadOnlyRefusesWrites) {
  TempDir d;
  std::string image = d.MakeImage("img", 16 * kBlockBytes);
  test::PatchFile(image, kBlockBytes, "hello");
  auto dev = BlockDevice::Open(image, true);
  ASSERT_TRUE(dev.ok());
  AlignedBuffer b(kBlockBytes);
  ASSERT_TRUE((*dev)->Read(kBlockBytes, b.data(), kBlockBytes).ok());
  EXPECT_EQ(std::string(b.data(), 5), "hello");
  EXPECT_EQ((*dev)->Write(0, b.data(), kBlockBytes, true).errno_value(), EIO);
  EXPECT_TRUE((*dev)->Flush().ok());
}

TEST(BlockDevice, FailedWriteMakesTheDeviceReadOnlyForever) {
  TempDir d;
  std::string image = d.MakeImage("img", 64 * kBlockBytes);
  auto dev = BlockDevice::Open(image, false);
  ASSERT_TRUE(dev.ok());
  AlignedBuffer b(kBlockBytes);
  std::memset(b.data(), 'a', kBlockBytes);
  {
    test::FileSizeLimit limit(16 * kBlockBytes);
    Status st = (*dev)->Write(32 * kBlockBytes, b.data(), kBlockBytes, true);
    EXPECT_EQ(st.errno_value(), EFBIG) << st.ToString();  // the device's own errno
  }
  // The fault is gone, but a failed write is never retried or forgotten.
  EXPECT_EQ((*dev)->Write(0, b.data(), kBlockBytes, true).errno_value(), EIO);
  EXPECT_EQ((*dev)->Flush().errno_value(), EIO);
  EXPECT_EQ(test::ReadFileRange(image, 0, 4), std::string(4, '\0'));
  EXPECT_TRUE((*dev)->Read(0, b.data(), kBlockBytes).ok());  // reads still work
}

// A loop device over an image file, when we may make one (root, losetup);
// empty path() otherwise.
class LoopDevice {
 public:
  explicit LoopDevice(const std::string& image) {
    if (geteuid() != 0) return;
    std::string cmd = "losetup --find --show " + image + " 2>/dev/null";
    FILE* p = popen(cmd.c_str(), "r");
    if (p == nullptr) return;
    char buf[128] = {};
    if (fgets(buf, sizeof(buf), p) != nullptr) path_ = buf;
    pclose(p);
    while (!path_.empty() && (path_.back() == '\n' || path_.back() == ' ')) path_.pop_back();
  }
  ~LoopDevice() {
    if (!path_.empty()) {
      EXPECT_EQ(std::system(("losetup -d " + path_).c_str()), 0);
    }
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(BlockDevice, LoopDeviceSizeAndExclusiveWriters) {
  TempDir d;
  std::string image = d.MakeImage("img", 4 << 20);
  LoopDevice loop(image);
  if (loop.path().empty()) GTEST_SKIP() << "needs root and losetup";
  auto dev = BlockDevice::Open(loop.path(), false);
  ASSERT_TRUE(dev.ok()) << dev.status().ToString();
  EXPECT_TRUE((*dev)->is_block_device());
  EXPECT_EQ((*dev)->size_bytes(), 4u << 20);  // BLKGETSIZE64
  // A second writer is refused (O_EXCL and the flock), and so are readers
  // (fsck) while a writer (a server) has it; readers share it with each other.
  EXPECT_EQ(BlockDevice::Open(loop.path(), false).errno_value(), EBUSY);
  EXPECT_EQ(BlockDevice::Open(loop.path(), true).errno_value(), EBUSY);
  AlignedBuffer b(kBlockBytes);
  std::memset(b.data(), 'L', kBlockBytes);
  ASSERT_TRUE((*dev)->Write(8 * kBlockBytes, b.data(), kBlockBytes, true).ok());
  dev->reset();
  auto reader = BlockDevice::Open(loop.path(), true);
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  auto second_reader = BlockDevice::Open(loop.path(), true);
  EXPECT_TRUE(second_reader.ok()) << second_reader.status().ToString();
  EXPECT_EQ(BlockDevice::Open(loop.path(), false).errno_value(), EBUSY);
  AlignedBuffer r(kBlockBytes);
  ASSERT_TRUE((*reader)->Read(8 * kBlockBytes, r.data(), kBlockBytes).ok());
  EXPECT_EQ(std::memcmp(r.data(), b.data(), kBlockBytes), 0);
  reader->reset();
  if (second_reader.ok()) second_reader->reset();
  EXPECT_EQ(test::ReadFileRange(image, 8 * kBlockBytes, 4), "LLLL");
}

TEST(BlockDevice, OpenErrors) {
  TempDir d;
  EXPECT_EQ(BlockDevice::Open(d.path() + "/missing", false).errno_value(), ENOENT);
  auto dir = BlockDevice::Open(d.path(), true);  // a directory is neither kind
  ASSERT_FALSE(dir.ok());
  EXPECT_EQ(dir.errno_value(), EINVAL);
}

}  // namespace
}  // namespace cohfs
