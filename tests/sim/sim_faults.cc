// The simulation's faults (see sim_world.h): dropped connections and server
// crashes, and the client's way back, as client/rpc_client.cc's Reconnect
// does it: a hello resuming the session (id and key), after a restart the
// reclaim of its locks, both answered before anything else moves, then
// every unanswered request again (SimRpc::Resume).
#include <gtest/gtest.h>

#include "client/space_grant.h"
#include "common/check.h"
#include "tests/sim/sim_world.h"

namespace cohfs::sim {
namespace {

// A cut connection comes back within this (sim time): well within the lease
// and the grace period (both SimServerConfig's lease, 15 s).
constexpr int64_t kMaxAwayNs = 2000000000;
constexpr int kCutOneIn = 400;     // steps: about two cuts a seed
constexpr int kCrashOneIn = 2000;  // steps, in the seeds that crash at all

ServerConfig SimServerConfig(size_t leaf_max_entries = 256) {
  ServerConfig c;
  c.max_locked_inodes = 10;  // small: the server recalls locks to stay under it
  c.leaf_max_entries = leaf_max_entries;
  return c;
}

}  // namespace

void World::BuildServer() {
  scheduler_.reset();
  dispatcher_.reset();
  locks_ = std::make_unique<LockManager>();
  const ServerConfig config = SimServerConfig(leaf_max_entries_);
  dispatcher_ = std::make_unique<Dispatcher>(fs_, *locks_, volume_, config);
  scheduler_ = std::make_unique<Scheduler>(*dispatcher_, config.lease_ms, config.lease_ms);
}

// A step of its own: a client due back reconnects, else perhaps a fault.
bool World::MaybeFault() {
  for (Client& c : clients_) {
    if (c.back_ns != 0 && now_ns_ >= c.back_ns) return Reconnect(c), true;
  }
  if (Pick(kCutOneIn) == 0) {
    Client& c = clients_[Pick(kClients)];
    if (c.back_ns == 0) return CutLink(c), true;
  }
  if (crashes_left_ > 0 && Pick(kCrashOneIn) == 0) return CrashServer(), true;
  return false;
}

// The wire breaks: the server sees the connection close (the session waits
// a lease for its client); the client will be back in up to kMaxAwayNs.
void World::CutLink(Client& c) {
  Trace("c" + std::to_string(c.index) + ": connection " + std::to_string(c.rpc->conn()) + " cut");
  const ConnectionId conn = c.rpc->conn();
  c.rpc->Cut();
  c.back_ns = now_ns_ + 1 + static_cast<int64_t>(rng_() % kMaxAwayNs);
  Scheduler::Out out;
  scheduler_->OnClosed(conn, now_ms(), /*lease_expired=*/false, out);
  Route(out);
}

// The server dies: everything it held in memory goes (every connection with
// it); a new one starts from the store, in its grace period.
void World::CrashServer() {
  Trace("server crashes");
  crashes_left_--;
  for (Client& c : clients_) {
    if (c.back_ns == 0) {
      c.rpc->Cut();
      c.back_ns = now_ns_ + 1 + static_cast<int64_t>(rng_() % kMaxAwayNs);
    }
    c.reclaimed = false;
  }
  BuildServer();
  CHECK(scheduler_->Start(now_ms()).ok());
  if (!scheduler_->in_grace()) Fail("the restarted server found no sessions to wait for");
}

// A request the server answers at once, as a handshake exchanges it (id 0);
// the rest of what the step produced stays in `out`.
std::unique_ptr<DecodedReply> World::Exchange(ConnectionId conn, capnp::MallocMessageBuilder& m,
                                              Scheduler::Out& out) {
  auto request =
      DecodedRequest::Decode(ThroughWire(EncodeFrame(FrameKind::kRequest, RequestId(0), m)));
  CHECK(request.ok());
  scheduler_->OnRequest(conn, std::move(request).value(), now_ms(), out);
  for (auto& [c, id] : out.after_sync) {
    out.frames.push_back(OutgoingReply{c, Dispatcher::SyncReply(id, Status::Ok())});
  }
  out.after_sync.clear();
  for (auto it = out.frames.begin(); it != out.frames.end(); ++it) {
    if (it->conn != conn || !it->is_reply) continue;
    auto reply = DecodedReply::Decode(ThroughWire(it->frame));
    CHECK(reply.ok());
    if ((*reply)->frame().header.request_id.value != 0) continue;
    out.frames.erase(it);
    return std::move(reply).value();
  }
  return nullptr;
}

void World::Reconnect(Client& c) {
  const ConnectionId conn = next_conn_++;
  Trace("c" + std::to_string(c.index) + " reconnects on connection " + std::to_string(conn));
  c.back_ns = 0;
  const Welcome& old = c.rpc->welcome();
  capnp::MallocMessageBuilder m;
  auto h = InitHello(m.initRoot<wire::Request>(), "sim", SpaceGrant::kWantBytes);
  h.setResumeSession(old.session_id);
  h.setResumeKey(old.session_key);
  Scheduler::Out out;
  auto welcome = Exchange(conn, m, out);
  CHECK(welcome && (*welcome).root().isWelcome());
  auto w = welcome->root().getWelcome();
  if (!w.getResumed() || w.getSessionId() != old.session_id) {
    return Fail("client " + std::to_string(c.index) + " lost its session (back within its lease)");
  }
  if (w.getReclaim()) {
    CHECK(c.rpc->reclaimer().build && !c.reclaimed);
    capnp::MallocMessageBuilder r;
    c.rpc->reclaimer().build(r.initRoot<wire::Request>());
    TraceReclaim(c, r.getRoot<wire::Request>().getReclaim());
    auto reclaimed = Exchange(conn, r, out);
    CHECK(reclaimed);
    if (reclaimed->root().getErrno() != 0) {
      return Fail("client " + std::to_string(c.index) +
                  ": reclaim refused: " + reclaimed->root().getMessage().cStr());
    }
    // Two correct clients never reclaim conflicting locks.
    if (reclaimed->root().getGrants().size() !=
        r.getRoot<wire::Request>().getReclaim().getLocks().size()) {
      return Fail("client " + std::to_string(c.index) + ": a lock it held was refused at reclaim");
    }
    c.rpc->reclaimer().done(reclaimed->root());
  } else if (!c.reclaimed) {
    return Fail("client " + std::to_string(c.index) + " was not asked to reclaim after a crash");
  }
  c.reclaimed = true;
  Welcome resumed = old;
  resumed.resumed = true;
  c.rpc->Resume(conn, resumed, w.getReclaim());
  Route(out);  // recalls it missed, replies to others' requests the reclaim unparked
}

void World::TraceReclaim(Client& c, wire::Request::Reclaim::Reader r) {
  std::string t = "c" + std::to_string(c.index) + " reclaims";
  for (auto g : r.getLocks()) t += " " + std::to_string(g.getIno());
  t += "; gives back";
  for (auto g : r.getGivingBack()) t += " " + std::to_string(g.getIno());
  t += "; refs";
  for (uint64_t ino : r.getRefs()) t += " " + std::to_string(ino);
  Trace(t);
}

void World::ReconnectAll() {
  for (Client& c : clients_) {
    if (c.back_ns != 0 && !failed_) Reconnect(c);
  }
}

// The seed is over: every session ends as at an unmount (a goodbye, then
// the connection closes), so that a later seed's crash finds only its own.
void World::EndSessions() {
  if (!scheduler_) return;
  Scheduler::Out out;
  for (Client& c : clients_) {
    if (!c.rpc || !c.rpc->connected()) continue;
    capnp::MallocMessageBuilder m;
    m.initRoot<wire::Request>().setGoodbye();
    (void)Exchange(c.rpc->conn(), m, out);
    scheduler_->OnClosed(c.rpc->conn(), now_ms(), /*lease_expired=*/false, out);
  }
  // Sessions still detached or reclaiming end a lease (and a grace period) later.
  scheduler_->Tick(now_ms() + 2 * int64_t{SimServerConfig().lease_ms} + 1, out);
}

}  // namespace cohfs::sim
