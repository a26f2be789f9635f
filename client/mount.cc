#include "client/mount.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "client/client_metrics.h"
#include "client/fuse_ops.h"
#include "client/fuse_uring.h"
#include "common/log.h"
#include "io/metrics_http.h"

namespace cohfs {
namespace {

// Tells the waiting parent that the mount is live (one byte) or failed (EOF).
class ReadyPipe {
 public:
  ReadyPipe() { CHECK(pipe2(fds_, O_CLOEXEC) == 0); }
  int read_fd() const { return fds_[0]; }
  void CloseRead() { close(fds_[0]); }
  void CloseWrite() {
    if (fds_[1] >= 0) close(fds_[1]);
    fds_[1] = -1;
  }
  void SignalReady() {
    if (fds_[1] < 0) return;
    char c = 1;
    (void)!write(fds_[1], &c, 1);
    CloseWrite();
  }

 private:
  int fds_[2];
};

void RedirectStdio(const std::string& log_file) {
  int in = open("/dev/null", O_RDONLY);
  int out =
      open(log_file.empty() ? "/dev/null" : log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (in >= 0) dup2(in, 0);
  if (out >= 0) {
    dup2(out, 1);
    dup2(out, 2);
  }
  if (in > 2) close(in);
  if (out > 2) close(out);
}

// mountinfo escapes space, tab, newline and backslash in paths as \ooo.
std::string UnescapeMountPath(const std::string& s) {
  auto octal = [](char c) { return c >= '0' && c <= '7'; };
  std::string out;
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] == '\\' && i + 3 < s.size() && octal(s[i + 1]) && octal(s[i + 2]) && octal(s[i + 3])) {
      out.push_back(
          static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0')));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// Whether `path` is the mount point of a cohfs mount in this mount namespace.
// Compared by name (the parent resolved, the last component as given): a
// mount whose daemon died cannot be stat'ed, and it is one to refuse too.
bool IsCohfsMount(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  size_t slash = p.rfind('/');
  std::string parent = slash == std::string::npos ? "." : (slash == 0 ? "/" : p.substr(0, slash));
  char* real = realpath(parent.c_str(), nullptr);
  if (!real) return false;
  std::string resolved = std::string(real) + (std::string(real) == "/" ? "" : "/") +
                         (slash == std::string::npos ? p : p.substr(slash + 1));
  free(real);
  std::ifstream in("/proc/self/mountinfo");
  for (std::string line; std::getline(in, line);) {
    // id parent major:minor root MOUNTPOINT options [optional...] - FSTYPE source super
    std::istringstream f(line);
    std::string id, parent_id, dev, root, mountpoint;
    f >> id >> parent_id >> dev >> root >> mountpoint;
    size_t dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::istringstream tail(line.substr(dash + 3));
    std::string fstype;
    tail >> fstype;
    if (fstype == "fuse.cohfs" && UnescapeMountPath(mountpoint) == resolved) return true;
  }
  return false;
}

// Threads start here, after the fork that daemonizes (threads do not survive it).
// `uring` (none: /dev/fuse only) gets its threads here too.
int Serve(fuse_session* se, RpcClient& rpc, FuseOps& ops, FuseUring* uring,
          const MountOptions& options, ClientStats& stats) {
  MetricsRegistry registry;
  RegisterClientMetrics(registry, stats);
  std::unique_ptr<MetricsHttp> metrics;  // its own thread: never a FUSE or network thread
  if (!options.metrics_listen.empty()) {
    auto started = MetricsHttp::Start(options.metrics_listen, registry);
    if (!started.ok()) {
      LOG(Error) << "metrics: " << started.status().ToString();
      return 1;
    }
    metrics = std::move(*started);
    stats.metrics_port = static_cast<uint64_t>(metrics->port());
    LOG(Info) << "metrics on port " << metrics->port();
  }
  ops.Start();
  rpc.GiveUpAfter(options.soft_timeout_ms);
  Status st = rpc.Start();
  if (!st.ok()) {
    LOG(Error) << "cannot start the network thread: " << st.ToString();
    return 1;
  }
  if (uring && uring->Prepare()) ops.set_uring(uring);
  fuse_loop_config* cfg = fuse_loop_cfg_create();
  fuse_loop_cfg_set_max_threads(cfg, 16);
  fuse_loop_cfg_set_idle_threads(cfg, 4);
  int rc = fuse_session_loop_mt(se, cfg);
  fuse_loop_cfg_destroy(cfg);
  return rc == 0 ? 0 : 1;
}

}  // namespace

int RunMount(const MountOptions& options) {
  ClientStats stats;
  if (IsCohfsMount(options.mountpoint)) {
    std::fprintf(stderr, "cohfs mount: %s is already a cohfs mount (unmount it first)\n",
                 options.mountpoint.c_str());
    return 1;
  }
  struct stat mst;
  if (stat(options.mountpoint.c_str(), &mst) != 0 || !S_ISDIR(mst.st_mode)) {
    std::fprintf(stderr, "cohfs mount: %s is not a directory\n", options.mountpoint.c_str());
    return 1;
  }
  auto rpc = RpcClient::Connect(options.server, "cohfs-fuse", stats, options.timeout_ms,
                                options.key ? &*options.key : nullptr);
  if (!rpc.ok()) {
    std::fprintf(stderr, "cohfs mount: cannot reach server %s: %s\n", options.server.c_str(),
                 rpc.status().ToString().c_str());
    return 1;
  }
  FuseOpsConfig config;
  config.max_locked_inodes = options.max_locks;
  FuseOps ops(**rpc, stats, config);
  // Logged changes and forgotten inodes' locks go to the server in batches,
  // behind other requests or at the latest about a second later.
  (*rpc)->SetPeriodicHook([&ops] { ops.Tick(); });
  ReadyPipe ready;
  ops.set_on_init([&ready] { ready.SignalReady(); });

  // The source is HOST:PORT as given, so mount -a sees an fstab line already mounted.
  std::string fsname = "fsname=" + options.server;
  std::vector<const char*> argv = {"cohfs", "-o", "default_permissions,allow_other,subtype=cohfs",
                                   "-o", fsname.c_str()};
  if (!options.fuse_options.empty()) {
    argv.push_back("-o");
    argv.push_back(options.fuse_options.c_str());
  }
  if (options.debug) argv.push_back("-d");
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), const_cast<char**>(argv.data()));
  fuse_session* se = fuse_session_new(&args, &FuseOps::Table(), sizeof(fuse_lowlevel_ops), &ops);
  fuse_opt_free_args(&args);
  if (!se) {
    std::fprintf(stderr, "cohfs mount: fuse_session_new failed\n");
    return 1;
  }
  ops.set_session(se);
  // The custom io takes over the fd fuse_session_mount opened (and keeps its
  // mount point for the unmount).
  if (fuse_set_signal_handlers(se) != 0 ||
      fuse_session_mount(se, options.mountpoint.c_str()) != 0 ||
      fuse_session_custom_io(se, &FuseOps::CustomIo(), fuse_session_fd(se)) != 0) {
    std::fprintf(stderr, "cohfs mount: cannot mount on %s\n", options.mountpoint.c_str());
    fuse_session_destroy(se);
    return 1;
  }

  std::unique_ptr<FuseUring> uring;
  if (options.fuse_uring)
    uring = std::make_unique<FuseUring>(se, fuse_session_fd(se), stats, options.uring_threads);
  int rc;
  if (options.foreground) {
    ready.CloseRead();
    ready.CloseWrite();
    rc = Serve(se, **rpc, ops, uring.get(), options, stats);
  } else {
    pid_t pid = fork();
    if (pid < 0) {
      std::perror("cohfs mount: fork");
      return 1;
    }
    if (pid > 0) {
      // Parent: wait for INIT (the mount is live) or the child's death.
      ready.CloseWrite();
      char c;
      ssize_t n;
      do {
        n = read(ready.read_fd(), &c, 1);
      } while (n < 0 && errno == EINTR);
      if (n == 1) return 0;
      std::fprintf(stderr, "cohfs mount: the client daemon failed to start\n");
      return 1;
    }
    ready.CloseRead();
    setsid();
    if (chdir("/") != 0) LOG(Warn) << "chdir /: " << strerror(errno);
    RedirectStdio(options.log_file);
    rc = Serve(se, **rpc, ops, uring.get(), options, stats);
  }
  ops.set_session(nullptr);  // no kernel to invalidate any more
  fuse_session_unmount(se);
  if (uring) uring->Stop();  // after the unmount: requests in flight still get answers
  fuse_remove_signal_handlers(se);
  fuse_session_destroy(se);
  (*rpc)->Shutdown();
  return rc;
}

}  // namespace cohfs
