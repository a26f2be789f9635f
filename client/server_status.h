// `cohfs status HOST:PORT`: the server's sessions, leases, locks, recalls,
// grace period and space, asked through the protocol (serverStatus, version
// 7) on a connection of its own, authenticated and encrypted like a mount's.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "protocol/channel_key.h"

namespace cohfs {

struct SessionReport {
  uint64_t id = 0;
  std::string client_name;
  std::string peer;  // "": detached
  int64_t lease_left_ms = 0;
  uint64_t locks_held = 0;
  uint64_t recalls_in_flight = 0;
  uint64_t grant_bytes = 0;
  bool reclaiming = false;
};

struct ServerReport {
  uint32_t lease_ms = 0;
  bool grace = false;
  int64_t grace_left_ms = 0;
  uint64_t free_bytes = 0;
  uint64_t granted_bytes = 0;
  uint64_t locked_inodes = 0;
  uint64_t recalls_in_flight = 0;
  uint64_t parked_requests = 0;
  std::vector<SessionReport> sessions;
};

Result<ServerReport> QueryServerStatus(const std::string& host_port, const ChannelKey* key,
                                       int timeout_ms);

// The report as `cohfs status` prints it: "name: value" lines, then one line
// per session under a header.
std::string FormatServerReport(const std::string& server, const ServerReport& r);

}  // namespace cohfs
