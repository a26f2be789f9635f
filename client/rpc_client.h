// RpcClient: the client's one connection to the server.
//
// Connect() runs the Hello/Welcome handshake with blocking socket calls, so a
// bad address fails at once, before any thread exists (the mount may fork after
// it). Start() launches the network thread, which owns an io_uring and the
// socket; any thread may then Call(), which queues the frame, wakes the network
// thread through an eventfd and waits for the reply (or a deadline).
// Requests carry ids; many are in flight at once and replies match by id.
// The server may also send recalls; they go to the recall handler.
// Connecting and the handshake together take at most timeout_ms (ETIMEDOUT).
// The network thread keeps the session's lease (client/lease_keeper.h).
//
// A broken connection is mended (DESIGN §7, docs/failure.md): every request
// stays kept until its reply comes, so when the connection breaks (or the
// server is silent for a lease) the network thread reconnects with backoff,
// resumes the session (hello with its id and key), reclaims its locks if the
// server restarted (the Reclaimer), and sends again, in id order, every
// request without a reply; the server answers those it applied already from
// its stored replies. Callers see a delay, not an error (a hard mount). If
// the server no longer has the session (the client was away longer than its
// lease) every waiter and later call fails with EIO: what this client had not
// shipped is lost, and the mount must be made again.
//
// With a key, every connection (the first and each reconnect) begins with
// the secure channel's handshake (protocol/secure_channel.h); frames are
// sealed when they go to the network thread's send queue, so a request
// resent on a new connection is sealed again with that connection's keys.
#pragma once

#include <capnp/message.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
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
#include "protocol/secure_channel.h"

namespace cohfs {

class RpcClient : public Rpc {
 public:
  static Result<std::unique_ptr<RpcClient>> Connect(const std::string& host_port,
                                                    const std::string& client_name,
                                                    ClientStats& stats,
                                                    int timeout_ms = kConnectTimeoutMs,
                                                    const ChannelKey* key = nullptr);
  ~RpcClient() override;
  // One request on a connection of its own that opens no session (version
  // 7's serverStatus): connect, the secure handshake with `key` (null: in
  // clear), the request, its reply (an error reply as its Status).
  static Result<std::unique_ptr<DecodedReply>> ExchangeOnce(const std::string& host_port,
                                                            capnp::MallocMessageBuilder& request,
                                                            int timeout_ms, const ChannelKey* key);

  Status Start();

  // Send, then Wait.
  Result<RpcReply> Call(capnp::MallocMessageBuilder& request, std::string bulk = {});
  // Says goodbye (so the server ends the session at once instead of keeping
  // it a lease for a reconnect), then stops.
  void Shutdown();
  // Runs on the network thread at least every kHookIntervalMs (set before Start).
  void SetPeriodicHook(std::function<void()> hook) { periodic_hook_ = std::move(hook); }
  // Recalls arrive on the network thread (set before Start).
  void SetRecallHandler(RecallHandler h) override { recall_handler_ = std::move(h); }
  void SetReclaimer(Reclaimer r) override { reclaimer_ = std::move(r); }
  void GiveUpAfter(int64_t ms) override;
  Status AwaitLease() override;
  uint64_t last_request_id() override;
  uint64_t oldest_unanswered_id() override;
  const Welcome& welcome() const override { return welcome_; }
  bool connected() const { return connected_ && !broken_; }

  static constexpr int kConnectTimeoutMs = 30000;  // TCP connect and handshake
  static constexpr int kReconnectTimeoutMs = 5000;  // one reconnect attempt
  static constexpr int64_t kMaxBackoffMs = 2000;
  static constexpr int kGoodbyeWaitMs = 2000;
  static constexpr int kHookIntervalMs = 20;  // the log's ~100 ms ship deadline needs finer ticks

 protected:
  Ticket DoSend(capnp::MallocMessageBuilder& request, std::string bulk) override;
  Result<RpcReply> DoWait(const Ticket& ticket, int timeout_ms) override;
  // The reply, if wanted, goes to `on_reply` on the network thread.
  void DoPost(capnp::MallocMessageBuilder& request, ReplyHandler on_reply,
              std::string bulk) override;

 private:
  RpcClient(int fd, ClientStats& stats) : fd_(fd), stats_(stats) {}
  // A new connection's secure handshake (none without a key).
  Status SecureHandshake(int64_t deadline_ms);
  // Received bytes in, through the channel, to reader_.
  char* RecvTail(size_t* available);
  Status TakeReceived(size_t bytes);
  Result<InFrame> RecvFrame(int64_t deadline_ms);
  // Hello (resuming welcome_'s session when `resume`), Welcome.
  Result<Welcome> Handshake(int64_t deadline_ms, bool resume);
  // One request and its reply on the blocking socket (handshake time, id 0).
  Result<std::unique_ptr<DecodedReply>> Exchange(capnp::MallocMessageBuilder& m,
                                                 int64_t deadline_ms);
  Status Reclaim(int64_t deadline_ms);
  // Network thread: the connection broke; reconnect (or, stopping, fail all).
  void OnBroken(const Status& why);
  void MaybeReconnect();
  // Soft: fails every waiting call once the server is unreachable too long.
  void FailIfUnreachable();
  bool GivenUp() const;
  Status Reconnect();
  void SayGoodbye();
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
  std::string host_port_;
  std::string client_name_;
  Welcome welcome_;
  std::atomic<bool> broken_{false};     // for good: every call fails
  std::atomic<bool> connected_{true};   // false while the network thread reconnects
  std::atomic<int64_t> disconnected_ms_{0};  // when the connection broke (steady clock)
  std::atomic<int64_t> give_up_ms_{0};       // GiveUpAfter (0: a hard mount)
  std::atomic<int64_t> heard_ms_{0};         // the server was last heard from (steady clock)
  std::atomic<uint64_t> restarts_{0};        // reconnects that reclaimed (server restarts)
  Reclaimer reclaimer_;
  uint64_t next_id_ = 1;  // guarded by mu_ (ids in queue order)
  std::thread thread_;
  std::function<void()> periodic_hook_;
  RecallHandler recall_handler_;

  using SharedFrame = std::shared_ptr<const OutFrame>;
  // guards queue_, pending_, unanswered_, stop_, next_id_ (rank: below Pending::mu)
  std::mutex mu_;
  std::deque<SharedFrame> queue_;
  std::unordered_map<uint64_t, std::shared_ptr<Pending>> pending_;
  std::map<uint64_t, SharedFrame> unanswered_;  // every request without its reply yet
  bool stop_ = false;

  // Network thread only:
  std::unique_ptr<Ring> ring_;
  EventFd wake_;
  uint64_t wake_value_ = 0;
  Completion recv_done_, send_done_, wake_done_;
  FrameReader reader_;
  std::unique_ptr<ChannelKey> key_;         // null: frames in clear
  std::unique_ptr<SecureChannel> channel_;  // this connection's (with a key)
  std::deque<WireFrame> sending_;
  int64_t next_attempt_ms_ = 0;  // while disconnected
  int64_t backoff_ms_ = 0;
  size_t front_sent_ = 0;
  bool send_inflight_ = false;
  bool recv_inflight_ = false;
  std::vector<iovec> iov_;
  msghdr msg_{};
  std::unique_ptr<LeaseKeeper> lease_;
};

}  // namespace cohfs
