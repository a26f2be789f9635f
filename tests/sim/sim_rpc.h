// SimRpc: one client's connection in the deterministic simulation. It is the
// client core's Rpc (client/rpc.h) with the real wire format: every request
// and reply is encoded into a frame and parsed back by the real codec, but the
// frames wait in two queues (to the server, to the client) that only the
// simulation's step loop moves, one frame per step, in the order its seed
// picks across connections (each connection stays FIFO, as TCP is).
// Single-threaded: everything runs on the simulation's thread.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <string>

#include "client/rpc.h"
#include "server/reactor.h"

namespace cohfs::sim {

// A frame as the far end reads it off the wire (real encoder, real reader).
InFrame ThroughWire(const OutFrame& frame);

class SimRpc : public Rpc {
 public:
  // Sees each request as the core hands it to the connection (send order),
  // and each reply as it reaches the core (before its waiter or handler).
  using SendObserver =
      std::function<void(uint64_t id, wire::Request::Reader request, const std::string& bulk)>;
  using ReplyObserver =
      std::function<void(uint64_t id, wire::Request::Which kind, wire::Reply::Reader reply)>;

  explicit SimRpc(ConnectionId conn) : conn_(conn) {}
  void set_welcome(const Welcome& w) { welcome_ = w; }
  void set_observers(SendObserver on_send, ReplyObserver on_reply) {
    on_send_ = std::move(on_send);
    on_reply_ = std::move(on_reply);
  }
  // Wait on a ticket not answered yet runs `pump` (one round of the
  // simulation) until it is; pump returns false when nothing can move.
  void set_pump(std::function<bool()> pump) { pump_ = std::move(pump); }

  ConnectionId conn() const { return conn_; }
  // The simulation's side of the wire.
  bool HasToServer() const { return !to_server_.empty(); }
  OutFrame TakeToServer();
  void PushToClient(OutFrame frame) { to_client_.push_back(std::move(frame)); }
  bool HasToClient() const { return !to_client_.empty(); }
  // The oldest frame from the server reaches the core: a recall goes to the
  // recall handler, a reply to its waiter or to its Post handler.
  void DeliverToClient();
  // Commits posted whose replies have not reached the core yet.
  int commits_unanswered() const { return commits_unanswered_; }
  bool idle() const { return to_server_.empty() && to_client_.empty() && pending_.empty(); }

  void SetRecallHandler(RecallHandler h) override { recall_handler_ = std::move(h); }
  uint64_t last_request_id() override { return next_id_ - 1; }
  uint64_t oldest_unanswered_id() override;
  const Welcome& welcome() const override { return welcome_; }

 protected:
  Ticket DoSend(capnp::MallocMessageBuilder& request, std::string bulk) override;
  Result<RpcReply> DoWait(const Ticket& ticket, int timeout_ms) override;
  void DoPost(capnp::MallocMessageBuilder& request, ReplyHandler on_reply,
              std::string bulk) override;

 private:
  Ticket Enqueue(capnp::MallocMessageBuilder& request, std::string bulk, bool want_reply,
                 ReplyHandler on_reply);

  ConnectionId conn_;
  Welcome welcome_;
  uint64_t next_id_ = 2;  // 1 was the Hello
  std::deque<OutFrame> to_server_, to_client_;
  std::map<uint64_t, Ticket> pending_;              // requests that want their reply
  std::map<uint64_t, wire::Request::Which> kinds_;  // every request not answered yet
  int commits_unanswered_ = 0;
  RecallHandler recall_handler_;
  SendObserver on_send_;
  ReplyObserver on_reply_;
  std::function<bool()> pump_;
};

}  // namespace cohfs::sim
