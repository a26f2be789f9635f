// Shared fixture for FileSystem tests: a real volume on a sparse image file in
// a temporary directory (no mocks), checked by fsck after every test.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <memory>
#include <string>

#include "common/limits.h"
#include "server/file_system.h"
#include "storage/fsck.h"
#include "tests/unit/storage/test_volume.h"

namespace cohfs::test {

inline const Caller kRoot{0, 0, {}, 0};
inline const Caller kUser{1000, 1000, {}, 0};
inline const Caller kOther{2000, 2000, {}, 0};

class FsTest : public ::testing::Test {
 protected:
  explicit FsTest(uint64_t device_bytes = 256ull << 20) : tv_(device_bytes) { Open(); }
  ~FsTest() override {
    fs_.reset();
    ExpectFsckClean();
  }
  void ExpectFsckClean() {
    auto report = Fsck(tv_.volume(), /*verify_checksums=*/true);
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    for (auto& p : report->problems) ADD_FAILURE() << "fsck: " << p;
  }
  void Open() {
    fs_ = std::make_unique<FileSystem>(tv_.volume());
    auto r = fs_->AllocateInodes(1 << 20);
    ASSERT_TRUE(r.ok());
    next_ = r->first;
  }
  void Reopen() {
    ASSERT_TRUE(fs_->Sync().ok());
    fs_.reset();
    tv_.Reopen();
    Open();
  }
  InodeId NewIno() { return InodeId(next_++); }

  Attr Create(InodeId dir, const std::string& name, uint32_t mode = 0644, const Caller& c = kRoot) {
    auto r = fs_->Mknod(c, dir, name, S_IFREG | mode, 0, NewIno());
    EXPECT_TRUE(r.ok()) << name << ": " << r.status().ToString();
    return r.ok() ? *r : Attr{};
  }
  Attr Mkdir(InodeId dir, const std::string& name, uint32_t mode = 0755, const Caller& c = kRoot) {
    auto r = fs_->Mkdir(c, dir, name, mode, NewIno());
    EXPECT_TRUE(r.ok()) << name << ": " << r.status().ToString();
    return r.ok() ? *r : Attr{};
  }
  void Write(InodeId ino, uint64_t off, const std::string& data, const Caller& c = kRoot) {
    auto r = fs_->Write(c, ino, off, std::span<const char>(data.data(), data.size()));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }
  std::string Read(InodeId ino, uint64_t off, uint32_t len) {
    auto r = fs_->Read(kRoot, ino, off, len);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : "";
  }
  Attr Stat(InodeId ino) {
    auto r = fs_->GetAttr(ino);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : Attr{};
  }
  int Err(const Status& s) { return s.errno_value(); }
  template <typename T>
  int Err(const Result<T>& r) {
    return r.errno_value();
  }
  Status Truncate(InodeId ino, uint64_t size, const Caller& c = kRoot, bool open_handle = false) {
    SetAttrRequest req;
    req.mask = kSetSize;
    req.size = size;
    req.has_open_handle = open_handle;
    auto r = fs_->SetAttr(c, ino, req);
    return r.ok() ? Status::Ok() : r.status();
  }
  Status SetAttr(InodeId ino, SetAttrRequest req, const Caller& c = kRoot) {
    auto r = fs_->SetAttr(c, ino, req);
    return r.ok() ? Status::Ok() : r.status();
  }
  Status Chmod(InodeId ino, uint32_t mode, const Caller& c = kRoot) {
    SetAttrRequest req;
    req.mask = kSetMode;
    req.mode = mode;
    return SetAttr(ino, req, c);
  }
  uint64_t FreeBlocks() {
    EXPECT_TRUE(fs_->Sync().ok());
    return fs_->StatFs()->free_blocks;
  }

  TempVolume tv_;
  std::unique_ptr<FileSystem> fs_;
  uint64_t next_ = 0;
};

}  // namespace cohfs::test
