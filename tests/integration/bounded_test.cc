// Bounded memory (DESIGN §5, §6): a server allowed few locks recalls the
// oldest, a client allowed to cache few inodes gives back its least recently
// used locks, and both stay coherent while they do.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "tests/integration/cluster.h"

namespace cohfs::test {
namespace {

uint64_t Counter(const std::string& stats, const std::string& name) {
  size_t p = stats.find("\n" + name + " ");
  return p == std::string::npos ? 0 : std::stoull(stats.substr(p + name.size() + 2));
}

bool Put(const std::string& path, const std::string& data) {
  int fd = open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
  if (fd < 0) return false;
  bool ok = write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
  return close(fd) == 0 && ok;
}

std::string Get(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) return "<" + std::string(strerror(errno)) + ">";
  char buf[256];
  ssize_t n = read(fd, buf, sizeof(buf));
  close(fd);
  return n < 0 ? "<read error>" : std::string(buf, static_cast<size_t>(n));
}

// Makes and reads many files through the first mount until `counter` moves
// in its stats, then changes some through a second mount: the first sees
// each change on its very next call.
void FillWaitAndCheck(const ClusterOptions& o, const std::string& counter) {
  Cluster c(o);
  std::string other = c.dir() + "/mnt2";
  c.Mount(other);
  constexpr int kFiles = 300;
  ASSERT_EQ(mkdir(c.Path("d").c_str(), 0755), 0);
  for (int i = 0; i < kFiles; i++) ASSERT_TRUE(Put(c.Path("d/f" + std::to_string(i)), "old"));
  for (int i = 0; i < kFiles; i++) ASSERT_EQ(Get(c.Path("d/f" + std::to_string(i))), "old");
  EXPECT_TRUE(WaitFor([&] { return Counter(c.Stats(), counter) > 0; }, std::chrono::seconds(20)))
      << c.Stats();
  for (int i = 0; i < kFiles; i += 7) {
    std::string name = "/d/f" + std::to_string(i);
    ASSERT_TRUE(Put(other + name, "new"));
    EXPECT_EQ(Get(c.mnt() + name), "new") << name;
  }
  for (int i = 3; i < kFiles; i += 7) {
    std::string name = "/d/f" + std::to_string(i);
    ASSERT_EQ(unlink((other + name).c_str()), 0);
    struct stat st;
    EXPECT_NE(stat((c.mnt() + name).c_str(), &st), 0) << name << " still seen after its unlink";
  }
}

TEST(Bounded, AServerPastItsLockBoundRecallsTheOldestLocks) {
  ClusterOptions o;
  o.serve_flags = "--max-locks 100";
  FillWaitAndCheck(o, "recalls");
}

TEST(Bounded, AClientPastItsBoundGivesBackItsLeastRecentlyUsedLocks) {
  ClusterOptions o;
  o.mount_flags = "--max-locks 50";
  FillWaitAndCheck(o, "lru_releases");
}

}  // namespace
}  // namespace cohfs::test
