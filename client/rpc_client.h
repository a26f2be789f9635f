// RpcClient: the client's one connection to the server.
//
// Connect() runs the Hello/Welcome handshake with blocking socket calls, so a
// bad address fails at once, before any thread exists (the mount may fork after
// it). Start() launches the network thread, which owns an io_uring and the
// socket; any thread may then Call(), which queues the frame, wakes the network
// thread through an eventfd and waits for the reply (or a deadline).
// Requests carry ids; many are in flight at once and replies match by id.
// When the connection breaks every waiter and every later call gets ENOTCONN.
// The server may also send recalls; they go to the recall handler.
// Connecting and the handshake together take at most timeout_ms (ETIMEDOUT).
// The network thread keeps the session's lease (client/lease_keeper.h).
#pragma once

#include <capnp/message.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

#include "client/lease_keeper.h"
#include "client/rpc.h"
#include "client/stats.h"
#include "common/status.h"
#include "io/ring.h"
#include "protocol/codec.h"

namespace cohfs {

class RpcClient : public Rpc {
 public:
  static Result<std::unique_ptr<RpcClient>> Connect(const std::string& host_port,
                                                    const std::string& client_name,
                                                    ClientStats& stats,
                                                    int timeout_ms = kConnectTimeoutMs);
  ~RpcClient() override;

  Status Start();

  // Send, then Wait.
  Result<RpcReply> Call(capnp::MallocMessageBuilder& request, std::string bulk = {});
  void Shutdown();
  // Runs on the network thread at least every kHookIntervalMs (set before Start).
  void SetPeriodicHook(std::function<void()> hook) { periodic_hook_ = std::move(hook); }
  // Recalls arrive on the network thread (set before Start).
  void SetRecallHandler(RecallHandler h) override { recall_handler_ = std::move(h); }
  uint64_t last_request_id() override;
  uint64_t oldest_unanswered_id() override;
  const Welcome& welcome() const override { return welcome_; }
  bool connected() const { return !broken_; }

  static constexpr int kConnectTimeoutMs = 30000;  // TCP connect and handshake
  static constexpr int kHookIntervalMs = 20;  // the log's ~100 ms ship deadline needs finer ticks

 protected:
  Ticket DoSend(capnp::MallocMessageBuilder& request, std::string bulk) override;
  Result<RpcReply> DoWait(const Ticket& ticket, int timeout_ms) override;
  // The reply, if wanted, goes to `on_reply` on the network thread.
  void DoPost(capnp::MallocMessageBuilder& request, ReplyHandler on_reply,
              std::string bulk) override;

 private:
  RpcClient(int fd, ClientStats& stats) : fd_(fd), stats_(stats) {}
  Status Handshake(const std::string& client_name, int64_t deadline_ms);
  Ticket Enqueue(capnp::MallocMessageBuilder& request, std::string bulk, bool want_reply,
                 ReplyHandler on_reply = {});
  void Deliver(const Ticket& p, Result<std::unique_ptr<DecodedReply>> reply);
  void NetLoop();
  void ArmRecv();
  void OnRecv(int res);
  void ArmSend();
  void OnSend(int res);
  void ArmWake();
  void OnWake();
  void FailAll(const Status& why);
  void OnRecall(InFrame frame);
  void KeepLease();

  int fd_;
  ClientStats& stats_;
  Welcome welcome_;
  std::atomic<bool> broken_{false};
  uint64_t next_id_ = 1;  // guarded by mu_ (ids in queue order)
  std::thread thread_;
  std::function<void()> periodic_hook_;
  RecallHandler recall_handler_;

  std::mutex mu_;  // guards queue_, pending_, stop_, next_id_ (rank: below Pending::mu)
  std::deque<OutFrame> queue_;
  std::unordered_map<uint64_t, std::shared_ptr<Pending>> pending_;
  bool stop_ = false;

  // Network thread only:
  std::unique_ptr<Ring> ring_;
  EventFd wake_;
  uint64_t wake_value_ = 0;
  Completion recv_done_, send_done_, wake_done_;
  FrameReader reader_;
  std::deque<OutFrame> sending_;
  size_t front_sent_ = 0;
  bool send_inflight_ = false;
  bool recv_inflight_ = false;
  std::vector<iovec> iov_;
  msghdr msg_{};
  std::unique_ptr<LeaseKeeper> lease_;
};

}  // namespace cohfs
