#include "server/reactor.h"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

#include "common/limits.h"
#include "common/log.h"

namespace cohfs {

struct Reactor::Connection {
  ConnectionId id = 0;
  int fd = -1;
  FrameReader reader;
  Completion recv_done;
  Completion send_done;
  bool recv_inflight = false;
  bool send_inflight = false;
  bool closing = false;
  bool lease_expired = false;    // closed because the client was silent past its lease
  size_t inflight_requests = 0;  // handed to the sink, reply not yet queued
  // Charged for each request in flight: its frame and its expected reply
  // (by request id; a peer may repeat ids).
  std::unordered_multimap<uint64_t, size_t> inflight_charges;
  size_t inflight_bytes = 0;         // sum of inflight_charges
  size_t unsent_bytes = 0;           // of the frames in outq
  size_t recv_charged = 0;           // reader capacity beyond its fixed buffer (a budget's bytes)
  bool waiting_for_budget = false;   // in budget_waiters_
  bool waiting_for_replies = false;  // in reply_waiters_
  int64_t frame_since_ms = 0;        // a frame begun: since when it is read (0: none begun)
  int64_t send_since_ms = 0;         // replies queued: their last progress (0: none queued)
  std::unique_ptr<SecureChannel> channel;  // null: frames in clear (--insecure)
  int64_t accepted_ms = 0;                 // the handshake must end within the timeout of it
  std::deque<WireFrame> outq;
  size_t front_sent = 0;  // bytes of outq.front() already sent
  size_t frames_in_send = 0;
  std::vector<iovec> iov;
  msghdr msg{};
};

Reactor::Reactor(std::unique_ptr<Ring> ring, int listen_fd, FrameSink& sink, uint32_t lease_ms,
                 PeerLimits limits, const ChannelKey* key)
    : ring_(std::move(ring)),
      listen_fd_(listen_fd),
      sink_(sink),
      leases_(lease_ms),
      limits_(limits),
      key_(key ? std::make_unique<ChannelKey>(*key) : nullptr) {
  CHECK_MSG(limits_.partial_frame_bytes >= kFrameHeaderBytes + kMaxMessageBytes + kMaxBulkBytes,
            "the half-received frame budget must hold the largest frame");
  accept_done_.on_complete = [this](int res, uint32_t) { OnAccept(res); };
  wake_done_.on_complete = [this](int res, uint32_t) { OnWake(); };
}

Reactor::~Reactor() {
  for (auto& [id, c] : conns_) close(c->fd);
  close(listen_fd_);
}

void Reactor::Run() {
  ArmAccept();
  ArmWake();
  while (!stopping_ || !conns_.empty()) {
    int64_t interval_ms =
        std::min<int64_t>(leases_.check_interval_ms(), limits_.timeout_ms / 4 + 1);
    if (accept_resume_ms_ != 0) interval_ms = std::min<int64_t>(interval_ms, kAcceptPauseMs);
    Status st = ring_->RunOnce(static_cast<int>(interval_ms));
    CHECK_MSG(st.ok(), st.ToString().c_str());
    if (accept_resume_ms_ != 0 && !stopping_ && SteadyNowMs() >= accept_resume_ms_) {
      accept_resume_ms_ = 0;
      ArmAccept();
    }
    CheckLeases();
    if (!stopping_) CheckPeerTimeouts(SteadyNowMs());
    closed_.clear();
  }
}

// After the turn's completions: what arrived while this thread was busy (or
// the whole server stopped) has renewed its lease before anyone is judged.
void Reactor::CheckLeases() {
  if (stopping_) return;
  int64_t now_ms = SteadyNowMs();
  for (auto& [id, c] : conns_) {
    // A connection this reactor stopped reading (in-flight limit) is waiting
    // for the server, not silent: its bytes sit unread in the socket.
    if (!c->recv_inflight && !c->closing) leases_.Renew(id, now_ms);
  }
  for (const Leases::Expiry& e : leases_.TakeExpired(now_ms)) {
    auto it = conns_.find(e.conn);
    if (it == conns_.end()) continue;
    LOG(Warn) << "connection " << e.conn << ": lease expired (nothing heard for " << e.silent_ms
              << " ms, lease " << leases_.lease_ms() << " ms): declaring its client dead";
    it->second->lease_expired = true;
    BeginClose(*it->second, "lease expired");
    MaybeFinishClose(e.conn);
  }
}

// Bytes the frame being received needs beyond the reader's buffer as it is.
size_t Reactor::ExtraRecvBytes(const Connection& c) const {
  size_t have = std::max(c.reader.capacity_bytes(), FrameReader::kInitialBufferBytes);
  size_t need = c.reader.NeededCapacity();
  return need > have ? need - have : 0;
}

// A frame larger than the fixed buffer gets all of its room at once (so a
// frame begun can always be finished) or, with no room in the budget, waits
// unread in the socket.
bool Reactor::ChargeRecvBuffer(Connection& c) {
  size_t extra = ExtraRecvBytes(c);
  if (extra == 0) return true;
  if (partial_frame_bytes_ + extra > limits_.partial_frame_bytes) {
    if (!c.waiting_for_budget) {
      LOG(Debug) << "connection " << c.id << ": waiting for room for a " << extra << "-byte frame";
      c.waiting_for_budget = true;
      budget_waiters_.push_back(c.id);
    }
    return false;
  }
  partial_frame_bytes_ += extra;
  c.recv_charged += extra;
  c.reader.Resize(c.reader.NeededCapacity());
  CHECK(c.reader.capacity_bytes() == FrameReader::kInitialBufferBytes + c.recv_charged);
  return true;
}

// Once a large frame is out, its room goes back to the budget.
void Reactor::ReleaseRecvBuffer(Connection& c) {
  if (c.recv_charged == 0 || c.reader.NeededCapacity() >= c.reader.capacity_bytes()) return;
  c.reader.Resize(c.reader.NeededCapacity());
  size_t charged = c.reader.capacity_bytes() - FrameReader::kInitialBufferBytes;
  CHECK(charged <= c.recv_charged);
  partial_frame_bytes_ -= c.recv_charged - charged;
  c.recv_charged = charged;
  WakeBudgetWaiters();
}

// Every waiter whose frame fits now, in arrival order; the others wait on.
void Reactor::WakeBudgetWaiters() {
  std::deque<ConnectionId> waiting;
  waiting.swap(budget_waiters_);
  for (ConnectionId id : waiting) {
    auto it = conns_.find(id);
    if (it == conns_.end() || !it->second->waiting_for_budget) continue;
    Connection& c = *it->second;
    if (partial_frame_bytes_ + ExtraRecvBytes(c) > limits_.partial_frame_bytes) {
      budget_waiters_.push_back(id);
      continue;
    }
    c.waiting_for_budget = false;
    c.frame_since_ms = c.frame_since_ms ? SteadyNowMs() : 0;  // its clock starts now
    ArmRecv(c);
  }
}

// Connections paused while all connections' replies were over their total,
// once they are not.
void Reactor::WakeReplyWaiters() {
  if (reply_waiters_.empty() || reply_bytes_ >= limits_.reply_bytes_total) return;
  std::deque<ConnectionId> waiting;
  waiting.swap(reply_waiters_);
  for (ConnectionId id : waiting) {
    auto it = conns_.find(id);
    if (it == conns_.end() || !it->second->waiting_for_replies) continue;
    it->second->waiting_for_replies = false;
    ArmRecv(*it->second);  // queues itself again if the total is over once more
  }
}

// A peer that begun a frame and does not finish it, or does not read its
// replies, within the timeout is closed. Time the reactor was not reading
// from it (limits, budget) does not count.
void Reactor::CheckPeerTimeouts(int64_t now_ms) {
  std::vector<std::pair<ConnectionId, std::string>> late;
  for (auto& [id, c] : conns_) {
    if (c->closing) continue;
    if (c->frame_since_ms != 0 && !c->recv_inflight) c->frame_since_ms = now_ms;
    if (c->channel && !c->channel->established() && now_ms - c->accepted_ms > limits_.timeout_ms) {
      late.emplace_back(id, "did not complete the secure handshake within " +
                                std::to_string(limits_.timeout_ms) + " ms");
    } else if (c->frame_since_ms != 0 && now_ms - c->frame_since_ms > limits_.timeout_ms) {
      late.emplace_back(id, "did not finish a frame (" +
                                std::to_string(c->reader.buffered_bytes()) + " bytes in) within " +
                                std::to_string(limits_.timeout_ms) + " ms");
    } else if (c->send_since_ms != 0 && now_ms - c->send_since_ms > limits_.timeout_ms) {
      late.emplace_back(id, "does not read its replies (" + std::to_string(c->unsent_bytes) +
                                " bytes unsent for " + std::to_string(limits_.timeout_ms) + " ms)");
    }
  }
  for (auto& [id, why] : late) {
    LOG(Warn) << "connection " << id << ": " << why;
    BeginClose(*conns_.at(id), why);
    MaybeFinishClose(id);
  }
}

void Reactor::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_requested_ = true;
  }
  wake_.Signal();
}

void Reactor::PostReplies(std::vector<OutgoingReply> replies) {
  {
    std::lock_guard<std::mutex> l(mu_);
    for (auto& r : replies) outbox_.push_back(std::move(r));
  }
  wake_.Signal();
}

void Reactor::PostClose(ConnectionId conn) {
  {
    std::lock_guard<std::mutex> l(mu_);
    close_requests_.push_back(conn);
  }
  wake_.Signal();
}

std::string Reactor::PeerOf(ConnectionId conn) const {
  std::lock_guard<std::mutex> l(peers_mu_);
  auto it = peers_.find(conn);
  return it == peers_.end() ? "" : it->second;
}

// For `cohfs status`: who is on the other end, as numbers.
void Reactor::NotePeer(const Connection& c) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  char host[NI_MAXHOST] = "?", port[NI_MAXSERV] = "?";
  if (getpeername(c.fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
    getnameinfo(reinterpret_cast<sockaddr*>(&ss), len, host, sizeof(host), port, sizeof(port),
                NI_NUMERICHOST | NI_NUMERICSERV);
  }
  std::string peer = ss.ss_family == AF_INET6 ? std::string("[") + host + "]:" + port
                                              : std::string(host) + ":" + port;
  {
    std::lock_guard<std::mutex> l(peers_mu_);
    peers_[c.id] = std::move(peer);
  }
  if (metrics_) metrics_->connections.Set(static_cast<int64_t>(conns_.size()));
}

void Reactor::ArmAccept() { ring_->Accept(listen_fd_, &accept_done_); }

void Reactor::OnAccept(int res) {
  if (stopping_) {
    if (res >= 0) close(res);
    return;
  }
  if (res == -EMFILE || res == -ENFILE || res == -ENOBUFS || res == -ENOMEM) {
    // Out of descriptors or memory: accepting again at once would spin.
    LOG(Warn) << "accept: " << strerror(-res) << "; accepting again in " << kAcceptPauseMs << " ms";
    accept_resume_ms_ = SteadyNowMs() + kAcceptPauseMs;
    return;
  }
  if (res < 0) {
    LOG(Warn) << "accept: " << strerror(-res);
  } else if (conns_.size() >= limits_.connections) {
    LOG(Warn) << "refusing a connection: " << conns_.size() << " open, the most allowed";
    close(res);
  } else {
    auto c = std::make_unique<Connection>();
    c->id = next_id_++;
    c->fd = res;
    c->accepted_ms = SteadyNowMs();
    if (key_) c->channel = std::make_unique<SecureChannel>(SecureChannel::Role::kServer, *key_);
    (void)SetNoDelay(c->fd);
    Connection* raw = c.get();
    raw->recv_done.on_complete = [this, raw](int r, uint32_t) { OnRecv(*raw, r); };
    raw->send_done.on_complete = [this, raw](int r, uint32_t) { OnSend(*raw, r); };
    conns_[raw->id] = std::move(c);
    leases_.Renew(raw->id, SteadyNowMs());
    NotePeer(*raw);
    LOG(Info) << "connection " << raw->id << " accepted";
    ArmRecv(*raw);
  }
  ArmAccept();
}

bool Reactor::ReadyToRead(Connection& c) {
  if (c.closing || c.recv_inflight || c.waiting_for_budget || c.waiting_for_replies) return false;
  if (c.inflight_requests >= kMaxInflightRequests) return false;
  // Backpressure: a peer that does not read its replies is not read either.
  size_t mine = c.inflight_bytes + c.unsent_bytes;
  if (mine >= limits_.reply_bytes) return false;
  if (mine >= limits_.reply_bytes_floor && reply_bytes_ >= limits_.reply_bytes_total) {
    c.waiting_for_replies = true;
    reply_waiters_.push_back(c.id);
    return false;
  }
  return ChargeRecvBuffer(c);
}

// Plaintext the channel holds goes to the reader before the socket is read.
void Reactor::ArmRecv(Connection& c) {
  while (ReadyToRead(c)) {
    if (c.channel && c.channel->has_plaintext()) {
      if (!TakePlaintext(c)) return;
      continue;
    }
    size_t avail = 0;
    char* tail = c.channel ? c.channel->RecvTail(&avail) : c.reader.BoundedTail(&avail);
    CHECK(avail > 0);
    c.recv_inflight = true;
    ring_->Recv(c.fd, tail, avail, &c.recv_done);
    return;
  }
}

void Reactor::OnRecv(Connection& c, int res) {
  c.recv_inflight = false;
  if (c.closing) return MaybeFinishClose(c.id);
  if (res <= 0) {
    CloseFor(c, res == 0 ? "peer closed" : std::string("recv: ") + strerror(-res));
    return;
  }
  leases_.Renew(c.id, SteadyNowMs());  // any bytes: a long frame renews it while it arrives
  if (metrics_) metrics_->received_bytes.Add(static_cast<uint64_t>(res));
  if (!c.channel) {
    c.reader.CommitReceived(static_cast<size_t>(res));
    if (!TakeFrames(c)) return;
  } else {
    c.channel->CommitReceived(static_cast<size_t>(res));
    if (!c.channel->established() && !StepHandshake(c)) return;
    if (c.channel->buffered_bytes() > 0 && c.frame_since_ms == 0) c.frame_since_ms = SteadyNowMs();
  }
  ArmRecv(c);
}

bool Reactor::CloseFor(Connection& c, const std::string& why) {
  BeginClose(c, why);
  MaybeFinishClose(c.id);
  return false;
}

// The reader's room is charged (ReadyToRead), so BoundedTail is not empty.
bool Reactor::TakePlaintext(Connection& c) {
  size_t avail = 0;
  char* tail = c.reader.BoundedTail(&avail);
  auto moved = c.channel->Open(tail, avail);
  if (!moved.ok()) return CloseFor(c, "secure channel: " + moved.status().ToString());
  c.reader.CommitReceived(*moved);
  return TakeFrames(c);
}

// A peer gets nothing but the server's hello before it proves it holds the key.
bool Reactor::StepHandshake(Connection& c) {
  std::string reply;
  Status st = c.channel->Handshake(&reply);
  if (!st.ok()) return CloseFor(c, "secure handshake: " + st.ToString());
  if (!reply.empty()) QueueWire(c, WireFrame{nullptr, std::move(reply)});
  if (c.channel->established()) {
    LOG(Info) << "connection " << c.id << " authenticated";
    c.frame_since_ms = 0;
  }
  return !c.closing;
}

// Hands every complete frame to the sink.
bool Reactor::TakeFrames(Connection& c) {
  while (true) {
    auto next = c.reader.Next();
    if (!next.ok()) return CloseFor(c, "bad frame: " + next.status().ToString());
    if (!next->has_value()) break;
    c.frame_since_ms = 0;
    InFrame frame = std::move(**next);
    size_t frame_bytes = kFrameHeaderBytes + frame.header.message_bytes + frame.header.bulk_bytes;
    if (frame.header.kind != FrameKind::kRequest) {
      return CloseFor(c, "unexpected frame kind from a client");
    }
    auto decoded = DecodedRequest::Decode(std::move(frame));
    if (!decoded.ok()) return CloseFor(c, "bad message: " + decoded.status().ToString());
    size_t charge = frame_bytes + ExpectedReplyBytes(**decoded);
    c.inflight_charges.emplace((*decoded)->frame().header.request_id.value, charge);
    c.inflight_bytes += charge;
    reply_bytes_ += charge;
    c.inflight_requests++;
    sink_.OnRequest(c.id, std::move(decoded).value());
  }
  size_t pending = c.reader.buffered_bytes() + (c.channel ? c.channel->buffered_bytes() : 0);
  if (pending > 0 && c.frame_since_ms == 0) c.frame_since_ms = SteadyNowMs();
  ReleaseRecvBuffer(c);
  return true;
}

void Reactor::ArmSend(Connection& c) {
  if (c.closing || c.send_inflight || c.outq.empty()) return;
  c.iov.clear();
  c.frames_in_send = 0;
  size_t skip = c.front_sent;
  for (auto& f : c.outq) {
    if (c.iov.size() + 3 > IOV_MAX / 4) break;
    f.AppendIovecs(skip, &c.iov);
    skip = 0;
    c.frames_in_send++;
  }
  c.msg = msghdr{};
  c.msg.msg_iov = c.iov.data();
  c.msg.msg_iovlen = c.iov.size();
  c.send_inflight = true;
  ring_->SendMsg(c.fd, &c.msg, &c.send_done);
}

void Reactor::OnSend(Connection& c, int res) {
  c.send_inflight = false;
  if (c.closing) return MaybeFinishClose(c.id);
  if (res < 0) {
    BeginClose(c, std::string("send: ") + strerror(-res));
    return MaybeFinishClose(c.id);
  }
  if (metrics_) metrics_->sent_bytes.Add(static_cast<uint64_t>(res));
  // Retire fully sent frames; a short send resumes inside the front frame.
  size_t sent = static_cast<size_t>(res) + c.front_sent;
  while (!c.outq.empty() && sent >= c.outq.front().total_bytes()) {
    sent -= c.outq.front().total_bytes();
    c.unsent_bytes -= c.outq.front().total_bytes();
    reply_bytes_ -= c.outq.front().total_bytes();
    c.outq.pop_front();
  }
  c.front_sent = sent;
  c.send_since_ms = c.outq.empty() ? 0 : SteadyNowMs();
  ArmSend(c);
  ArmRecv(c);  // may have been paused for its unsent replies
  WakeReplyWaiters();
}

void Reactor::ArmWake() {
  ring_->Read(wake_.fd(), &wake_value_, sizeof(wake_value_), 0, &wake_done_);
}

void Reactor::OnWake() {
  std::vector<OutgoingReply> replies;
  std::vector<ConnectionId> closes;
  bool stop;
  {
    std::lock_guard<std::mutex> l(mu_);
    replies.swap(outbox_);
    closes.swap(close_requests_);
    stop = stop_requested_;
  }
  for (auto& r : replies) {
    auto it = conns_.find(r.conn);
    if (it == conns_.end()) continue;  // connection already gone: drop the reply
    QueueFrame(*it->second, std::move(r));
  }
  for (ConnectionId id : closes) {
    auto it = conns_.find(id);
    if (it == conns_.end()) continue;
    BeginClose(*it->second, "closed by server");
    MaybeFinishClose(id);
  }
  if (stop && !stopping_) {
    stopping_ = true;
    ring_->Cancel(&accept_done_);
    std::vector<ConnectionId> ids;
    for (auto& [id, c] : conns_) ids.push_back(id);
    for (ConnectionId id : ids) {
      BeginClose(*conns_[id], "server shutting down");
      MaybeFinishClose(id);
    }
  }
  ArmWake();
}

void Reactor::QueueFrame(Connection& c, OutgoingReply r) {
  if (r.is_reply) {
    CHECK(c.inflight_requests > 0);
    c.inflight_requests--;
    auto charge = c.inflight_charges.find(r.frame.request_id().value);
    if (charge != c.inflight_charges.end()) {
      c.inflight_bytes -= charge->second;
      reply_bytes_ -= charge->second;
      c.inflight_charges.erase(charge);
    }
  }
  QueueWire(c, ToWire(c.channel.get(), std::make_shared<const OutFrame>(std::move(r.frame))));
  ArmRecv(c);  // may have been paused at the in-flight limit
}

void Reactor::QueueWire(Connection& c, WireFrame w) {
  if (c.outq.empty()) c.send_since_ms = SteadyNowMs();
  c.unsent_bytes += w.total_bytes();
  reply_bytes_ += w.total_bytes();
  c.outq.push_back(std::move(w));
  ArmSend(c);
}

void Reactor::BeginClose(Connection& c, const std::string& why) {
  if (c.closing) return;
  c.closing = true;
  LOG(Info) << "connection " << c.id << " closing: " << why;
  // Completes any pending recv/send with an error so the connection can go.
  shutdown(c.fd, SHUT_RDWR);
}

void Reactor::MaybeFinishClose(ConnectionId id) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  Connection& c = *it->second;
  if (!c.closing || c.recv_inflight || c.send_inflight) return;
  close(c.fd);
  partial_frame_bytes_ -= c.recv_charged;
  c.recv_charged = 0;
  CHECK(reply_bytes_ >= c.inflight_bytes + c.unsent_bytes);
  reply_bytes_ -= c.inflight_bytes + c.unsent_bytes;
  // Destroyed after this completion returns: its callback is still running.
  closed_.push_back(std::move(it->second));
  conns_.erase(it);
  leases_.Forget(id);
  {
    std::lock_guard<std::mutex> l(peers_mu_);
    peers_.erase(id);
  }
  if (metrics_) metrics_->connections.Set(static_cast<int64_t>(conns_.size()));
  sink_.OnClosed(id, c.lease_expired);
  WakeBudgetWaiters();
  WakeReplyWaiters();
}

}  // namespace cohfs
