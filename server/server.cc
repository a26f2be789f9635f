#include "server/server.h"

#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <thread>

#include "common/log.h"
#include "io/ring.h"
#include "server/executor.h"
#include "server/file_system.h"
#include "server/lock_manager.h"
#include "server/reactor.h"
#include "storage/volume.h"

namespace cohfs {
namespace {

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

}  // namespace

Status Serve(const ServeOptions& options, const std::function<void(int port)>& on_listening) {
  // Signals are taken by one waiting thread; every other thread blocks them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

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
  Reactor reactor(std::move(ring), listen_fd, executor, options.config.lease_ms, peer_limits,
                  options.key ? &*options.key : nullptr);
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
