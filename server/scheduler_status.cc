// serverStatus (`cohfs status`): a snapshot of sessions, leases, locks,
// recalls, the grace period and space, taken on the executor between
// requests. O(sessions + locks): an operator's command, not a hot path.
#include <capnp/message.h>

#include "server/scheduler.h"

namespace cohfs {
namespace {

Status CheckStatusVersion(wire::Request::ServerStatus::Reader req) {
  uint32_t v = wire::PROTOCOL_VERSION;
  if (req.getVersionMin() > v || req.getVersionMax() < v) {
    return Status::Error(EPROTONOSUPPORT, "server speaks protocol version " + std::to_string(v));
  }
  return Status::Ok();
}

}  // namespace

OutFrame Scheduler::StatusReply(RequestId id, wire::Request::ServerStatus::Reader req,
                                int64_t now_ms) {
  Status version = CheckStatusVersion(req);
  if (!version.ok()) return Dispatcher::ErrorReply(id, version);
  LockManager& locks = dispatcher_.locks();
  const SpaceGrants& grants = dispatcher_.space_grants();
  capnp::MallocMessageBuilder m;
  auto st = m.initRoot<wire::Reply>().initServerStatus();
  st.setLeaseMs(lease_ms_);
  st.setGrace(grace_);
  st.setGraceLeftMs(grace_ ? std::max<int64_t>(0, grace_ends_ms_ - now_ms) : 0);
  st.setFreeBytes(dispatcher_.fs().free_bytes());
  st.setGrantedBytes(grants.total());
  st.setLockedInodes(locks.resource_count());
  st.setParkedRequests(parked_.size());
  auto list = st.initSessions(static_cast<unsigned>(sessions_.size()));
  uint64_t recalls = 0;
  unsigned i = 0;
  for (auto& [client, s] : sessions_) {
    auto out = list[i++];
    out.setId(client.value);
    out.setClientName(s.name);
    out.setPeer(s.conn != 0 && peer_of_ ? peer_of_(s.conn) : "");
    int64_t ends_ms = s.conn != 0 ? s.last_request_ms + lease_ms_ : s.ends_ms;
    out.setLeaseLeftMs(std::max<int64_t>(0, ends_ms - now_ms));
    out.setLocksHeld(locks.CountHeldBy(client));
    uint64_t pending = locks.PendingRecalls(client).size();
    recalls += pending;
    out.setRecallsInFlight(pending);
    out.setGrantBytes(grants.of(client));
    out.setReclaiming(s.reclaiming);
  }
  st.setRecallsInFlight(recalls);
  return EncodeFrame(FrameKind::kReply, id, m);
}

}  // namespace cohfs
