// Scheduler: which request runs when (DESIGN §5). Every request asks the
// Dispatcher whether other clients' locks are in its way; if so their holders
// are sent recalls and the request is parked until locks come back (a
// release, a downgrade, an unlock, a session's end), then retried in arrival
// order. Also keeps the sessions and the lock table's bound.
// Free of threads and sockets: the Executor drives it, and so does the
// deterministic simulation of the protocol (tests/sim).
// Thread: whoever owns it (the storage executor).
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <unordered_map>
#include <vector>

#include "server/dispatch.h"
#include "server/reactor.h"

namespace cohfs {

class Scheduler {
 public:
  explicit Scheduler(Dispatcher& dispatcher) : dispatcher_(dispatcher) {}

  // What a step produced, in send order: replies and recalls, and the
  // requests to answer once everything before them is durable.
  struct Out {
    std::vector<OutgoingReply> frames;
    std::vector<std::pair<ConnectionId, RequestId>> after_sync;
    bool mutated = false;  // a change was committed (not synced yet)
  };

  void OnRequest(ConnectionId conn, std::unique_ptr<DecodedRequest> request, int64_t now_ms,
                 Out& out);
  void OnClosed(ConnectionId conn, int64_t now_ms, Out& out);
  // Recalls that bring the lock table back under its bound.
  void Trim(int64_t now_ms, Out& out);
  void EndAll();  // server stop: every session ends, parked requests are dropped

  size_t parked() const { return parked_.size(); }
  // The client id of a connection's session (invalid before its first request).
  ClientId ClientOf(ConnectionId conn) const;

 private:
  struct Work {
    ConnectionId conn = 0;
    std::unique_ptr<DecodedRequest> request;
  };
  void Admit(Work& w, int64_t now_ms, Out& out);
  void Run(Work& w, Session& session, int64_t now_ms, Out& out);
  void RetryParked(int64_t now_ms, Out& out);
  void SendRecalls(const std::vector<LockManager::Conflict>& recalls, Out& out);

  Dispatcher& dispatcher_;
  std::unordered_map<ConnectionId, Session> sessions_;
  std::unordered_map<ClientId, ConnectionId> conn_of_;
  // Requests waiting for other clients to give back locks, in arrival order.
  // Each client has at most its FUSE threads' worth parked (its log commits,
  // releases and data under its own locks never wait), well under the
  // reactor's per-connection in-flight limit, so its releases are always read.
  std::deque<Work> parked_;
  uint64_t next_client_ = 1;
};

}  // namespace cohfs
