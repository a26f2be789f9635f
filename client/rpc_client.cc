#include "client/rpc_client.h"

#include <sys/socket.h>
#include <unistd.h>

#include <chrono>

#include "common/log.h"

namespace cohfs {

RpcClient::~RpcClient() {
  Shutdown();
  if (fd_ >= 0) close(fd_);
}

Status RpcClient::Start() {
  ASSIGN_OR_RETURN(ring_, Ring::Create(256));
  heard_ms_ = SteadyNowMs();  // the handshake
  lease_ = std::make_unique<LeaseKeeper>(welcome_.lease_ms, heard_ms_);
  recv_done_.on_complete = [this](int res, uint32_t) { OnRecv(res); };
  send_done_.on_complete = [this](int res, uint32_t) { OnSend(res); };
  wake_done_.on_complete = [this](int, uint32_t) { OnWake(); };
  thread_ = std::thread([this] { NetLoop(); });
  return Status::Ok();
}

void RpcClient::SayGoodbye() {
  if (!thread_.joinable() || !connected()) return;
  capnp::MallocMessageBuilder m;
  m.initRoot<wire::Request>().setGoodbye();
  auto reply = Wait(Send(m), kGoodbyeWaitMs);
  if (!reply.ok()) LOG(Info) << "goodbye to the server: " << reply.status().ToString();
}

void RpcClient::Shutdown() {
  SayGoodbye();
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stop_) return;
    stop_ = true;
  }
  if (thread_.joinable()) {
    if (fd_ >= 0) shutdown(fd_, SHUT_RDWR);
    wake_.Signal();
    thread_.join();
  }
  FailAll(Status::Error(ENOTCONN, "client shutting down"));
}

RpcClient::Ticket RpcClient::Enqueue(capnp::MallocMessageBuilder& request, std::string bulk,
                                     bool want_reply, ReplyHandler on_reply) {
  auto which = request.getRoot<wire::Request>().which();
  if (static_cast<size_t>(which) < kMaxRequestKinds) stats_.rpcs[which]++;
  auto p = want_reply ? std::make_shared<Pending>() : nullptr;
  if (p) p->on_reply = std::move(on_reply);
  {
    std::unique_lock<std::mutex> l(mu_);
    if (broken_ || stop_) {
      l.unlock();
      if (p) Deliver(p, Status::Error(ENOTCONN, "not connected to the server"));
      return p;
    }
    if (GivenUp()) {
      l.unlock();
      if (p) Deliver(p, Status::Error(EIO, "the server is unreachable (soft mount)"));
      return p;
    }
    RequestId id(next_id_++);  // under mu_: ids follow the queue's order
    uint64_t below = unanswered_.empty() ? id.value : unanswered_.begin()->first;
    request.getRoot<wire::Request>().setRepliedBelow(below);
    auto frame = std::make_shared<const OutFrame>(
        EncodeFrame(FrameKind::kRequest, id, request, std::move(bulk)));
    stats_.bytes_sent += frame->total_bytes();
    if (p) pending_[id.value] = p;
    unanswered_[id.value] = frame;
    queue_.push_back(std::move(frame));
  }
  wake_.Signal();
  return p;
}

Result<RpcReply> RpcClient::Call(capnp::MallocMessageBuilder& request, std::string bulk) {
  return Wait(Send(request, std::move(bulk)));
}

RpcClient::Ticket RpcClient::DoSend(capnp::MallocMessageBuilder& request, std::string bulk) {
  return Enqueue(request, std::move(bulk), true);
}

Result<RpcReply> RpcClient::DoWait(const Ticket& p, int timeout_ms) {
  stats_.round_trips++;
  std::unique_lock<std::mutex> l(p->mu);
  if (timeout_ms < 0) {
    p->cv.wait(l, [&] { return p->done; });
  } else {
    // A hard mount: while the connection is being mended the call waits on.
    while (!p->cv.wait_for(l, std::chrono::milliseconds(timeout_ms), [&] { return p->done; })) {
      if (connected() || broken_ || timeout_ms < kCallTimeoutMs) {
        stats_.rpc_errors++;
        return Status::Error(EIO, "server did not answer in time");
      }
    }
  }
  if (!p->error.ok()) {
    stats_.rpc_errors++;
    return p->error;
  }
  Status st = GuardDecode([&] { return ReplyStatus(p->reply->root()); });
  if (!st.ok()) return st;
  RpcReply reply(std::move(p->reply));
  if (p->restarts != restarts_) reply.set_stale_grants();
  return reply;
}

void RpcClient::DoPost(capnp::MallocMessageBuilder& request, ReplyHandler on_reply,
                       std::string bulk) {
  bool want_reply = static_cast<bool>(on_reply);
  Enqueue(request, std::move(bulk), want_reply, std::move(on_reply));
}

// Hands a reply (or the failure to get one) to its waiter or handler.
void RpcClient::Deliver(const Ticket& p, Result<std::unique_ptr<DecodedReply>> reply) {
  if (p->on_reply) {
    if (!reply.ok()) return p->on_reply(reply.status());
    Status st = GuardDecode([&] { return ReplyStatus((*reply)->root()); });
    if (!st.ok()) return p->on_reply(st);
    return p->on_reply(RpcReply(std::move(reply).value()));
  }
  std::lock_guard<std::mutex> l(p->mu);
  p->restarts = restarts_;
  if (reply.ok()) {
    p->reply = std::move(reply).value();
  } else {
    p->error = reply.status();
  }
  p->done = true;
  p->cv.notify_one();
}

void RpcClient::NetLoop() {
  ArmWake();
  ArmRecv();
  while (true) {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (stop_ && !recv_inflight_ && !send_inflight_) break;
    }
    Status st = ring_->RunOnce(kHookIntervalMs);
    if (!st.ok()) {
      LOG(Error) << "client ring: " << st.ToString();
      FailAll(st);
      break;
    }
    if (periodic_hook_) periodic_hook_();
    KeepLease();
    MaybeReconnect();
    FailIfUnreachable();
  }
}

void RpcClient::GiveUpAfter(int64_t ms) {
  int64_t now = give_up_ms_;
  if (now == 0 || (ms > 0 && ms < now)) give_up_ms_ = ms;
}

bool RpcClient::GivenUp() const {
  int64_t limit = give_up_ms_;
  return !connected_ && limit > 0 && SteadyNowMs() - disconnected_ms_ >= limit;
}

// DESIGN §7: a client that may have lost its lease stops serving its cache
// until it has reconnected (and, resumed, knows its locks are still its own).
// Polls: only a client cut off for a whole lease gets here.
Status RpcClient::AwaitLease() {
  // The server keeps a session at least a lease after it last sent to this
  // client; an eighth of it covers the way here and the clocks' drift.
  const int64_t covered_ms = welcome_.lease_ms - welcome_.lease_ms / 8;
  if (covered_ms <= 0) return Status::Ok();
  while (SteadyNowMs() - heard_ms_ >= covered_ms) {
    if (broken_) return Status::Error(EIO, "the server ended this client's session; remount");
    if (GivenUp()) return Status::Error(EIO, "the server is unreachable (soft mount)");
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return Status::Ok();
}

void RpcClient::FailIfUnreachable() {
  if (broken_ || !GivenUp()) return;
  std::unordered_map<uint64_t, std::shared_ptr<Pending>> pending;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (unanswered_.empty() && pending_.empty()) return;
    pending.swap(pending_);
    unanswered_.clear();  // not sent again: their callers are told they failed
    queue_.clear();
  }
  LOG(Error) << "the server has been unreachable for " << give_up_ms_.load()
             << " ms: " << pending.size() << " calls fail with EIO";
  for (auto& [id, p] : pending) {
    Deliver(p, Status::Error(EIO, "the server is unreachable (soft mount)"));
  }
}

void RpcClient::OnBroken(const Status& why) {
  bool stopping;
  {
    std::lock_guard<std::mutex> l(mu_);
    stopping = stop_;
  }
  if (stopping || broken_) return FailAll(why);
  if (!connected_) return;
  connected_ = false;
  disconnected_ms_ = SteadyNowMs();
  LOG(Warn) << "connection to the server lost (" << why.ToString()
            << "): reconnecting; requests wait";
  shutdown(fd_, SHUT_RDWR);  // ends the other ring operation on it
  next_attempt_ms_ = SteadyNowMs();
  backoff_ms_ = 50;
}

// Network thread: once the old socket's operations are over, tries again
// with backoff (50 ms doubling to 2 s).
void RpcClient::MaybeReconnect() {
  if (connected_ || broken_ || recv_inflight_ || send_inflight_) return;
  if (SteadyNowMs() < next_attempt_ms_) return;
  Status st = Reconnect();
  if (st.ok()) return;
  if (broken_) return;
  LOG(Info) << "reconnect failed: " << st.ToString() << "; again in " << backoff_ms_ << " ms";
  next_attempt_ms_ = SteadyNowMs() + backoff_ms_;
  backoff_ms_ = std::min(backoff_ms_ * 2, kMaxBackoffMs);
}

Status RpcClient::Reconnect() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  sending_.clear();
  reader_ = FrameReader();
  int64_t deadline_ms = SteadyNowMs() + kReconnectTimeoutMs;
  ASSIGN_OR_RETURN(fd_, ConnectTcp(host_port_, kReconnectTimeoutMs));
  RETURN_IF_ERROR(SecureHandshake(deadline_ms));
  ASSIGN_OR_RETURN(Welcome w, Handshake(deadline_ms, /*resume=*/true));
  if (!w.resumed) {
    FailAll(Status::Error(EIO, "the server ended this client's session (it was away longer "
                               "than its lease): what it had not shipped is lost; remount"));
    return Status::Error(EIO, "session lost");
  }
  if (w.reclaim) {
    RETURN_IF_ERROR(Reclaim(deadline_ms));
    restarts_++;  // what arrived before and is not taken yet grants nothing now
  }
  std::vector<SharedFrame> again;
  {
    std::lock_guard<std::mutex> l(mu_);
    queue_.clear();  // all of it is in unanswered_
    for (auto& [id, frame] : unanswered_) again.push_back(frame);
  }
  for (auto& frame : again) sending_.push_back(ToWire(channel_.get(), std::move(frame)));
  size_t resent = again.size();
  front_sent_ = 0;
  connected_ = true;
  heard_ms_ = SteadyNowMs();
  lease_->OnHeard(heard_ms_);
  lease_->OnSent(heard_ms_);
  LOG(Info) << "reconnected to the server" << (w.reclaim ? " (restarted; locks reclaimed)" : "")
            << ": sending " << resent << " requests again";
  ArmRecv();
  ArmSend();
  return Status::Ok();
}

// Network thread. The server renews the lease on anything this client sends.
void RpcClient::KeepLease() {
  if (broken_ || !connected_) return;
  int64_t now_ms = SteadyNowMs();
  LeaseKeeper::Step step = lease_->Tick(now_ms);
  if (step.silent) {
    LOG(Warn) << "nothing heard from the server for " << step.silent_ms << " ms (lease "
              << welcome_.lease_ms << " ms): it may have declared this client dead";
    return OnBroken(Status::Error(ETIMEDOUT, "the server is silent past the lease"));
  }
  if (step.back) LOG(Info) << "the server answers again";
  if (step.renew) {
    capnp::MallocMessageBuilder m;
    m.initRoot<wire::Request>().setRenew();
    Post(m);  // its reply (none) only shows the server is there
    lease_->OnSent(now_ms);
  }
}

void RpcClient::ArmRecv() {
  if (broken_ || !connected_ || recv_inflight_) return;
  size_t avail = 0;
  char* tail = RecvTail(&avail);
  recv_inflight_ = true;
  ring_->Recv(fd_, tail, avail, &recv_done_);
}

void RpcClient::OnRecv(int res) {
  recv_inflight_ = false;
  if (!connected_) return;  // the socket is being replaced
  if (res <= 0) {
    return OnBroken(Status::Error(ENOTCONN, res == 0 ? "server closed the connection"
                                                     : std::string("recv: ") + strerror(-res)));
  }
  stats_.bytes_received += static_cast<uint64_t>(res);
  heard_ms_ = SteadyNowMs();
  lease_->OnHeard(heard_ms_);
  Status taken = TakeReceived(static_cast<size_t>(res));
  if (!taken.ok()) return OnBroken(Status::Error(EPROTO, "secure channel: " + taken.ToString()));
  while (true) {
    auto next = reader_.Next();
    if (!next.ok()) {
      return OnBroken(Status::Error(EPROTO, "bad frame from server: " + next.status().ToString()));
    }
    if (!next->has_value()) break;
    InFrame frame = std::move(**next);
    if (frame.header.kind == FrameKind::kRecall) {
      OnRecall(std::move(frame));
      continue;
    }
    if (frame.header.kind != FrameKind::kReply) {
      return OnBroken(Status::Error(EPROTO, "unexpected frame kind from the server"));
    }
    uint64_t id = frame.header.request_id.value;
    std::shared_ptr<Pending> p;
    {
      std::lock_guard<std::mutex> l(mu_);
      unanswered_.erase(id);
      auto it = pending_.find(id);
      if (it != pending_.end()) {
        p = it->second;
        pending_.erase(it);
      }
    }
    if (!p) continue;  // a Post()ed request's reply, or a timed-out call's
    Deliver(p, DecodedReply::Decode(std::move(frame)));
  }
  ArmRecv();
}

void RpcClient::OnRecall(InFrame frame) {
  auto decoded = DecodedRecall::Decode(std::move(frame));
  Status st = decoded.status();
  if (st.ok()) {
    st = GuardDecode([&] {
      auto r = (*decoded)->root();
      if (recall_handler_) recall_handler_(InodeId(r.getIno()), FromWire(r.getMode()));
      return Status::Ok();
    });
  }
  if (!st.ok()) LOG(Warn) << "bad recall from the server: " << st.ToString();
}

uint64_t RpcClient::last_request_id() {
  std::lock_guard<std::mutex> l(mu_);
  return next_id_ - 1;
}

uint64_t RpcClient::oldest_unanswered_id() {
  std::lock_guard<std::mutex> l(mu_);
  return unanswered_.empty() ? next_id_ : unanswered_.begin()->first;
}

void RpcClient::ArmSend() {
  if (broken_ || !connected_ || send_inflight_ || sending_.empty()) return;
  iov_.clear();
  size_t skip = front_sent_;
  for (auto& f : sending_) {
    if (iov_.size() + 3 > 256) break;
    f.AppendIovecs(skip, &iov_);
    skip = 0;
  }
  msg_ = msghdr{};
  msg_.msg_iov = iov_.data();
  msg_.msg_iovlen = iov_.size();
  send_inflight_ = true;
  ring_->SendMsg(fd_, &msg_, &send_done_);
}

void RpcClient::OnSend(int res) {
  send_inflight_ = false;
  if (broken_ || !connected_) {
    sending_.clear();  // nothing in flight references these frames any more
    return;
  }
  if (res < 0) return OnBroken(Status::Error(ENOTCONN, std::string("send: ") + strerror(-res)));
  size_t sent = static_cast<size_t>(res) + front_sent_;
  while (!sending_.empty() && sent >= sending_.front().total_bytes()) {
    sent -= sending_.front().total_bytes();
    sending_.pop_front();
  }
  front_sent_ = sent;
  ArmSend();
}

void RpcClient::ArmWake() {
  ring_->Read(wake_.fd(), &wake_value_, sizeof(wake_value_), 0, &wake_done_);
}

void RpcClient::OnWake() {
  std::deque<SharedFrame> queued;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!connected_) queue_.clear();  // unanswered_ has them for the reconnect
    queued.swap(queue_);
  }
  if (!queued.empty()) lease_->OnSent(SteadyNowMs());
  // Sealed outside mu_: callers keep queueing meanwhile.
  for (auto& frame : queued) sending_.push_back(ToWire(channel_.get(), std::move(frame)));
  ArmSend();
  ArmWake();
}

void RpcClient::FailAll(const Status& why) {
  std::unordered_map<uint64_t, std::shared_ptr<Pending>> pending;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!broken_ && !stop_) LOG(Error) << "connection to server lost: " << why.ToString();
    broken_ = true;
    pending.swap(pending_);
    queue_.clear();
    unanswered_.clear();
  }
  // sending_ is freed by OnSend: a send in flight may still read it.
  for (auto& [id, p] : pending) Deliver(p, Status::Error(ENOTCONN, why.message()));
}

}  // namespace cohfs
