// Server wiring: volume -> file system -> lock manager -> dispatcher ->
// executor (commit pipeline) <- reactor (sockets). Built here, owned here.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "common/status.h"
#include "protocol/channel_key.h"
#include "server/dispatch.h"

namespace cohfs {

struct ServeOptions {
  std::string device;
  std::string meta_dir;  // empty: default next to the image / under /var/lib/cohfs
  std::string listen = "127.0.0.1:7420";
  uint32_t grace_ms = 0;             // after a restart, the clients' time to reclaim (0: one lease)
  uint32_t sync_interval_ms = 5000;  // unsynced changes become durable at least this often
  uint32_t peer_timeout_ms = 30000;  // to finish a frame begun, or read replies (PeerLimits)
  // Connections open at once, at most; fewer if the file descriptor limit
  // (raised to its hard limit) leaves less room.
  size_t max_connections = 1024;
  std::string metrics_listen;        // HOST:PORT for Prometheus at /metrics ("": none)
  ServerConfig config;
  // Clients must prove they hold it; every frame is encrypted. Without one
  // (--insecure) frames go in clear, and only a loopback address is served.
  std::optional<ChannelKey> key;
};

// Runs until SIGINT or SIGTERM, then stops accepting, finishes queued work,
// syncs and returns. `on_listening(port)` runs once the socket is bound; then,
// under systemd, READY=1 goes to $NOTIFY_SOCKET (and STOPPING=1 on the signal).
Status Serve(const ServeOptions& options, const std::function<void(int port)>& on_listening);

}  // namespace cohfs
