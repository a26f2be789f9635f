// A real formatted volume on a sparse image file in a temporary directory.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "storage/volume.h"

namespace cohfs::test {

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
