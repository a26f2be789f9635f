#include "server/server.h"

#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <thread>

#include "common/log.h"
#include "io/metrics_http.h"
#include "io/ring.h"
#include "server/executor.h"
#include "server/file_system.h"
#include "server/lock_manager.h"
#include "server/reactor.h"
#include "storage/item_store.h"
#include "storage/volume.h"

namespace cohfs {
namespace {

// File descriptors kept for everything but connections: RocksDB's table
// files, and its logs, the device, io_uring, eventfds, our logs.
constexpr rlim_t kReservedFds = ItemStore::kMaxOpenFiles + 128;

// Raises the soft file descriptor limit to the hard one and returns how many
// connections fit beside kReservedFds (at most `wanted`): a server that runs
// out of descriptors fails RocksDB's opens, not only accepts.
Result<size_t> ConnectionRoom(size_t wanted) {
  rlimit r{};
  if (getrlimit(RLIMIT_NOFILE, &r) != 0) return Status::Error(errno, "getrlimit(RLIMIT_NOFILE)");
  if (r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &r) != 0) return Status::Error(errno, "setrlimit(RLIMIT_NOFILE)");
  }
  if (r.rlim_cur <= kReservedFds + 1) {
    return Status::Error(EMFILE, "the file descriptor limit (" + std::to_string(r.rlim_cur) +
                                     ") leaves no room for connections: raise it (ulimit -n, "
                                     "systemd's LimitNOFILE=)");
  }
  size_t room = static_cast<size_t>(r.rlim_cur - kReservedFds);
  if (room >= wanted) return wanted;
  LOG(Warn) << "serving at most " << room << " connections, not " << wanted
            << ": the file descriptor limit is " << r.rlim_cur << " (ulimit -n, LimitNOFILE=)";
  return room;
}

bool IsLoopback(int listen_fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (getsockname(listen_fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return false;
  if (ss.ss_family == AF_INET) {
    return (ntohl(reinterpret_cast<sockaddr_in*>(&ss)->sin_addr.s_addr) >> 24) == 127;
  }
  return ss.ss_family == AF_INET6 &&
         IN6_IS_ADDR_LOOPBACK(&reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr);
}

// Signals are taken by one waiting thread; every other thread blocks them.
sigset_t BlockStopSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return signals;
}

// --metrics HOST:PORT ("": none, a null server).
Result<std::unique_ptr<MetricsHttp>> ServeMetrics(const std::string& listen,
                                                  const MetricsRegistry& registry) {
  if (listen.empty()) return std::unique_ptr<MetricsHttp>();
  ASSIGN_OR_RETURN(std::unique_ptr<MetricsHttp> http, MetricsHttp::Start(listen, registry));
  LOG(Info) << "metrics on http://" << listen.substr(0, listen.rfind(':')) << ":" << http->port()
            << "/metrics";
  return http;
}

}  // namespace

Status Serve(const ServeOptions& options, const std::function<void(int port)>& on_listening) {
  sigset_t signals = BlockStopSignals();

  VolumeOptions vo;
  vo.device = options.device;
  vo.meta_dir = options.meta_dir;
  ASSIGN_OR_RETURN(std::unique_ptr<Volume> volume, Volume::Open(vo));
  FileSystem fs(*volume);
  LockManager locks;
  Dispatcher dispatcher(fs, locks, *volume, options.config);

  int port = 0;
  ASSIGN_OR_RETURN(int listen_fd, ListenTcp(options.listen, &port));
  if (!options.key && !IsLoopback(listen_fd)) {
    close(listen_fd);
    return Status::Error(EPERM,
                         "--insecure serves only a loopback address (127.0.0.0/8, ::1), not " +
                             options.listen + ": use --key FILE");
  }
  ASSIGN_OR_RETURN(std::unique_ptr<Ring> ring, Ring::Create(1024));
  Executor executor(dispatcher, fs, options.sync_interval_ms, options.config.lease_ms,
                    options.grace_ms ? options.grace_ms : options.config.lease_ms);
  PeerLimits peer_limits;
  peer_limits.timeout_ms = options.peer_timeout_ms;
  ASSIGN_OR_RETURN(peer_limits.connections, ConnectionRoom(options.max_connections));
  Reactor reactor(std::move(ring), listen_fd, executor, options.config.lease_ms, peer_limits,
                  options.key ? &*options.key : nullptr);
  // Counted whether or not they are served, so --metrics costs no extra work.
  MetricsRegistry registry;
  ServerMetrics metrics(registry);
  RegisterVolumeMetrics(registry, *volume);
  dispatcher.set_metrics(&metrics);
  executor.set_metrics(&metrics);
  reactor.set_metrics(&metrics);
  // Destroyed first: it reads all of the above.
  ASSIGN_OR_RETURN(std::unique_ptr<MetricsHttp> metrics_http,
                   ServeMetrics(options.metrics_listen, registry));
  // Orphans are reclaimed (now, or after the grace period).
  RETURN_IF_ERROR(executor.Start(reactor));
  RETURN_IF_ERROR(fs.Sync());

  std::thread signal_waiter([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    if (sig != 0) LOG(Info) << "signal " << sig << ": shutting down";
    // systemd (Type=notify) shows the unit as deactivating while the final sync runs.
    sd_notify(0, "STOPPING=1\nSTATUS=stopping: final sync");
    reactor.Stop();
  });
  LOG(Info) << "serving " << options.device << " (metadata in " << volume->meta_dir()
            << ") on port " << port
            << (options.key ? ", clients authenticated and encrypted" : ", INSECURE (no key)")
            << ", lease " << options.config.lease_ms << " ms";
  on_listening(port);
  // Under systemd (Type=notify) dependants start now: the socket is listening,
  // so a connect succeeds and waits in the backlog until the reactor accepts it.
  // Without NOTIFY_SOCKET this does nothing.
  sd_notifyf(0, "READY=1\nSTATUS=serving on port %d", port);
  reactor.Run();
  executor.StopAndSync();
  // Wake the signal waiter if the reactor stopped for another reason.
  pthread_kill(signal_waiter.native_handle(), SIGTERM);
  signal_waiter.join();
  LOG(Info) << "server stopped cleanly";
  return Status::Ok();
}

}  // namespace cohfs
