// A tarball of thousands of files extracted into the mount compares equal
// with the same tarball extracted on local disk.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/fuse.h>
#include <sys/stat.h>
#include <unistd.h>

#include <random>
#include <string>

#include "tests/integration/cluster.h"
#include "tests/integration/tree_compare.h"

namespace cohfs::test {
namespace {

// Builds a source tree with varied sizes, modes, owners, times, symlinks and
// hard links; deterministic from the seed.
void BuildTree(const std::string& root, int files, unsigned seed) {
  std::mt19937 rng(seed);
  ASSERT_EQ(mkdir(root.c_str(), 0755), 0);
  std::vector<std::string> dirs = {root};
  for (int d = 0; d < files / 30; d++) {
    std::string parent = dirs[rng() % dirs.size()];
    std::string dir = parent + "/dir" + std::to_string(d);
    ASSERT_EQ(mkdir(dir.c_str(), 0700 | (rng() % 2 ? 055 : 0)), 0);
    dirs.push_back(dir);
  }
  std::vector<std::string> regular;
  for (int i = 0; i < files; i++) {
    std::string dir = dirs[rng() % dirs.size()];
    std::string path = dir + "/file" + std::to_string(i) + (i % 3 ? ".c" : ".h");
    size_t size;
    switch (rng() % 10) {
      case 0: size = 0; break;
      case 1: size = 4096; break;
      case 2: size = 4097; break;
      case 3: size = 100000 + rng() % 400000; break;
      default: size = rng() % 20000; break;
    }
    if (i % 500 == 7) size = (2 << 20) + rng() % 100000;
    std::string data(size, '\0');
    for (size_t k = 0; k < size; k++) data[k] = static_cast<char>('a' + (k * 31 + i) % 26);
    int fd = open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(write(fd, data.data(), size), static_cast<ssize_t>(size));
    close(fd);
    ASSERT_EQ(chmod(path.c_str(), i % 7 == 0 ? 0755 : 0644), 0);
    if (i % 11 == 0) {
      ASSERT_EQ(chown(path.c_str(), 1000 + i % 3, 100 + i % 5), 0);
    }
    regular.push_back(path);
    if (i % 13 == 0) {
      std::string link = dir + "/sym" + std::to_string(i);
      ASSERT_EQ(symlink(("file" + std::to_string(i) + (i % 3 ? ".c" : ".h")).c_str(), link.c_str()),
                0);
    }
    if (i % 17 == 0 && regular.size() > 1) {
      std::string target = regular[rng() % regular.size()];
      ASSERT_EQ(link(target.c_str(), (dir + "/hard" + std::to_string(i)).c_str()), 0);
    }
    timespec t[2] = {{1600000000 + i * 1000, 0}, {1500000000 + i * 977, 0}};
    ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), t, AT_SYMLINK_NOFOLLOW), 0);
  }
}

TEST(Tar, ExtractCompareEqualWithLocalDisk) {
  Cluster c;
  std::string src = c.dir() + "/src";
  BuildTree(src, 3000, 42);
  std::string tarball = c.dir() + "/tree.tar";
  std::string out;
  ASSERT_EQ(RunCommand("tar -C " + src + " -cf " + tarball + " .", &out), 0) << out;
  std::string local = c.dir() + "/local";
  ASSERT_EQ(mkdir(local.c_str(), 0755), 0);
  ASSERT_EQ(RunCommand("tar -C " + local + " --numeric-owner -xpf " + tarball, &out), 0) << out;
  std::string remote = c.Path("tree");
  ASSERT_EQ(mkdir(remote.c_str(), 0755), 0);
  ASSERT_EQ(RunCommand("tar -C " + remote + " --numeric-owner -xpf " + tarball, &out), 0) << out;
  auto diffs = CompareTrees(local, remote);
  for (auto& d : diffs) ADD_FAILURE() << d;
  // And again from a cold cache, after a clean server restart.
  c.Unmount();
  c.StopServer();
  c.StartServer();
  c.Mount();
  diffs = CompareTrees(local, remote);
  for (auto& d : diffs) ADD_FAILURE() << "after restart: " << d;
}

// What the kernel asks per extracted file (tar as root: create, one write,
// utimens, chown, chmod, close), besides its writes (one or two: tar writes
// from 10 KiB records). With the INIT flags libfuse 3.14 leaves out
// the kernel no longer asks for security.capability before every write nor for
// the attributes before the chown: LOOKUP, CREATE, WRITE, 3 SETATTR, FLUSH,
// RELEASE, the directory's GETATTR after each create (default_permissions)
// and 2 GETXATTR (the first write and the chown check for a capability).
TEST(Tar, AFileCostsTenFuseRequestsBesidesItsWrites) {
  Cluster c;
  std::string src = c.dir() + "/small";
  const int kFiles = 200;
  ASSERT_EQ(mkdir(src.c_str(), 0755), 0);
  for (int i = 0; i < kFiles; i++) {
    std::string path = src + "/f" + std::to_string(i);
    int fd = open(path.c_str(), O_CREAT | O_WRONLY, 0644);
    ASSERT_GE(fd, 0);
    std::string data(100 + i * 13, 'a' + i % 26);
    ASSERT_EQ(write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
    ASSERT_EQ(close(fd), 0);
  }
  std::string tarball = c.dir() + "/small.tar", out;
  ASSERT_EQ(RunCommand("tar -C " + src + " -cf " + tarball + " .", &out), 0) << out;
  ASSERT_EQ(mkdir(c.Path("x").c_str(), 0755), 0);
  std::string before = c.Stats();
  ASSERT_EQ(RunCommand("tar -C " + c.Path("x") + " -xf " + tarball, &out), 0) << out;
  std::string after = c.Stats();
  auto per_file = [&](const std::string& counter) {
    return double(StatValue(after, counter) - StatValue(before, counter)) / kFiles;
  };
  EXPECT_NE(StatValue(after, "fuse_init_added") & FUSE_HANDLE_KILLPRIV_V2, 0u) << after;
  // Slack for the stats read (a getxattr), the mkdir's lookup and the listing.
  EXPECT_LE(per_file("fuse.getxattr"), 2.01) << after;
  EXPECT_LE(per_file("fuse.getattr"), 1.02) << after;
  EXPECT_LE(per_file("fuse_total") - per_file("fuse.write"), 10.05) << after;
  EXPECT_TRUE(CompareTrees(src, c.Path("x")).empty());
}

}  // namespace
}  // namespace cohfs::test
