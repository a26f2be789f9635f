// Leases (DESIGN §7): a client that stops talking loses its locks after about
// one lease and other mounts go on; an idle client renews and keeps its mount.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <future>
#include <string>

#include "tests/integration/cluster.h"

namespace cohfs::test {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::steady_clock;

// One counter of the client serving `mnt`, read straight from its stats
// xattr (which the client answers itself: reading it sends nothing).
uint64_t ClientStat(const std::string& mnt, const std::string& name) {
  std::string buf(64 * 1024, '\0');
  ssize_t n = getxattr(mnt.c_str(), "cohfs.stats", buf.data(), buf.size());
  if (n < 0) return 0;
  buf.resize(static_cast<size_t>(n));
  size_t p = buf.find("\n" + name + " ");
  return p == std::string::npos ? 0 : std::stoull(buf.substr(p + name.size() + 2));
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Writes `data` and fsyncs: shipped to the server and durable.
void WriteSynced(const std::string& path, const std::string& data) {
  int fd = open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
  ASSERT_GE(fd, 0) << path << ": " << strerror(errno);
  ASSERT_EQ(write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
  ASSERT_EQ(fsync(fd), 0);
  ASSERT_EQ(close(fd), 0);
}

// Lets a stopped daemon go on when a test ends early, so its mount can go.
struct ContinueOnExit {
  pid_t pid;
  ~ContinueOnExit() { kill(pid, SIGCONT); }
};

bool MountWorks(const std::string& mnt, const std::string& name) {
  std::string p = mnt + "/" + name;
  int fd = open(p.c_str(), O_CREAT | O_WRONLY, 0644);
  if (fd < 0) return false;
  bool ok = write(fd, "ok", 2) == 2;
  ok = close(fd) == 0 && ok;
  struct stat st;
  return ok && stat(p.c_str(), &st) == 0 && st.st_size == 2;
}

TEST(Lease, StoppedClientLosesItsLocksAfterOneLease) {
  ClusterOptions o;
  o.serve_flags = "--lease 2";
  Cluster c(o);
  std::string a = c.mnt(), b = c.dir() + "/mnt2";
  c.Mount(b);
  // Shipped by mount A: written and fsynced, through the server or its log.
  WriteSynced(a + "/f", "shipped");
  ASSERT_EQ(mkdir((a + "/d").c_str(), 0755), 0);
  WriteSynced(a + "/d/h", "also shipped");
  // Not shipped: A holds these inodes EXCLUSIVE, so the changes wait in its
  // log (~100 ms) and write-behind buffer (~1 s) when its daemon stops.
  int f = open((a + "/f").c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(f, 0) << strerror(errno);
  ASSERT_EQ(chmod((a + "/d/h").c_str(), 0600), 0);
  int g = open((a + "/d/g").c_str(), O_CREAT | O_WRONLY, 0644);
  ASSERT_GE(g, 0) << strerror(errno);
  ASSERT_EQ(write(f, " lost", 5), 5);
  pid_t daemon = c.ClientDaemon(a);
  ASSERT_GT(daemon, 0);
  ASSERT_EQ(kill(daemon, SIGSTOP), 0);  // alive for TCP, silent for cohfs
  ContinueOnExit resume{daemon};

  // B needs A's locks: the server recalls them, A never answers, and its
  // lease runs out. B's call must come back within about one lease.
  auto start = steady_clock::now();
  auto b_stat = std::async(std::launch::async, [&] {
    struct stat st;
    return stat((b + "/f").c_str(), &st) == 0 ? static_cast<int64_t>(st.st_size) : -errno;
  });
  bool answered = b_stat.wait_for(seconds(10)) == std::future_status::ready;
  auto waited = std::chrono::duration_cast<milliseconds>(steady_clock::now() - start);
  if (!answered) kill(daemon, SIGKILL);  // unblock B so the test can end
  ASSERT_TRUE(answered) << "another mount waited more than 10 s for a stopped client";
  EXPECT_EQ(b_stat.get(), 7) << "B sees what A shipped, not its unshipped append";
  EXPECT_LT(waited.count(), 6000) << "about one lease (2 s), not " << waited.count() << " ms";
  EXPECT_NE(c.ServerLog().find("lease expired"), std::string::npos) << c.ServerLog();

  EXPECT_EQ(ReadFile(b + "/f"), "shipped");
  EXPECT_EQ(ReadFile(b + "/d/h"), "also shipped");
  struct stat st;
  ASSERT_EQ(stat((b + "/d/h").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u) << "A's logged chmod was never shipped";
  EXPECT_NE(stat((b + "/d/g").c_str(), &st), 0) << "A's logged create was never shipped";
  EXPECT_EQ(errno, ENOENT);
  EXPECT_TRUE(MountWorks(b, "d/after"));

  // A wakes up to a closed connection; then it is killed and detached.
  ASSERT_EQ(kill(daemon, SIGCONT), 0);
  c.KillClient(a);
  close(f);
  close(g);
}

TEST(Lease, IdleMountRenewsAndStaysUsable) {
  ClusterOptions o;
  o.serve_flags = "--lease 1";
  Cluster c(o);
  ASSERT_TRUE(MountWorks(c.mnt(), "before"));
  uint64_t renews = ClientStat(c.mnt(), "rpc.renew");
  // With nothing else to send, the client renews every third of a lease:
  // twelve renews span about four leases of idleness.
  EXPECT_TRUE(WaitFor([&] { return ClientStat(c.mnt(), "rpc.renew") >= renews + 12; }, seconds(30)))
      << "renews: " << ClientStat(c.mnt(), "rpc.renew");
  EXPECT_EQ(c.ServerLog().find("lease expired"), std::string::npos) << c.ServerLog();
  EXPECT_TRUE(MountWorks(c.mnt(), "after"));
  EXPECT_EQ(ReadFile(c.Path("before")), "ok");
}

}  // namespace
}  // namespace cohfs::test
