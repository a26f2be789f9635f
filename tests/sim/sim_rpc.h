// SimRpc: one client's connection in the deterministic simulation. It is the
// client core's Rpc (client/rpc.h) with the real wire format: every request
// and reply is encoded into a frame and parsed back by the real codec, but the
// frames wait in two queues (to the server, to the client) that only the
// simulation's step loop moves, one frame per step, in the order its seed
// picks across connections (each connection stays FIFO, as TCP is).
// Single-threaded: everything runs on the simulation's thread.
//
// A connection can be cut (Cut) and a new one taken up (Resume), as
// client/rpc_client.cc's reconnect does it: frames on the wire are lost
// either way, every request not answered yet is kept (its frame as first
// encoded, repliedBelow included) and sent again, in id order, on the new
// connection after the hello (resuming the session) and, after a server
// restart, the reclaim, both of which the simulation exchanges at once.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "client/rpc.h"
#include "server/reactor.h"

namespace cohfs::sim {

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
  bool connected() const { return connected_; }
  // The wire breaks: what is on it in either direction is lost; requests
  // sent from now until Resume wait with the unanswered ones.
  void Cut();
  // A new connection whose hello was welcomed: every unanswered request
  // goes out again, oldest first. `restarted`: the server restarted (the
  // session reclaimed): replies that arrived before and are taken after
  // grant nothing (RpcReply::stale_grants), as RpcClient marks them.
  void Resume(ConnectionId conn, const Welcome& w, bool restarted);
  const Reclaimer& reclaimer() const { return reclaimer_; }
  // The simulation's side of the wire.
  bool HasToServer() const { return !to_server_.empty(); }
  std::shared_ptr<const OutFrame> TakeToServer();
  void PushToClient(OutFrame frame) { to_client_.push_back(std::move(frame)); }
  bool HasToClient() const { return !to_client_.empty(); }
  // The oldest frame from the server reaches the core: a recall goes to the
  // recall handler, a reply to its waiter or to its Post handler.
  void DeliverToClient();
  // Commits posted whose replies have not reached the core yet.
  int commits_unanswered() const { return commits_unanswered_; }
  bool idle() const {
    return connected_ && to_server_.empty() && to_client_.empty() && pending_.empty();
  }

  void SetRecallHandler(RecallHandler h) override { recall_handler_ = std::move(h); }
  void SetReclaimer(Reclaimer r) override { reclaimer_ = std::move(r); }
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
  bool connected_ = true;
  std::deque<std::shared_ptr<const OutFrame>> to_server_;
  std::deque<OutFrame> to_client_;
  // Every request not answered yet, as sent (RpcClient's unanswered_).
  std::map<uint64_t, std::shared_ptr<const OutFrame>> unanswered_;
  std::map<uint64_t, Ticket> pending_;              // requests that want their reply
  std::map<uint64_t, wire::Request::Which> kinds_;  // every request not answered yet
  int commits_unanswered_ = 0;
  uint64_t restarts_ = 0;
  RecallHandler recall_handler_;
  Reclaimer reclaimer_;
  SendObserver on_send_;
  ReplyObserver on_reply_;
  std::function<bool()> pump_;
};

}  // namespace cohfs::sim
