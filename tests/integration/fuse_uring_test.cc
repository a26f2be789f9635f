// FUSE over io_uring and its fallback: the same workload through a mount
// whose requests come over rings (fuse module parameter enable_uring on, the
// default -o uring) and through /dev/fuse (-o nouring, or the parameter off),
// with `cohfs stats` saying which transport served it.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <unistd.h>

#include <fstream>
#include <set>
#include <string>

#include "tests/integration/cluster.h"

namespace cohfs::test {
namespace {

constexpr char kParam[] = "/sys/module/fuse/parameters/enable_uring";

// Sets enable_uring for one test and puts the old value back. The parameter
// is machine-wide: a lock file keeps tests that set it from overlapping.
class UringParam {
 public:
  explicit UringParam(bool on) {
    lock_fd_ = open("/tmp/cohfs-enable-uring.lock", O_CREAT | O_RDWR | O_CLOEXEC, 0600);
    if (lock_fd_ < 0 || flock(lock_fd_, LOCK_EX) != 0) return;
    std::ifstream in(kParam);
    if (!std::getline(in, old_)) return;
    ok_ = Write(on ? "Y" : "N");
  }
  ~UringParam() {
    if (ok_) Write(old_);
    if (lock_fd_ >= 0) close(lock_fd_);  // drops the lock
  }
  bool ok() const { return ok_; }

 private:
  static bool Write(const std::string& v) {
    std::ofstream out(kParam);
    out << v << "\n";
    out.flush();
    return out.good();
  }
  int lock_fd_ = -1;
  std::string old_;
  bool ok_ = false;
};

std::string Content(int i) {
  // Every 100th file is larger than a page and than one ring payload chunk.
  std::string s = "file " + std::to_string(i) + "\n";
  if (i % 100 == 0) s += std::string(300000 + i, static_cast<char>('a' + i % 26));
  return s;
}

bool WriteFile(const std::string& path, const std::string& data) {
  int fd = open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
  if (fd < 0) return false;
  bool ok = write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
  return close(fd) == 0 && ok;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::set<std::string> List(const std::string& dir) {
  std::set<std::string> names;
  DIR* d = opendir(dir.c_str());
  if (!d) return names;
  while (dirent* e = readdir(d))
    if (std::string(e->d_name) != "." && std::string(e->d_name) != "..") names.insert(e->d_name);
  closedir(d);
  return names;
}

// Creates, writes, reads, renames, unlinks and lists 2000 files, writes and
// reads back 4 MiB (whole 1 MiB requests), and extracts a tarball of kernel
// headers that must compare equal.
void Workload(Cluster& c) {
  const std::string dir = c.Path("w");
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
  constexpr int kFiles = 2000;
  for (int i = 0; i < kFiles; i++)
    ASSERT_TRUE(WriteFile(dir + "/f" + std::to_string(i), Content(i))) << i;
  std::set<std::string> expect;
  for (int i = 0; i < kFiles; i++) {
    std::string name = "f" + std::to_string(i);
    ASSERT_EQ(ReadFile(dir + "/" + name), Content(i)) << name;
    if (i % 3 == 0) {
      ASSERT_EQ(unlink((dir + "/" + name).c_str()), 0) << name;
    } else if (i % 2 == 0) {
      ASSERT_EQ(rename((dir + "/" + name).c_str(), (dir + "/r" + name).c_str()), 0) << name;
      expect.insert("r" + name);
    } else {
      expect.insert(name);
    }
  }
  EXPECT_EQ(List(dir), expect);
  std::string big(4 << 20, '\0');
  for (size_t k = 0; k < big.size(); k++) big[k] = static_cast<char>(k * 7 + k / 4096);
  ASSERT_TRUE(WriteFile(c.Path("big"), big));
  EXPECT_TRUE(ReadFile(c.Path("big")) == big);
  const std::string tar = c.dir() + "/inc.tar";
  ASSERT_EQ(RunCommand("tar -C /usr/include -cf " + tar + " linux"), 0);
  std::string out;
  ASSERT_EQ(RunCommand("tar -C " + c.mnt() + " -xf " + tar + " && diff -r /usr/include/linux " +
                           c.Path("linux"),
                       &out),
            0)
      << out;
}

// What Workload left, read through a new mount.
void CheckAfterRemount(Cluster& c) {
  c.Unmount();
  c.Mount();
  const std::string dir = c.Path("w");
  EXPECT_EQ(ReadFile(dir + "/f1"), Content(1));
  EXPECT_EQ(ReadFile(dir + "/rf200"), Content(200));
  EXPECT_EQ(List(dir).size(), 2000u - 667u);
  std::string out;
  EXPECT_EQ(RunCommand("diff -r /usr/include/linux " + c.Path("linux"), &out), 0) << out;
}

std::string Transport(const std::string& stats) {
  size_t p = stats.find("\nfuse_transport ");
  if (p == std::string::npos) return "";
  p += std::string("\nfuse_transport ").size();
  return stats.substr(p, stats.find('\n', p) - p);
}

TEST(FuseUringTest, RingsServeTheRequestsWhenTheKernelOffersThem) {
  UringParam param(true);
  if (!param.ok()) GTEST_SKIP() << "no writable " << kParam << " (kernel without FUSE io_uring)";
  Cluster c;
  Workload(c);
  std::string stats = "\n" + c.Stats();  // StatValue finds "\nname "
  EXPECT_EQ(Transport(stats), "uring") << stats;
  EXPECT_EQ(StatValue(stats, "fuse_uring_errors"), 0u) << stats;
  EXPECT_GE(StatValue(stats, "fuse_uring_entries"), 1u) << stats;
  // All but the forgets (which the kernel keeps on /dev/fuse) came over rings
  // (the ring is ready before INIT's waiters go on: none came before it).
  const uint64_t total = StatValue(stats, "fuse_total");
  const uint64_t forgets = StatValue(stats, "fuse.forget") + StatValue(stats, "fuse.batch_forget");
  EXPECT_GE(StatValue(stats, "fuse_uring_requests"), total - forgets) << stats;
  EXPECT_GT(total, 10000u) << stats;
  CheckAfterRemount(c);
  EXPECT_EQ(Transport(c.Stats()), "uring");
}

// Two clients take turns on one file: each read is answered while the other
// may hold the lock, so the reader replies and then invalidates the pages it
// returned (which the kernel keeps locked until that reply is in). Over a
// ring that reply must be committed before the invalidation goes out.
TEST(FuseUringTest, ReadsUnderContentionAcrossTwoRingMounts) {
  UringParam param(true);
  if (!param.ok()) GTEST_SKIP() << "no writable " << kParam;
  Cluster c;
  const std::string mnt2 = c.dir() + "/mnt2";
  c.Mount(mnt2);
  for (int i = 0; i < 100; i++) {
    const std::string data = "round " + std::to_string(i) + std::string(5000 + i, 'x');
    ASSERT_TRUE(WriteFile((i % 2 ? mnt2 : c.mnt()) + "/shared", data)) << i;
    ASSERT_EQ(ReadFile((i % 2 ? c.mnt() : mnt2) + "/shared"), data) << i;
  }
  std::string stats = "\n" + c.Stats();
  EXPECT_EQ(Transport(stats), "uring") << stats;
  EXPECT_GT(StatValue(stats, "fuse.read"), 0u) << stats;
  EXPECT_EQ(Transport(c.Stats(mnt2)), "uring");
}

TEST(FuseUringTest, NoUringOptionUsesDevFuse) {
  UringParam param(true);
  if (!param.ok()) GTEST_SKIP() << "no writable " << kParam;
  ClusterOptions o;
  o.mount_flags = "-o nouring";
  Cluster c(o);
  Workload(c);
  CheckAfterRemount(c);
  std::string stats = c.Stats();
  EXPECT_EQ(Transport(stats), "dev") << stats;
  EXPECT_EQ(StatValue(stats, "fuse_uring_requests"), 0u) << stats;
}

TEST(FuseUringTest, KernelWithoutUringFallsBackToDevFuse) {
  UringParam param(false);
  if (!param.ok()) GTEST_SKIP() << "no writable " << kParam;
  Cluster c;
  Workload(c);
  std::string stats = c.Stats();
  EXPECT_EQ(Transport(stats), "dev") << stats;
  EXPECT_EQ(StatValue(stats, "fuse_uring_requests"), 0u) << stats;
  EXPECT_EQ(StatValue(stats, "fuse_uring_register_errno"), 0u) << stats;
}

}  // namespace
}  // namespace cohfs::test
