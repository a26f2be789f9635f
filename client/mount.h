// Mount: connect to the server, mount FUSE, daemonize, serve until unmounted.
#pragma once

#include <optional>
#include <string>

#include "protocol/channel_key.h"

namespace cohfs {

struct MountOptions {
  std::string server;  // HOST:PORT
  std::string mountpoint;
  bool foreground = false;
  bool debug = false;          // libfuse request tracing
  std::string log_file;        // daemon stderr goes here when set (else /dev/null when daemonized)
  size_t max_locks = 1 << 20;  // cached inodes at most; past it the LRU locks go back
  int timeout_ms = 30000;      // connecting and the handshake give up after this
  int64_t soft_timeout_ms = 0;  // -o soft,timeo=N: EIO once the server is unreachable N s (0: hard)
  std::string fuse_options;     // kernel mount flags for libfuse, e.g. "ro,noexec" ("": none)
  std::optional<ChannelKey> key;  // --key: authenticate and encrypt (none: frames in clear)
  std::string metrics_listen;     // -o metrics=HOST:PORT: Prometheus at /metrics ("": none)
  bool fuse_uring = true;         // -o uring|nouring: FUSE over io_uring when the kernel offers it
  unsigned uring_threads = 4;     // -o uring_threads=N: ring threads (one entry each) per CPU queue
};

// Refuses a mountpoint that already is a cohfs mount. Returns the process exit code. In the
// background case the parent returns 0 only once the kernel's INIT has been answered: the mount is
// live.
int RunMount(const MountOptions& options);

}  // namespace cohfs
