// Failure without loss (issue 8, docs/failure.md): a server restart, a
// server crash and a cut connection are delays for applications, not
// errors, and nothing a client acknowledged is lost.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <future>
#include <string>
#include <thread>

#include "tests/integration/cluster.h"
#include "tests/integration/relay.h"

namespace cohfs::test {
namespace {

using std::chrono::seconds;

constexpr int kFiles = 300;

std::string Content(int i) { return "file " + std::to_string(i) + std::string(i * 37, 'x'); }

bool WriteFile(const std::string& path, const std::string& data, bool sync) {
  int fd = open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
  if (fd < 0) return false;
  bool ok = write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
  if (sync) ok = fsync(fd) == 0 && ok;
  return close(fd) == 0 && ok;
}

std::string ReadFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) return "<" + std::string(strerror(errno)) + ">";
  std::string out;
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  if (n < 0) out = "<" + std::string(strerror(errno)) + ">";
  close(fd);
  return out;
}

int CountFiles(const std::string& dir) {
  int n = 0;
  struct stat st;
  for (int i = 0; i < kFiles; i++) n += stat((dir + "/f" + std::to_string(i)).c_str(), &st) == 0;
  return n;
}

// An fsync-per-file workload with renames and unlinks, in a child process
// (a call that hangs must not hang the test). Exits 0 when every call succeeded.
pid_t StartWorkload(const std::string& dir) {
  pid_t pid = fork();
  if (pid != 0) return pid;
  for (int i = 0; i < kFiles; i++) {
    std::string f = dir + "/f" + std::to_string(i);
    if (!WriteFile(f + ".tmp", Content(i), /*sync=*/true) ||
        rename((f + ".tmp").c_str(), f.c_str()) != 0) {
      std::fprintf(stderr, "workload: file %d: %s\n", i, strerror(errno));
      _exit(1);
    }
    if (i % 10 == 9) {
      std::string gone = dir + "/gone" + std::to_string(i);
      if (!WriteFile(gone, "x", false) || unlink(gone.c_str()) != 0) {
        std::fprintf(stderr, "workload: unlink %d: %s\n", i, strerror(errno));
        _exit(1);
      }
    }
  }
  _exit(0);
}

// The workload's exit status (-1: still running at the deadline; killed).
int WaitWorkload(pid_t pid, std::chrono::seconds deadline) {
  int status = 0;
  if (!WaitFor([&] { return waitpid(pid, &status, WNOHANG) == pid; }, deadline)) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void ExpectEveryFile(const std::string& dir) {
  for (int i = 0; i < kFiles; i++) {
    ASSERT_EQ(ReadFile(dir + "/f" + std::to_string(i)), Content(i)) << "file " << i;
  }
}

// The server goes away in the middle of the workload and comes back.
void RestartUnderWorkload(bool crash) {
  ClusterOptions o;
  o.serve_flags = "--lease 5";
  Cluster c(o);
  std::string dir = c.Path("w");
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
  pid_t workload = StartWorkload(dir);
  ASSERT_TRUE(WaitFor([&] { return CountFiles(dir) >= 20; }, seconds(60)));
  // Written, never synced: acknowledged all the same.
  ASSERT_TRUE(WriteFile(c.Path("unsynced"), "written just before", /*sync=*/false));
  ASSERT_LT(CountFiles(dir), kFiles) << "the workload must still run when the server goes";
  if (crash) {
    c.KillServer();
    std::this_thread::sleep_for(seconds(1));  // the outage itself, not a wait for a condition
  } else {
    c.StopServer();
  }
  c.StartServer();
  EXPECT_EQ(WaitWorkload(workload, seconds(120)), 0) << "the workload saw an error";
  ExpectEveryFile(dir);
  EXPECT_EQ(ReadFile(c.Path("unsynced")), "written just before");
  std::string log = c.ServerLog();
  EXPECT_NE(log.find("resumed its session"), std::string::npos) << log;
  EXPECT_NE(log.find("reclaimed"), std::string::npos) << log;
  // Stored on the server, not only in the client's cache.
  c.Unmount();
  c.Mount();
  ExpectEveryFile(dir);
  EXPECT_EQ(ReadFile(c.Path("unsynced")), "written just before");
}

TEST(Restart, CleanServerRestartIsInvisibleToAnFsyncWorkload) { RestartUnderWorkload(false); }

TEST(Restart, KilledServerRestartedLosesNothingAcknowledged) { RestartUnderWorkload(true); }

TEST(Restart, CutConnectionIsMendedWithoutErrors) {
  Cluster c;
  Relay relay(c.port());
  std::string m = c.dir() + "/relayed";
  c.MountVia(relay.port(), m);
  std::string dir = m + "/w";
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
  pid_t workload = StartWorkload(dir);
  for (int cut = 1; cut <= 3; cut++) {
    ASSERT_TRUE(WaitFor([&] { return CountFiles(dir) >= 30 * cut; }, seconds(60)));
    ASSERT_LT(CountFiles(dir), kFiles) << "the workload must still run when the network goes";
    EXPECT_GE(relay.Cut(), 1);
  }
  EXPECT_EQ(WaitWorkload(workload, seconds(120)), 0) << "the workload saw an error";
  EXPECT_GE(relay.connections_accepted(), 4) << "the client reconnected after each cut";
  ExpectEveryFile(dir);
  ExpectEveryFile(c.Path("w"));  // as the other mount sees it
  c.Unmount(m);
}

// DESIGN §7: a client cut off for longer than its lease no longer serves its
// cache (the server may have given its locks to others); once it is back
// and finds its session ended, it answers EIO, never the stale data.
TEST(Restart, ClientCutOffPastItsLeaseDoesNotServeItsCache) {
  ClusterOptions o;
  o.serve_flags = "--lease 2";
  Cluster c(o);
  Relay relay(c.port());
  std::string a = c.dir() + "/relayed";
  c.MountVia(relay.port(), a);
  ASSERT_TRUE(WriteFile(a + "/f", "one", true));
  ASSERT_EQ(ReadFile(a + "/f"), "one");  // cached by A, under its lock
  relay.Refuse(true);
  ASSERT_GE(relay.Cut(), 1);
  // B's change needs A's lock: it goes on once A's session has ended, a
  // lease after A disappeared.
  ASSERT_TRUE(WriteFile(c.Path("f"), "two", true));
  auto read = std::async(std::launch::async, [&] { return ReadFile(a + "/f"); });
  relay.Refuse(false);  // A reconnects and learns its session is gone
  ASSERT_EQ(read.wait_for(seconds(30)), std::future_status::ready);
  EXPECT_EQ(read.get(), "<" + std::string(strerror(EIO)) + ">") << "not A's stale copy";
  EXPECT_NE(c.ServerLog().find("did not reconnect within its lease"), std::string::npos);
  c.Unmount(a);
}

// A process that takes a record lock on bytes 10-14 of `f` and a flock lock
// on `g`, then holds them until told to close both. A child of its own, so
// that the server this test forks (and its exec, which closes inherited
// files) has nothing to do with the locks.
class LockHolder {
 public:
  LockHolder(const std::string& f, const std::string& g) {
    if (pipe(ready_) != 0 || pipe(go_) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      close(ready_[0]);
      close(go_[1]);
      int ff = open(f.c_str(), O_RDWR);
      int gf = open(g.c_str(), O_RDWR);
      struct flock range {};
      range.l_type = F_WRLCK;
      range.l_start = 10;
      range.l_len = 5;
      char ok =
          ff >= 0 && gf >= 0 && fcntl(ff, F_SETLK, &range) == 0 && flock(gf, LOCK_EX | LOCK_NB) == 0
              ? 'y'
              : 'n';
      char c;
      if (write(ready_[1], &ok, 1) != 1 || read(go_[0], &c, 1) != 1) _exit(2);
      _exit(close(ff) == 0 && close(gf) == 0 ? 0 : 1);
    }
    close(ready_[1]);
    close(go_[0]);
  }
  ~LockHolder() {
    if (pid_ > 0 && !closed_) Close();
  }
  // True once the child holds both locks (a read on the pipe: it answers or dies).
  bool Holding() {
    char ok = 'n';
    return pid_ > 0 && read(ready_[0], &ok, 1) == 1 && ok == 'y';
  }
  // Closes both files; true when the child's closes succeeded.
  bool Close() {
    closed_ = true;
    char c = 'c';
    int status = 0;
    bool told = write(go_[1], &c, 1) == 1;
    close(go_[1]);
    close(ready_[0]);
    return waitpid(pid_, &status, 0) == pid_ && told && WIFEXITED(status) &&
           WEXITSTATUS(status) == 0;
  }

 private:
  int ready_[2] = {-1, -1}, go_[2] = {-1, -1};
  pid_t pid_ = -1;
  bool closed_ = false;
};

// Record and flock locks a client's processes hold come back after a server
// crash (the client reclaims them), so another mount is still refused them.
TEST(Restart, FileLocksAreReclaimedAfterAServerCrash) {
  Cluster c;
  std::string b = c.dir() + "/b";
  c.Mount(b);
  ASSERT_TRUE(WriteFile(c.Path("f"), "f", true));
  ASSERT_TRUE(WriteFile(c.Path("g"), "g", true));
  LockHolder holder(c.Path("f"), c.Path("g"));
  ASSERT_TRUE(holder.Holding());
  c.KillServer();
  c.StartServer();
  int bf = open((b + "/f").c_str(), O_RDWR);  // waits for B's reconnect
  int bg = open((b + "/g").c_str(), O_RDWR);
  ASSERT_GE(bf, 0) << strerror(errno);
  ASSERT_GE(bg, 0) << strerror(errno);
  struct flock overlap {};
  overlap.l_type = F_WRLCK;
  overlap.l_start = 12;
  overlap.l_len = 1;
  EXPECT_EQ(fcntl(bf, F_SETLK, &overlap), -1) << "A's record lock was forgotten";
  EXPECT_TRUE(errno == EAGAIN || errno == EACCES) << strerror(errno);
  EXPECT_EQ(flock(bg, LOCK_EX | LOCK_NB), -1) << "A's flock lock was forgotten";
  EXPECT_EQ(errno, EWOULDBLOCK);
  struct flock outside = overlap;
  outside.l_start = 0;
  outside.l_len = 10;
  EXPECT_EQ(fcntl(bf, F_SETLK, &outside), 0) << "only the range A holds is taken";
  // A's locks go when its process lets go of them (a flock lock at the
  // release, which the kernel sends after close returns).
  ASSERT_TRUE(holder.Close());
  EXPECT_EQ(fcntl(bf, F_SETLK, &overlap), 0) << strerror(errno);
  EXPECT_TRUE(WaitFor([&] { return flock(bg, LOCK_EX | LOCK_NB) == 0; }, seconds(30)));
  close(bf);
  close(bg);
  c.Unmount(b);
}

TEST(Restart, CleanUnmountEndsTheSessionAtOnce) {
  ClusterOptions o;
  o.serve_flags = "--lease 30";
  Cluster c(o);
  std::string b = c.dir() + "/mnt2";
  c.Mount(b);
  ASSERT_TRUE(WriteFile(b + "/f", "b's", false));
  c.Unmount(b);
  // B said goodbye: its locks went with it, so A needs no 30 s lease to pass.
  ASSERT_TRUE(
      WaitFor([&] { return c.ServerLog().find("said goodbye") != std::string::npos; }, seconds(10)))
      << c.ServerLog();
  EXPECT_EQ(ReadFile(c.Path("f")), "b's");
}

}  // namespace
}  // namespace cohfs::test
