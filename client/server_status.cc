#include "client/server_status.h"

#include <capnp/message.h>

#include <cinttypes>
#include <cstdio>

#include "client/rpc_client.h"

namespace cohfs {
namespace {

SessionReport FromWire(wire::SessionStatus::Reader s) {
  SessionReport out;
  out.id = s.getId();
  out.client_name = s.getClientName().cStr();
  out.peer = s.getPeer().cStr();
  out.lease_left_ms = s.getLeaseLeftMs();
  out.locks_held = s.getLocksHeld();
  out.recalls_in_flight = s.getRecallsInFlight();
  out.grant_bytes = s.getGrantBytes();
  out.reclaiming = s.getReclaiming();
  return out;
}

}  // namespace

Result<ServerReport> QueryServerStatus(const std::string& host_port, const ChannelKey* key,
                                       int timeout_ms) {
  capnp::MallocMessageBuilder m;
  auto q = m.initRoot<wire::Request>().initServerStatus();
  q.setVersionMin(wire::PROTOCOL_VERSION);
  q.setVersionMax(wire::PROTOCOL_VERSION);
  ASSIGN_OR_RETURN(auto reply, RpcClient::ExchangeOnce(host_port, m, timeout_ms, key));
  ServerReport r;
  RETURN_IF_ERROR(GuardDecode([&]() -> Status {
    auto root = reply->root();
    if (!root.isServerStatus()) return Status::Error(EPROTO, "the reply is not a status");
    auto s = root.getServerStatus();
    r.lease_ms = s.getLeaseMs();
    r.grace = s.getGrace();
    r.grace_left_ms = s.getGraceLeftMs();
    r.free_bytes = s.getFreeBytes();
    r.granted_bytes = s.getGrantedBytes();
    r.locked_inodes = s.getLockedInodes();
    r.recalls_in_flight = s.getRecallsInFlight();
    r.parked_requests = s.getParkedRequests();
    for (auto session : s.getSessions()) r.sessions.push_back(FromWire(session));
    return Status::Ok();
  }));
  return r;
}

std::string FormatServerReport(const std::string& server, const ServerReport& r) {
  char buf[512];
  std::string out;
  auto line = [&](const char* fmt, auto... v) {
    std::snprintf(buf, sizeof(buf), fmt, v...);
    out += buf;
  };
  line("server: %s\n", server.c_str());
  line("lease_s: %.1f\n", r.lease_ms / 1000.0);
  line("grace: %s\n", r.grace ? "yes" : "no");
  if (r.grace) line("grace_left_s: %.1f\n", r.grace_left_ms / 1000.0);
  line("free_bytes: %" PRIu64 "\n", r.free_bytes);
  line("granted_bytes: %" PRIu64 "\n", r.granted_bytes);
  line("locked_inodes: %" PRIu64 "\n", r.locked_inodes);
  line("recalls_in_flight: %" PRIu64 "\n", r.recalls_in_flight);
  line("parked_requests: %" PRIu64 "\n", r.parked_requests);
  line("sessions: %zu\n", r.sessions.size());
  if (r.sessions.empty()) return out;
  line("%-8s %-22s %12s %10s %8s %12s %-10s %s\n", "SESSION", "PEER", "LEASE_LEFT_S", "LOCKS",
       "RECALLS", "GRANT_BYTES", "STATE", "NAME");
  for (const SessionReport& s : r.sessions) {
    const char* state = s.reclaiming ? "reclaiming" : s.peer.empty() ? "detached" : "attached";
    line("%-8" PRIu64 " %-22s %12.1f %10" PRIu64 " %8" PRIu64 " %12" PRIu64 " %-10s %s\n", s.id,
         s.peer.empty() ? "-" : s.peer.c_str(), s.lease_left_ms / 1000.0, s.locks_held,
         s.recalls_in_flight, s.grant_bytes, state, s.client_name.c_str());
  }
  return out;
}

}  // namespace cohfs
