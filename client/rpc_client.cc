#include "client/rpc_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>

#include "client/space_grant.h"
#include "common/log.h"

namespace cohfs {
namespace {

// Waits until fd is ready for `events` or the deadline (steady ms) passes.
Status WaitReady(int fd, short events, int64_t deadline_ms) {
  while (true) {
    int64_t left = deadline_ms - SteadyNowMs();
    if (left <= 0)
      return Status::Error(ETIMEDOUT, "the server did not answer the handshake in time");
    pollfd p{fd, events, 0};
    int n = poll(&p, 1, static_cast<int>(left));
    if (n > 0) return Status::Ok();
    if (n < 0 && errno != EINTR) return Status::Error(errno, "poll");
  }
}

Status SendAll(int fd, const OutFrame& f, int64_t deadline_ms) {
  std::vector<iovec> iov;
  f.AppendIovecs(0, &iov);
  size_t total = f.total_bytes(), sent = 0;
  while (sent < total) {
    iov.clear();
    f.AppendIovecs(sent, &iov);
    msghdr m{};
    m.msg_iov = iov.data();
    m.msg_iovlen = iov.size();
    RETURN_IF_ERROR(WaitReady(fd, POLLOUT, deadline_ms));
    ssize_t n = sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) continue;
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status::Error(errno ? errno : EPIPE, "send to server");
    sent += static_cast<size_t>(n);
  }
  return Status::Ok();
}

Result<InFrame> RecvFrame(int fd, FrameReader& reader, int64_t deadline_ms) {
  while (true) {
    auto next = reader.Next();
    if (!next.ok()) return next.status();
    if (next->has_value()) return std::move(**next);
    size_t avail = 0;
    char* tail = reader.WritableTail(64 * 1024, &avail);
    RETURN_IF_ERROR(WaitReady(fd, POLLIN, deadline_ms));
    ssize_t n = recv(fd, tail, avail, MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
    if (n == 0) return Status::Error(ECONNRESET, "server closed the connection");
    if (n < 0) return Status::Error(errno, "recv from server");
    reader.CommitReceived(static_cast<size_t>(n));
  }
}

}  // namespace

Result<std::unique_ptr<RpcClient>> RpcClient::Connect(const std::string& host_port,
                                                      const std::string& client_name,
                                                      ClientStats& stats, int timeout_ms) {
  int64_t deadline_ms = SteadyNowMs() + timeout_ms;
  ASSIGN_OR_RETURN(int fd, ConnectTcp(host_port, timeout_ms));
  std::unique_ptr<RpcClient> c(new RpcClient(fd, stats));
  Status st = c->Handshake(client_name, deadline_ms);
  if (st.errno_value() == ETIMEDOUT) {
    return Status::Error(ETIMEDOUT, "connected, but no answer to the handshake within " +
                                        std::to_string(timeout_ms) +
                                        " ms (is it a cohfs server, and is it running?)");
  }
  RETURN_IF_ERROR(st);
  return c;
}

Status RpcClient::Handshake(const std::string& client_name, int64_t deadline_ms) {
  capnp::MallocMessageBuilder m;
  auto req = m.initRoot<wire::Request>();
  auto h = req.initHello();
  h.setVersionMin(wire::PROTOCOL_VERSION);
  h.setVersionMax(wire::PROTOCOL_VERSION);
  h.setClientName(client_name);
  h.setWantGrant(SpaceGrant::kWantBytes);
  RequestId id(next_id_++);
  RETURN_IF_ERROR(SendAll(fd_, EncodeFrame(FrameKind::kRequest, id, m), deadline_ms));
  stats_.rpcs[wire::Request::HELLO]++;
  ASSIGN_OR_RETURN(InFrame frame, RecvFrame(fd_, reader_, deadline_ms));
  if (frame.header.kind != FrameKind::kReply || frame.header.request_id != id) {
    return Status::Error(EPROTO, "unexpected frame during handshake");
  }
  ASSIGN_OR_RETURN(auto decoded, DecodedReply::Decode(std::move(frame)));
  return GuardDecode([&]() -> Status {
    auto r = decoded->root();
    RETURN_IF_ERROR(ReplyStatus(r));
    if (!r.isWelcome()) return Status::Error(EPROTO, "server did not answer Hello with Welcome");
    auto w = r.getWelcome();
    welcome_.version = w.getVersion();
    welcome_.session_id = w.getSessionId();
    welcome_.lease_ms = w.getLeaseMs();
    welcome_.root = InodeId(w.getRootIno());
    welcome_.inodes_first = w.getInodes().getFirst();
    welcome_.inodes_count = w.getInodes().getCount();
    welcome_.server_generation = w.getServerGeneration();
    welcome_.grant_bytes = w.getGrantBytes();
    return Status::Ok();
  });
}

RpcClient::~RpcClient() {
  Shutdown();
  close(fd_);
}

Status RpcClient::Start() {
  ASSIGN_OR_RETURN(ring_, Ring::Create(256));
  lease_ = std::make_unique<LeaseKeeper>(welcome_.lease_ms, SteadyNowMs());
  recv_done_.on_complete = [this](int res, uint32_t) { OnRecv(res); };
  send_done_.on_complete = [this](int res, uint32_t) { OnSend(res); };
  wake_done_.on_complete = [this](int, uint32_t) { OnWake(); };
  thread_ = std::thread([this] { NetLoop(); });
  return Status::Ok();
}

void RpcClient::Shutdown() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  if (thread_.joinable()) {
    shutdown(fd_, SHUT_RDWR);
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
    RequestId id(next_id_++);  // under mu_: ids follow the queue's order
    OutFrame frame = EncodeFrame(FrameKind::kRequest, id, request, std::move(bulk));
    stats_.bytes_sent += frame.total_bytes();
    if (p) pending_[id.value] = p;
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
  } else if (!p->cv.wait_for(l, std::chrono::milliseconds(timeout_ms), [&] { return p->done; })) {
    stats_.rpc_errors++;
    return Status::Error(EIO, "server did not answer in time");
  }
  if (!p->error.ok()) {
    stats_.rpc_errors++;
    return p->error;
  }
  Status st = GuardDecode([&] { return ReplyStatus(p->reply->root()); });
  if (!st.ok()) return st;
  return RpcReply(std::move(p->reply));
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
  }
}

// Network thread. The server renews the lease on anything this client sends.
void RpcClient::KeepLease() {
  if (broken_) return;
  int64_t now_ms = SteadyNowMs();
  LeaseKeeper::Step step = lease_->Tick(now_ms);
  if (step.silent) {
    LOG(Warn) << "nothing heard from the server for " << step.silent_ms << " ms (lease "
              << welcome_.lease_ms << " ms): it may have declared this client dead";
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
  if (broken_ || recv_inflight_) return;
  size_t avail = 0;
  char* tail = reader_.WritableTail(256 * 1024, &avail);
  recv_inflight_ = true;
  ring_->Recv(fd_, tail, avail, &recv_done_);
}

void RpcClient::OnRecv(int res) {
  recv_inflight_ = false;
  if (res <= 0) {
    FailAll(Status::Error(ENOTCONN, res == 0 ? "server closed the connection"
                                             : std::string("recv: ") + strerror(-res)));
    return;
  }
  stats_.bytes_received += static_cast<uint64_t>(res);
  lease_->OnHeard(SteadyNowMs());
  reader_.CommitReceived(static_cast<size_t>(res));
  while (true) {
    auto next = reader_.Next();
    if (!next.ok()) {
      FailAll(Status::Error(EPROTO, "bad frame from server: " + next.status().ToString()));
      return;
    }
    if (!next->has_value()) break;
    InFrame frame = std::move(**next);
    if (frame.header.kind == FrameKind::kRecall) {
      OnRecall(std::move(frame));
      continue;
    }
    if (frame.header.kind != FrameKind::kReply) {
      FailAll(Status::Error(EPROTO, "unexpected frame kind from the server"));
      return;
    }
    uint64_t id = frame.header.request_id.value;
    std::shared_ptr<Pending> p;
    {
      std::lock_guard<std::mutex> l(mu_);
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
  uint64_t oldest = next_id_;
  for (const auto& [id, p] : pending_) oldest = std::min(oldest, id);
  return oldest;
}

void RpcClient::ArmSend() {
  if (broken_ || send_inflight_ || sending_.empty()) return;
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
  if (broken_) {
    sending_.clear();  // nothing in flight references these frames any more
    return;
  }
  if (res < 0) {
    FailAll(Status::Error(ENOTCONN, std::string("send: ") + strerror(-res)));
    return;
  }
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
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!queue_.empty()) lease_->OnSent(SteadyNowMs());
    while (!queue_.empty()) {
      sending_.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
  }
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
  }
  // sending_ is freed by OnSend: a send in flight may still read it.
  for (auto& [id, p] : pending) Deliver(p, Status::Error(ENOTCONN, why.message()));
}

}  // namespace cohfs
