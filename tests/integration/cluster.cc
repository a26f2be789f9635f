#include "tests/integration/cluster.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <thread>

namespace cohfs::test {

std::string CohfsBinary() { return COHFS_BINARY; }

int RunCommand(const std::string& command, std::string* output) {
  std::string cmd = command + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return -1;
  std::array<char, 4096> buf;
  std::string out;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  int status = pclose(p);
  if (output) *output = out;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds deadline) {
  auto end = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // poll interval, not a wait
  }
  return cond();
}

int RunAs(uid_t uid, gid_t gid, const std::function<int()>& fn) {
  pid_t pid = fork();
  if (pid == 0) {
    if (setgroups(0, nullptr) != 0 || setresgid(gid, gid, gid) != 0 ||
        setresuid(uid, uid, uid) != 0) {
      _exit(250);
    }
    _exit(fn());
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 251;
}

namespace {

// The `cohfs mount` daemon serving `mountpoint` (it forks away from the
// command the test ran), found by its command line; -1 if none.
pid_t FindMountDaemon(const std::string& mountpoint) {
  DIR* proc = opendir("/proc");
  if (!proc) return -1;
  pid_t found = -1;
  while (dirent* e = readdir(proc)) {
    pid_t pid = static_cast<pid_t>(atoi(e->d_name));
    if (pid <= 0) continue;
    std::ifstream in(std::string("/proc/") + e->d_name + "/cmdline");
    std::vector<std::string> args;
    for (std::string a; std::getline(in, a, '\0');) args.push_back(a);
    if (args.size() >= 3 && args[0] == CohfsBinary() && args[1] == "mount" &&
        std::find(args.begin(), args.end(), mountpoint) != args.end()) {
      found = pid;
    }
  }
  closedir(proc);
  return found;
}

bool ProcessGone(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) return true;
  size_t paren = stat.rfind(')');
  return paren == std::string::npos || stat.compare(paren + 1, 3, " Z ") == 0;
}

}  // namespace

Cluster::Cluster(ClusterOptions options) : options_(options) {
  char tmpl[] = "/var/tmp/cohfs-test-XXXXXX";
  char* d = mkdtemp(tmpl);
  if (!d) {
    ADD_FAILURE() << "mkdtemp: " << strerror(errno);
    return;
  }
  dir_ = d;
  chmod(dir_.c_str(), 0755);  // non-root test callers must reach the mount
  image_ = dir_ + "/image";
  mnt_ = dir_ + "/mnt";
  mkdir(mnt_.c_str(), 0755);
  int fd = open(image_.c_str(), O_CREAT | O_RDWR, 0644);
  EXPECT_EQ(ftruncate(fd, static_cast<off_t>(options.image_bytes)), 0);
  close(fd);
  std::string out;
  EXPECT_EQ(RunCommand(CohfsBinary() + " format " + image_, &out), 0) << out;
  if (!options_.insecure) {
    EXPECT_EQ(RunCommand(CohfsBinary() + " keygen " + key_file(), &out), 0) << out;
  }
  StartServer();
  Mount();
}

Cluster::~Cluster() {
  for (auto m : std::vector<std::string>(mounts_)) Unmount(m);
  if (server_pid_ > 0) StopServer();
  std::string out;
  EXPECT_EQ(Fsck(&out), 0) << out;
  RunCommand("rm -rf " + dir_);
}

void Cluster::StartServer() {
  int out_pipe[2];
  ASSERT_EQ(pipe(out_pipe), 0);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out_pipe[1], 1);
    int log = open((dir_ + "/server.log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (log >= 0) dup2(log, 2);
    close(out_pipe[0]);
    close(out_pipe[1]);
    std::string bin = CohfsBinary();
    std::string listen = port_ ? "127.0.0.1:" + std::to_string(port_) : "127.0.0.1:0";
    std::string key = options_.insecure ? " --insecure " : " --key " + key_file() + " ";
    std::string limit = options_.server_fd_limit
                            ? "ulimit -n " + std::to_string(options_.server_fd_limit) + " && "
                            : "";
    std::string cmd = limit + "exec " + bin + " serve " + image_ + " --listen " + listen + key +
                      options_.serve_flags;
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(out_pipe[1]);
  server_pid_ = pid;
  // The server prints "listening on port N" once it accepts connections.
  std::string line;
  char c;
  while (read(out_pipe[0], &c, 1) == 1 && c != '\n') line.push_back(c);
  close(out_pipe[0]);
  int port = 0;
  ASSERT_EQ(std::sscanf(line.c_str(), "listening on port %d", &port), 1)
      << "server did not start: '" << line << "'";
  port_ = port;
}

void Cluster::StopServer() {
  ASSERT_GT(server_pid_, 0);
  kill(server_pid_, SIGTERM);
  int status = 0;
  bool done = WaitFor([&] { return waitpid(server_pid_, &status, WNOHANG) == server_pid_; },
                      std::chrono::seconds(60));
  ASSERT_TRUE(done) << "server did not stop within 60 s";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "server exit status " << status;
  server_pid_ = -1;
}

void Cluster::KillServer() {
  ASSERT_GT(server_pid_, 0);
  kill(server_pid_, SIGKILL);
  waitpid(server_pid_, nullptr, 0);
  server_pid_ = -1;
}

void Cluster::MountVia(int port, const std::string& mountpoint) {
  std::string m = mountpoint.empty() ? mnt_ : mountpoint;
  mkdir(m.c_str(), 0755);
  std::string out;
  ASSERT_EQ(
      RunCommand(CohfsBinary() + " mount 127.0.0.1:" + std::to_string(port) + " " + m + " --log " +
                     dir_ + "/client.log " +
                     (options_.insecure ? "" : "--key " + key_file() + " ") + options_.mount_flags,
                 &out),
      0)
      << out;
  mounts_.push_back(m);
  daemons_[m] = FindMountDaemon(m);
  EXPECT_GT(daemons_[m], 0) << "no client daemon found for " << m;
}

void Cluster::Unmount(const std::string& mountpoint) {
  std::string m = mountpoint.empty() ? mnt_ : mountpoint;
  if (umount2(m.c_str(), 0) != 0) {
    // A dead server can leave the mount busy; detach it so the test ends.
    EXPECT_EQ(umount2(m.c_str(), MNT_DETACH), 0) << "umount " << m << ": " << strerror(errno);
  }
  mounts_.erase(std::remove(mounts_.begin(), mounts_.end(), m), mounts_.end());
  // umount returns before the daemon has shipped its last logged changes and
  // exited; an unmounted client is one whose daemon is gone.
  pid_t daemon = daemons_[m];
  daemons_.erase(m);
  if (daemon > 0) {
    EXPECT_TRUE(WaitFor([&] { return ProcessGone(daemon); }, std::chrono::seconds(60)))
        << "client daemon " << daemon << " of " << m << " did not exit";
  }
}

void Cluster::KillClient(const std::string& mountpoint) {
  std::string m = mountpoint.empty() ? mnt_ : mountpoint;
  pid_t daemon = daemons_[m];
  ASSERT_GT(daemon, 0) << "no client daemon for " << m;
  kill(daemon, SIGKILL);
  EXPECT_TRUE(WaitFor([&] { return ProcessGone(daemon); }, std::chrono::seconds(30)));
  daemons_.erase(m);
  EXPECT_EQ(umount2(m.c_str(), MNT_DETACH), 0) << "umount " << m << ": " << strerror(errno);
  mounts_.erase(std::remove(mounts_.begin(), mounts_.end(), m), mounts_.end());
}

pid_t Cluster::ClientDaemon(const std::string& mountpoint) const {
  auto it = daemons_.find(mountpoint.empty() ? mnt_ : mountpoint);
  return it == daemons_.end() ? -1 : it->second;
}

std::string Cluster::ServerLog() const {
  std::ifstream in(dir_ + "/server.log");
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

int Cluster::Fsck(std::string* output) {
  return RunCommand(CohfsBinary() + " fsck " + image_, output);
}

std::string Cluster::Stats(const std::string& mountpoint) {
  std::string out;
  RunCommand(CohfsBinary() + " stats " + (mountpoint.empty() ? mnt_ : mountpoint), &out);
  return out;
}

void WriteFile(const std::string& path, const std::string& data, mode_t mode) {
  int fd = open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, mode);
  ASSERT_GE(fd, 0) << path << ": " << strerror(errno);
  ASSERT_EQ(write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size())) << path;
  ASSERT_EQ(fsync(fd), 0) << path;
  ASSERT_EQ(close(fd), 0) << path;
}

uint64_t StatValue(const std::string& stats, const std::string& name) {
  size_t p = stats.find("\n" + name + " ");
  if (p == std::string::npos) return 0;
  return std::stoull(stats.substr(p + name.size() + 2));
}

}  // namespace cohfs::test
