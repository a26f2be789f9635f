// Data and metadata survive unmount, clean restarts and kill -9 after fsync;
// a corrupted data block reads as EIO, never as wrong bytes.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "tests/integration/cluster.h"

namespace cohfs::test {
namespace {

std::string Pattern(size_t n, int seed) {
  std::string s(n, '\0');
  uint32_t x = static_cast<uint32_t>(seed) * 2654435761u + 1;
  for (size_t i = 0; i < n; i++) {
    x = x * 1103515245u + 12345u;
    s[i] = static_cast<char>(x >> 24);
  }
  return s;
}

void WriteFile(const std::string& path, const std::string& data, bool do_fsync) {
  int fd = open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0640);
  ASSERT_GE(fd, 0) << path << ": " << strerror(errno);
  ASSERT_EQ(write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
  if (do_fsync) {
    ASSERT_EQ(fsync(fd), 0);
  }
  ASSERT_EQ(close(fd), 0);
}

std::string ReadFile(const std::string& path, int* err = nullptr) {
  int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) {
    if (err) *err = errno;
    return {};
  }
  std::string out;
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  if (err) *err = n < 0 ? errno : 0;
  close(fd);
  return out;
}

void MakeTree(Cluster& c) {
  ASSERT_EQ(mkdir(c.Path("dir").c_str(), 0750), 0);
  WriteFile(c.Path("dir/small"), "small file", false);
  WriteFile(c.Path("dir/large"), Pattern(3 << 20, 1), false);
  ASSERT_EQ(symlink("large", c.Path("dir/link").c_str()), 0);
  ASSERT_EQ(link(c.Path("dir/small").c_str(), c.Path("hard").c_str()), 0);
  ASSERT_EQ(chown(c.Path("dir/small").c_str(), 7, 8), 0);
}

void CheckTree(Cluster& c) {
  EXPECT_EQ(ReadFile(c.Path("dir/small")), "small file");
  EXPECT_EQ(ReadFile(c.Path("dir/large")), Pattern(3 << 20, 1));
  char buf[64] = {};
  EXPECT_EQ(readlink(c.Path("dir/link").c_str(), buf, sizeof(buf)), 5);
  struct stat a{}, b{};
  ASSERT_EQ(stat(c.Path("dir/small").c_str(), &a), 0);
  ASSERT_EQ(stat(c.Path("hard").c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);
  EXPECT_EQ(a.st_nlink, 2u);
  EXPECT_EQ(a.st_uid, 7u);
  EXPECT_EQ(a.st_gid, 8u);
  ASSERT_EQ(stat(c.Path("dir").c_str(), &a), 0);
  EXPECT_EQ(a.st_mode & 07777, 0750u);
}

TEST(Durability, SurvivesUnmountAndRemount) {
  Cluster c;
  MakeTree(c);
  c.Unmount();
  c.Mount();
  CheckTree(c);
}

TEST(Durability, SurvivesCleanServerRestart) {
  Cluster c;
  MakeTree(c);
  c.Unmount();
  c.StopServer();
  std::string out;
  EXPECT_EQ(c.Fsck(&out), 0) << out;
  c.StartServer();
  c.Mount();
  CheckTree(c);
}

TEST(Durability, FsyncedDataSurvivesServerKill9) {
  ClusterOptions o;
  o.serve_flags = "--lease 2";  // the unmount below gives the dead server one lease
  Cluster c(o);
  ASSERT_EQ(mkdir(c.Path("d").c_str(), 0755), 0);
  for (int i = 0; i < 20; i++) {
    WriteFile(c.Path("d/f" + std::to_string(i)), Pattern(1000 + i * 7919, i), false);
  }
  WriteFile(c.Path("d/last"), Pattern(2 << 20, 99), true);  // fsync covers everything before it
  c.KillServer();
  c.Unmount();
  std::string out;
  EXPECT_EQ(c.Fsck(&out), 0) << out;
  c.StartServer();
  c.Mount();
  for (int i = 0; i < 20; i++) {
    EXPECT_EQ(ReadFile(c.Path("d/f" + std::to_string(i))), Pattern(1000 + i * 7919, i)) << i;
  }
  EXPECT_EQ(ReadFile(c.Path("d/last")), Pattern(2 << 20, 99));
}

TEST(Durability, CorruptedBlockReadsAsEio) {
  Cluster c;
  std::string data = Pattern(1 << 20, 5);
  std::string marker = "COHFS-CORRUPTION-MARKER-0123456789";
  data.replace(200000, marker.size(), marker);
  WriteFile(c.Path("victim"), data, true);
  WriteFile(c.Path("bystander"), Pattern(1 << 20, 6), true);
  c.Unmount();
  c.StopServer();
  // Find the marker on the image and flip one byte of it.
  int fd = open(c.image().c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  std::string chunk(1 << 20, '\0');
  off_t found = -1;
  for (off_t off = 0; found < 0; off += static_cast<off_t>(chunk.size() - marker.size())) {
    ssize_t n = pread(fd, chunk.data(), chunk.size(), off);
    if (n <= 0) break;
    size_t pos = std::string_view(chunk.data(), static_cast<size_t>(n)).find(marker);
    if (pos != std::string::npos) found = off + static_cast<off_t>(pos);
  }
  ASSERT_GE(found, 0) << "marker not found on the device";
  ASSERT_EQ(pwrite(fd, "X", 1, found), 1);
  close(fd);
  c.StartServer();
  c.Mount();
  int err = 0;
  std::string got = ReadFile(c.Path("victim"), &err);
  EXPECT_EQ(err, EIO);
  EXPECT_EQ(got.find("XOHFS-CORRUPTION"), std::string::npos);  // never the bad bytes
  EXPECT_EQ(ReadFile(c.Path("bystander")), Pattern(1 << 20, 6));
  // Repair the block so the teardown fsck is about everything else.
  c.Unmount();
  c.StopServer();
  std::string out;
  EXPECT_NE(c.Fsck(&out), 0) << "fsck must report the bad checksum";
  fd = open(c.image().c_str(), O_RDWR);
  ASSERT_EQ(pwrite(fd, "C", 1, found), 1);
  close(fd);
  c.StartServer();
  c.Mount();
}

}  // namespace
}  // namespace cohfs::test
