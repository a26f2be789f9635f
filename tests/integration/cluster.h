// A real cohfs deployment for one test: an image file, a `cohfs serve`
// process on loopback, and `cohfs mount` clients in temporary directories.
// Every wait has a deadline; teardown unmounts, stops the server and requires
// a clean fsck.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace cohfs::test {

// Runs a command; returns its exit status (or -1), with stdout+stderr in *output.
int RunCommand(const std::string& command, std::string* output = nullptr);

// Creates or truncates `path`, writes `data`, fsyncs and closes (gtest assertions).
void WriteFile(const std::string& path, const std::string& data, mode_t mode = 0644);

// Polls `cond` until it holds or the deadline passes.
bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds deadline);

// Runs `fn` in a child process as uid/gid (no supplementary groups); returns
// what fn returned (an errno value, 0 for success).
int RunAs(uid_t uid, gid_t gid, const std::function<int()>& fn);

struct ClusterOptions {
  uint64_t image_bytes = 2ull << 30;  // sparse
  std::string serve_flags;            // appended to `cohfs serve`
  int server_fd_limit = 0;            // the server's RLIMIT_NOFILE (0: inherited)
  std::string mount_flags;            // appended to every `cohfs mount`
  // Serve --insecure and mount without a key; by default the cluster makes a
  // key (key_file()) and serves and mounts with it: the suite runs encrypted.
  bool insecure = false;
};

class Cluster {
 public:
  explicit Cluster(ClusterOptions options = {});
  ~Cluster();

  const std::string& dir() const { return dir_; }
  const std::string& image() const { return image_; }
  const std::string& mnt() const { return mnt_; }
  std::string Path(const std::string& rel) const { return mnt_ + "/" + rel; }
  int port() const { return port_; }
  // The key the server and mounts use ("" for an insecure cluster).
  std::string key_file() const { return options_.insecure ? "" : dir_ + "/key"; }

  void StartServer();
  // Flags of the next StartServer (instead of ClusterOptions::serve_flags).
  void set_serve_flags(std::string flags) { options_.serve_flags = std::move(flags); }
  void StopServer();  // SIGTERM and wait: a clean shutdown
  void KillServer();  // SIGKILL: a crash
  bool ServerRunning() const { return server_pid_ > 0; }
  pid_t server_pid() const { return server_pid_; }  // the `cohfs serve` process (-1: none)
  // Mounts a client at `mountpoint` (default: mnt()).
  void Mount(const std::string& mountpoint = "") { MountVia(port_, mountpoint); }
  // Mounts through another port (a relay in front of the server).
  void MountVia(int port, const std::string& mountpoint = "");
  void Unmount(const std::string& mountpoint = "");
  // SIGKILL of a client daemon (a crashed client machine), then its mount is detached.
  void KillClient(const std::string& mountpoint = "");
  // The client daemon serving `mountpoint` (-1: none), e.g. to SIGSTOP it.
  pid_t ClientDaemon(const std::string& mountpoint = "") const;
  std::string ServerLog() const;  // what `cohfs serve` logged so far
  // Runs `cohfs fsck`; returns its exit status, output in *output.
  int Fsck(std::string* output = nullptr);
  std::string Stats(const std::string& mountpoint = "");

 private:
  ClusterOptions options_;
  std::string dir_, image_, mnt_;
  pid_t server_pid_ = -1;
  int port_ = 0;
  std::vector<std::string> mounts_;
  std::map<std::string, pid_t> daemons_;  // mountpoint -> its client daemon
};

std::string CohfsBinary();

// One counter of `cohfs stats` output (0 when absent).
uint64_t StatValue(const std::string& stats, const std::string& name);

}  // namespace cohfs::test
