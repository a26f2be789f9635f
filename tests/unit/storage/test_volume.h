// A real formatted volume on a sparse image file in a temporary directory.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "storage/volume.h"

namespace cohfs::test {

// A private directory under /tmp, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/cohfs-unit-XXXXXX";
    char* made = mkdtemp(tmpl);
    EXPECT_NE(made, nullptr);
    if (made != nullptr) path_ = made;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  // Creates a sparse file of `bytes` and returns its path.
  std::string MakeImage(const std::string& name, uint64_t bytes) const {
    std::string p = path_ + "/" + name;
    int fd = open(p.c_str(), O_CREAT | O_RDWR | O_TRUNC, 0644);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(ftruncate(fd, static_cast<off_t>(bytes)), 0);
    close(fd);
    return p;
  }

 private:
  std::string path_;
};

// Overwrites bytes of a file directly (bypassing cohfs), e.g. to corrupt a block.
inline void PatchFile(const std::string& path, uint64_t offset, const std::string& bytes) {
  int fd = open(path.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset)),
            static_cast<ssize_t>(bytes.size()));
  close(fd);
}

// Fault injection without privileges: while alive, writes to regular files at
// or beyond `bytes` fail with EFBIG (RLIMIT_FSIZE; SIGXFSZ ignored).
class FileSizeLimit {
 public:
  explicit FileSizeLimit(uint64_t bytes) {
    old_handler_ = std::signal(SIGXFSZ, SIG_IGN);
    EXPECT_EQ(getrlimit(RLIMIT_FSIZE, &old_), 0);
    rlimit lim = old_;
    lim.rlim_cur = bytes;
    EXPECT_EQ(setrlimit(RLIMIT_FSIZE, &lim), 0);
  }
  ~FileSizeLimit() {
    setrlimit(RLIMIT_FSIZE, &old_);
    std::signal(SIGXFSZ, old_handler_);
  }

 private:
  rlimit old_{};
  void (*old_handler_)(int) = nullptr;
};

inline std::string ReadFileRange(const std::string& path, uint64_t offset, size_t len) {
  std::string out(len, '\0');
  int fd = open(path.c_str(), O_RDONLY);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(pread(fd, out.data(), len, static_cast<off_t>(offset)), static_cast<ssize_t>(len));
  close(fd);
  return out;
}

class TempVolume {
 public:
  explicit TempVolume(uint64_t bytes = 64ull << 20) {
    char tmpl[] = "/var/tmp/cohfs-unit-XXXXXX";
    dir_ = mkdtemp(tmpl);
    image_ = dir_ + "/image";
    int fd = open(image_.c_str(), O_CREAT | O_RDWR, 0644);
    EXPECT_EQ(ftruncate(fd, static_cast<off_t>(bytes)), 0);
    close(fd);
    FormatOptions f;
    f.device = image_;
    Status st = Volume::Format(f);
    EXPECT_TRUE(st.ok()) << st.ToString();
    Reopen();
  }
  ~TempVolume() {
    volume_.reset();
    std::filesystem::remove_all(dir_);
  }
  void Reopen() {
    volume_.reset();
    VolumeOptions o;
    o.device = image_;
    auto v = Volume::Open(o);
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    volume_ = std::move(v).value();
  }
  void Close() { volume_.reset(); }
  Volume& volume() { return *volume_; }
  const std::string& image() const { return image_; }

 private:
  std::string dir_, image_;
  std::unique_ptr<Volume> volume_;
};

}  // namespace cohfs::test
