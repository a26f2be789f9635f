// RpcClient's blocking half: connecting, the secure handshake, the hello
// and the reclaim after a reconnect, on the caller's thread before the
// network thread runs (or while it waits for a reconnect). The running half,
// the ring and its callbacks, is rpc_client.cc.
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

Status SendAll(int fd, const WireFrame& f, int64_t deadline_ms) {
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

// What the socket has, into `tail`, once it has some or the deadline passes.
Result<size_t> RecvSome(int fd, char* tail, size_t avail, int64_t deadline_ms) {
  while (true) {
    RETURN_IF_ERROR(WaitReady(fd, POLLIN, deadline_ms));
    ssize_t n = recv(fd, tail, avail, MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
    if (n == 0) return Status::Error(ECONNRESET, "server closed the connection");
    if (n < 0) return Status::Error(errno, "recv from server");
    return static_cast<size_t>(n);
  }
}

WireFrame Raw(std::string bytes) { return WireFrame{nullptr, std::move(bytes)}; }

}  // namespace

Result<std::unique_ptr<RpcClient>> RpcClient::Connect(const std::string& host_port,
                                                      const std::string& client_name,
                                                      ClientStats& stats, int timeout_ms,
                                                      const ChannelKey* key) {
  int64_t deadline_ms = SteadyNowMs() + timeout_ms;
  ASSIGN_OR_RETURN(int fd, ConnectTcp(host_port, timeout_ms));
  std::unique_ptr<RpcClient> c(new RpcClient(fd, stats));
  c->host_port_ = host_port;
  c->client_name_ = client_name;
  if (key) c->key_ = std::make_unique<ChannelKey>(*key);
  Status secure = c->SecureHandshake(deadline_ms);
  if (secure.errno_value() == ECONNRESET) {
    return Status::Error(EPROTO,
                         "the server closed the connection at the secure handshake (is "
                         "it serving --insecure? then mount without --key)");
  }
  RETURN_IF_ERROR(secure);
  Result<Welcome> w = c->Handshake(deadline_ms, /*resume=*/false);
  if (!key && w.errno_value() == ECONNRESET) {
    return Status::Error(EACCES,
                         "the server closed the connection at the hello: the server "
                         "requires a key: mount with --key FILE");
  }
  if (w.errno_value() == ETIMEDOUT) {
    return Status::Error(ETIMEDOUT, "connected, but no answer to the handshake within " +
                                        std::to_string(timeout_ms) +
                                        " ms (is it a cohfs server, and is it running?)");
  }
  RETURN_IF_ERROR(w.status());
  c->welcome_ = *w;
  return c;
}

Result<std::unique_ptr<DecodedReply>> RpcClient::ExchangeOnce(const std::string& host_port,
                                                              capnp::MallocMessageBuilder& request,
                                                              int timeout_ms,
                                                              const ChannelKey* key) {
  int64_t deadline_ms = SteadyNowMs() + timeout_ms;
  ASSIGN_OR_RETURN(int fd, ConnectTcp(host_port, timeout_ms));
  ClientStats unused;
  std::unique_ptr<RpcClient> c(new RpcClient(fd, unused));
  if (key) c->key_ = std::make_unique<ChannelKey>(*key);
  Status secure = c->SecureHandshake(deadline_ms);
  if (secure.errno_value() == ECONNRESET) {
    return Status::Error(EPROTO, "the server closed the connection at the secure handshake (is "
                                 "it serving --insecure? then leave out --key)");
  }
  RETURN_IF_ERROR(secure);
  auto reply = c->Exchange(request, deadline_ms);
  if (!key && reply.errno_value() == ECONNRESET) {
    return Status::Error(EACCES, "the server closed the connection: it requires --key FILE");
  }
  return reply;
}

Result<std::unique_ptr<DecodedReply>> RpcClient::Exchange(capnp::MallocMessageBuilder& m,
                                                          int64_t deadline_ms) {
  RequestId id(0);  // handshake time: nothing else is in flight on this socket
  auto frame_out = std::make_shared<const OutFrame>(EncodeFrame(FrameKind::kRequest, id, m));
  RETURN_IF_ERROR(SendAll(fd_, ToWire(channel_.get(), std::move(frame_out)), deadline_ms));
  ASSIGN_OR_RETURN(InFrame frame, RecvFrame(deadline_ms));
  if (frame.header.kind != FrameKind::kReply || frame.header.request_id != id) {
    return Status::Error(EPROTO, "unexpected frame during handshake");
  }
  ASSIGN_OR_RETURN(auto decoded, DecodedReply::Decode(std::move(frame)));
  RETURN_IF_ERROR(GuardDecode([&] { return ReplyStatus(decoded->root()); }));
  return decoded;
}

// Blocking, at connect time: ClientHello, ServerHello, ClientFinish.
Status RpcClient::SecureHandshake(int64_t deadline_ms) {
  channel_.reset();
  if (!key_) return Status::Ok();
  auto channel = std::make_unique<SecureChannel>(SecureChannel::Role::kClient, *key_);
  RETURN_IF_ERROR(SendAll(fd_, Raw(channel->Begin()), deadline_ms));
  std::string finish;
  while (!channel->established()) {
    size_t avail = 0;
    char* tail = channel->RecvTail(&avail);
    ASSIGN_OR_RETURN(size_t n, RecvSome(fd_, tail, avail, deadline_ms));
    channel->CommitReceived(n);
    RETURN_IF_ERROR(channel->Handshake(&finish));
  }
  RETURN_IF_ERROR(SendAll(fd_, Raw(std::move(finish)), deadline_ms));
  channel_ = std::move(channel);
  return Status::Ok();
}

char* RpcClient::RecvTail(size_t* available) {
  if (channel_) return channel_->RecvTail(available);
  return reader_.WritableTail(256 * 1024, available);
}

// The client's reader grows to what a frame needs (its server is trusted).
Status RpcClient::TakeReceived(size_t bytes) {
  if (!channel_) {
    reader_.CommitReceived(bytes);
    return Status::Ok();
  }
  channel_->CommitReceived(bytes);
  while (channel_->has_plaintext()) {
    size_t avail = 0;
    char* tail = reader_.WritableTail(SecureChannel::kMaxRecordBytes, &avail);
    ASSIGN_OR_RETURN(size_t moved, channel_->Open(tail, avail));
    reader_.CommitReceived(moved);
  }
  return Status::Ok();
}

Result<InFrame> RpcClient::RecvFrame(int64_t deadline_ms) {
  while (true) {
    auto next = reader_.Next();
    if (!next.ok()) return next.status();
    if (next->has_value()) return std::move(**next);
    size_t avail = 0;
    char* tail = RecvTail(&avail);
    ASSIGN_OR_RETURN(size_t n, RecvSome(fd_, tail, avail, deadline_ms));
    RETURN_IF_ERROR(TakeReceived(n));
  }
}

Result<Welcome> RpcClient::Handshake(int64_t deadline_ms, bool resume) {
  capnp::MallocMessageBuilder m;
  auto req = m.initRoot<wire::Request>();
  auto h = req.initHello();
  h.setVersionMin(wire::PROTOCOL_VERSION);
  h.setVersionMax(wire::PROTOCOL_VERSION);
  h.setClientName(client_name_);
  h.setWantGrant(SpaceGrant::kWantBytes);
  if (resume) {
    h.setResumeSession(welcome_.session_id);
    h.setResumeKey(welcome_.session_key);
  }
  stats_.rpcs[wire::Request::HELLO]++;
  ASSIGN_OR_RETURN(auto decoded, Exchange(m, deadline_ms));
  Welcome out;
  RETURN_IF_ERROR(GuardDecode([&]() -> Status {
    auto r = decoded->root();
    if (!r.isWelcome()) return Status::Error(EPROTO, "server did not answer Hello with Welcome");
    auto w = r.getWelcome();
    out.version = w.getVersion();
    out.session_id = w.getSessionId();
    out.session_key = w.getSessionKey();
    out.resumed = w.getResumed();
    out.reclaim = w.getReclaim();
    out.lease_ms = w.getLeaseMs();
    out.root = InodeId(w.getRootIno());
    out.inodes_first = w.getInodes().getFirst();
    out.inodes_count = w.getInodes().getCount();
    out.server_generation = w.getServerGeneration();
    out.grant_bytes = w.getGrantBytes();
    // An unknown squashing is taken as the strictest.
    out.squash = w.getSquash() <= 2 ? static_cast<Squash>(w.getSquash()) : Squash::kAll;
    return Status::Ok();
  }));
  return out;
}

// After a server restart: the locks come back before any request is resent.
Status RpcClient::Reclaim(int64_t deadline_ms) {
  capnp::MallocMessageBuilder m;
  auto req = m.initRoot<wire::Request>();
  req.initReclaim();
  if (reclaimer_.build) reclaimer_.build(req);
  stats_.rpcs[wire::Request::RECLAIM]++;
  ASSIGN_OR_RETURN(auto decoded, Exchange(m, deadline_ms));
  return GuardDecode([&] {
    if (reclaimer_.done) reclaimer_.done(decoded->root());
    return Status::Ok();
  });
}

}  // namespace cohfs
