// Reactor: the listening socket and every client connection, all socket I/O on
// one io_uring (one thread). Complete frames go to a FrameSink; replies come
// back through PostReplies from any thread, which wakes the ring via an eventfd.
//
// A framing error (bad header, oversized length, malformed message) closes that
// one connection with a log line; the server goes on. So does a lease that ran
// out (server/leases.h): the reactor sees every byte a client sends, so it
// keeps the leases and closes silent connections, checked on the ring's timeout.
//
// Bounded peers: what a peer makes the server hold is bounded (PeerLimits),
// whatever it sends. A frame larger than a connection's fixed receive buffer
// reserves its whole size from one server-wide budget once its header is in
// (or waits, unread, until there is room); requests read and not answered,
// the replies expected for them and replies not yet sent are capped per
// connection and in all (past a cap its requests are not read until it, or
// another peer, reads replies); so are connections. A frame begun must be
// finished, and queued replies must make progress, within
// PeerLimits::timeout_ms of the reactor's reading (or sending), or the
// connection closes.
//
// Secure channel (protocol/secure_channel.h): with a key, every connection
// first completes the handshake, within PeerLimits::timeout_ms of its accept
// and in a fixed number of bytes; nothing it sends is parsed as a frame
// before that. Then ciphertext is received into the channel's fixed buffer
// (SecureChannel::kRecvBufferBytes per connection, beside the reader's) and
// opened into the FrameReader only as far as the reader has room, so the
// budgets above count plaintext exactly as without a channel.
#pragma once

#include <atomic>
#include <deque>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "io/ring.h"
#include "protocol/codec.h"
#include "protocol/frame.h"
#include "protocol/secure_channel.h"
#include "server/leases.h"
#include "server/server_metrics.h"

namespace cohfs {

// Receives what the reactor reads. Called on the reactor thread.
class FrameSink {
 public:
  virtual ~FrameSink() = default;
  virtual void OnRequest(ConnectionId conn, std::unique_ptr<DecodedRequest> request) = 0;
  // `lease_expired`: the reactor closed it because the client was silent past its lease.
  virtual void OnClosed(ConnectionId conn, bool lease_expired) = 0;
};

struct OutgoingReply {
  ConnectionId conn = 0;
  OutFrame frame;
  bool is_reply = true;  // false: a recall, which answers no request
};

struct PeerLimits {
  // Server-wide: bytes of half-received frames beyond each connection's fixed
  // buffer (FrameReader::kInitialBufferBytes). Room for three largest frames.
  size_t partial_frame_bytes = 32u << 20;
  // Per connection: frames of requests read and not answered, the replies
  // expected for them (ExpectedReplyBytes) and replies queued but unsent.
  size_t reply_bytes = 16u << 20;
  // The same, server-wide; past it only connections holding less than the
  // floor are read (so each can always send a release or a renew).
  size_t reply_bytes_total = 64u << 20;
  size_t reply_bytes_floor = 1u << 20;
  size_t connections = 1024;  // open at once; more are refused
  // A frame begun, or queued replies, must progress within this.
  uint32_t timeout_ms = 30000;
};

class Reactor {
 public:
  // Takes ownership of listen_fd. A connection silent for longer than
  // lease_ms is closed (and its session ends at once). With a key, every
  // connection must authenticate (null: --insecure, frames in clear).
  Reactor(std::unique_ptr<Ring> ring, int listen_fd, FrameSink& sink, uint32_t lease_ms,
          PeerLimits limits = {}, const ChannelKey* key = nullptr);
  ~Reactor();

  void Run();   // returns after Stop()
  void Stop();  // thread-safe
  // Thread-safe: queue replies for sending.
  void PostReplies(std::vector<OutgoingReply> replies);
  // Thread-safe: ask the reactor to close a connection.
  void PostClose(ConnectionId conn);
  // Thread-safe: the peer address ("1.2.3.4:5678") of an open connection ("" if gone).
  std::string PeerOf(ConnectionId conn) const;
  // Bytes each way and connections (null: not counted). Before Run().
  void set_metrics(ServerMetrics* metrics) { metrics_ = metrics; }

  // Limits per connection.
  static constexpr size_t kMaxInflightRequests = 256;

 private:
  struct Connection;
  void ArmAccept();
  void OnAccept(int res);
  bool ReadyToRead(Connection& c);
  void ArmRecv(Connection& c);
  void OnRecv(Connection& c, int res);
  // Each false once the connection is closing.
  bool TakeFrames(Connection& c);
  bool TakePlaintext(Connection& c);
  bool StepHandshake(Connection& c);
  bool CloseFor(Connection& c, const std::string& why);
  void ArmSend(Connection& c);
  void OnSend(Connection& c, int res);
  void ArmWake();
  void OnWake();
  void BeginClose(Connection& c, const std::string& why);
  void MaybeFinishClose(ConnectionId id);
  void CheckLeases();
  void NotePeer(const Connection& c);
  void CheckPeerTimeouts(int64_t now_ms);
  size_t ExtraRecvBytes(const Connection& c) const;
  bool ChargeRecvBuffer(Connection& c);
  void ReleaseRecvBuffer(Connection& c);
  void WakeBudgetWaiters();
  void WakeReplyWaiters();
  void QueueFrame(Connection& c, OutgoingReply r);
  void QueueWire(Connection& c, WireFrame w);

  std::unique_ptr<Ring> ring_;
  int listen_fd_;
  FrameSink& sink_;
  Leases leases_;
  PeerLimits limits_;
  std::unique_ptr<ChannelKey> key_;               // null: no secure channel
  size_t partial_frame_bytes_ = 0;                // charged against limits_.partial_frame_bytes
  std::deque<ConnectionId> budget_waiters_;       // not read until that has room for their frame
  size_t reply_bytes_ = 0;                        // charged against limits_.reply_bytes_total
  std::deque<ConnectionId> reply_waiters_;        // not read until reply_bytes_ is under it
  static constexpr int64_t kAcceptPauseMs = 100;  // after accept ran out of descriptors
  int64_t accept_resume_ms_ = 0;                  // 0: accepting (or stopping)
  Completion accept_done_;
  Completion wake_done_;
  EventFd wake_;
  uint64_t wake_value_ = 0;
  bool stopping_ = false;
  ConnectionId next_id_ = 1;
  std::unordered_map<ConnectionId, std::unique_ptr<Connection>> conns_;
  std::vector<std::unique_ptr<Connection>> closed_;  // freed at the next loop turn

  ServerMetrics* metrics_ = nullptr;
  mutable std::mutex peers_mu_;  // guards peers_ (rank: leaf); taken at accept, close, status
  std::unordered_map<ConnectionId, std::string> peers_;

  std::mutex mu_;  // guards the three fields below (rank: leaf)
  std::vector<OutgoingReply> outbox_;
  std::vector<ConnectionId> close_requests_;
  bool stop_requested_ = false;
};

}  // namespace cohfs
