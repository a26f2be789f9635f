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
#include "client/stats.h"
#include "common/status.h"
#include "io/ring.h"
#include "protocol/codec.h"

namespace cohfs {

struct Welcome {
  uint32_t version = 0;
  uint64_t session_id = 0;
  uint32_t lease_ms = 0;
  InodeId root;
  uint64_t inodes_first = 0;
  uint64_t inodes_count = 0;
  uint64_t server_generation = 0;  // the generation of inodes created now
};

// A reply whose errno was 0; owns the decoded message and its bulk payload.
class RpcReply {
 public:
  explicit RpcReply(std::unique_ptr<DecodedReply> m) : m_(std::move(m)) {}
  wire::Reply::Reader root() const { return m_->root(); }
  std::string& bulk() { return m_->frame().bulk; }
  // The sender's writeback sequence when the request left (WritebackLog).
  uint64_t log_seq() const { return log_seq_; }
  void set_log_seq(uint64_t seq) { log_seq_ = seq; }
  // Request ids follow send order: a reply to request N was produced before
  // the server saw anything this client sent after N.
  uint64_t request_id() const { return m_->frame().header.request_id.value; }

 private:
  std::unique_ptr<DecodedReply> m_;
  uint64_t log_seq_ = 0;
};

class RpcClient {
 public:
  static Result<std::unique_ptr<RpcClient>> Connect(const std::string& host_port,
                                                    const std::string& client_name,
                                                    ClientStats& stats,
                                                    int timeout_ms = kConnectTimeoutMs);
  ~RpcClient();

  Status Start();
  struct Pending;
  using Ticket = std::shared_ptr<Pending>;
  using ReplyHandler = std::function<void(Result<RpcReply>)>;

  // Sends a request (caller already set in the message) and waits for the
  // reply. A reply carrying an errno comes back as that Status.
  Result<RpcReply> Call(capnp::MallocMessageBuilder& request, std::string bulk = {});
  // Call in two steps, for a caller that must order the send under its own lock.
  Ticket Send(capnp::MallocMessageBuilder& request, std::string bulk = {});
  // Waits at most timeout_ms (-1: as long as it takes, for a blocking file lock).
  Result<RpcReply> Wait(const Ticket& ticket, int timeout_ms = kCallTimeoutMs);
  // Sends without waiting. The reply, if wanted, goes to `on_reply` on the
  // network thread (which must not block or Call from it).
  void Post(capnp::MallocMessageBuilder& request, ReplyHandler on_reply = {},
            std::string bulk = {});
  void Shutdown();
  // Runs on the network thread at least every kHookIntervalMs (set before Start).
  void SetPeriodicHook(std::function<void()> hook) { periodic_hook_ = std::move(hook); }
  // Takes the server's recalls, on the network thread (must not block; set before Start).
  using RecallHandler = std::function<void(InodeId ino, LockMode keep)>;
  void SetRecallHandler(RecallHandler h) { recall_handler_ = std::move(h); }
  // The id of the newest request handed to the connection (0: none yet).
  uint64_t last_request_id();
  // The id of the oldest request still waiting for its reply (else the next id).
  uint64_t oldest_unanswered_id();

  const Welcome& welcome() const { return welcome_; }
  bool connected() const { return !broken_; }

  static constexpr int kCallTimeoutMs = 120000;
  static constexpr int kConnectTimeoutMs = 30000;  // TCP connect and handshake
  static constexpr int kHookIntervalMs = 20;  // the log's ~100 ms ship deadline needs finer ticks

  struct Pending {
    std::mutex mu;  // guards done, result (rank: leaf)
    std::condition_variable cv;
    bool done = false;
    Status error;
    std::unique_ptr<DecodedReply> reply;
    ReplyHandler on_reply;  // set: the reply goes here instead of to a waiter
  };

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
