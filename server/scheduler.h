// Scheduler: which request runs when (DESIGN §5), and the sessions they
// belong to (DESIGN §7).
//
// Every request asks the Dispatcher whether other clients' locks are in its
// way; if so their holders are sent recalls and the request is parked until
// locks come back (a release, a downgrade, an unlock, a session's end), then
// retried in arrival order.
//
// Sessions outlive connections: a connection's first request is a hello,
// which opens a session or resumes one (id and key). A session whose
// connection breaks keeps its locks for one lease, so a client that
// reconnects in time resends what it got no reply to and goes on (stored
// replies answer what was applied already: Dispatcher::Replay); one silent
// past its lease, or gone for a lease, ends. After a restart the stored
// sessions get a grace period (default one lease): until each has reclaimed
// its locks or the period is over, nothing is granted anew. Locks a client
// was giving back when the server stopped come back at the period's end if
// nobody else reclaimed them; its requests wait until then, in order.
// Free of threads and sockets: the Executor drives it, and so does the
// deterministic simulation of the protocol (tests/sim).
// Thread: whoever owns it (the storage executor).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <unordered_map>
#include <vector>

#include "server/dispatch.h"
#include "server/reactor.h"

namespace cohfs {

class Scheduler {
 public:
  // `lease_ms`: how long a detached session waits for its client;
  // `grace_ms`: how long a restarted server waits for its clients.
  Scheduler(Dispatcher& dispatcher, uint32_t lease_ms, uint32_t grace_ms)
      : dispatcher_(dispatcher), lease_ms_(lease_ms), grace_ms_(grace_ms) {}

  // Loads the sessions stored before a restart: with any, the grace period
  // begins; without, orphans nobody can reference any more are reclaimed.
  Status Start(int64_t now_ms);

  // What a step produced, in send order: replies and recalls, the requests
  // to answer once everything before them is durable, connections to close.
  struct Out {
    std::vector<OutgoingReply> frames;
    std::vector<std::pair<ConnectionId, RequestId>> after_sync;
    std::vector<ConnectionId> closes;
    bool mutated = false;  // a change was committed (not synced yet)
  };

  void OnRequest(ConnectionId conn, std::unique_ptr<DecodedRequest> request, int64_t now_ms,
                 Out& out);
  // `lease_expired`: the client was silent past its lease; its session ends now.
  void OnClosed(ConnectionId conn, int64_t now_ms, bool lease_expired, Out& out);
  // Ends sessions detached for a lease, sessions that left a recall
  // unanswered for two leases, and the grace period when due; recalls that
  // bring the lock table back under its bound.
  void Tick(int64_t now_ms, Out& out);
  // Server stop: sessions end in memory (stored, they are reclaimed after
  // the restart); parked requests are dropped.
  void EndAll();

  size_t parked() const { return parked_.size(); }
  size_t session_count() const { return sessions_.size(); }
  bool in_grace() const { return grace_; }
  // The client id of a connection's session (invalid before its hello).
  ClientId ClientOf(ConnectionId conn) const;
  // Who is at the other end of a connection, for `cohfs status` ("" unknown).
  void set_peer_lookup(std::function<std::string(ConnectionId)> peer_of) {
    peer_of_ = std::move(peer_of);
  }

 private:
  struct Work {
    ConnectionId conn = 0;
    std::unique_ptr<DecodedRequest> request;
  };
  void OnHello(Work& w, int64_t now_ms, Out& out);
  Session* Resumable(wire::Request::Hello::Reader h);
  void Admit(Work& w, Session& session, int64_t now_ms, Out& out);
  bool RunnableInGrace(const Session& session, DecodedRequest& request);
  void Run(Work& w, Session& session, int64_t now_ms, Out& out);
  void RetryParked(int64_t now_ms, Out& out);
  void DropParked(ConnectionId conn);
  void SendRecalls(const std::vector<LockManager::Conflict>& recalls, Out& out);
  void End(ClientId client, const char* why, int64_t now_ms, Out& out);
  void EndGrace(int64_t now_ms, Out& out);
  // The reply to serverStatus (server/scheduler_status.cc).
  OutFrame StatusReply(RequestId id, wire::Request::ServerStatus::Reader req, int64_t now_ms);

  Dispatcher& dispatcher_;
  uint32_t lease_ms_;
  uint32_t grace_ms_;
  std::unordered_map<ClientId, Session> sessions_;
  std::unordered_map<ConnectionId, ClientId> client_of_;
  // Requests waiting for other clients to give back locks, in arrival order.
  // Each client has at most its FUSE threads' worth parked (its log commits,
  // releases and data under its own locks never wait), well under the
  // reactor's per-connection in-flight limit, so its releases are always read.
  std::deque<Work> parked_;
  bool grace_ = false;
  int64_t grace_ends_ms_ = 0;
  std::function<std::string(ConnectionId)> peer_of_;
};

}  // namespace cohfs
