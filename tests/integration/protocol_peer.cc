#include "tests/integration/protocol_peer.h"

#include <arpa/inet.h>
#include <capnp/message.h>
#include <capnp/serialize.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <vector>

namespace cohfs::test {

ProtocolPeer::ProtocolPeer(int port, const std::string& key_file) {
  fd_ = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  if (connected_ && !key_file.empty()) connected_ = SecureHandshake(key_file);
}

bool ProtocolPeer::SecureHandshake(const std::string& key_file) {
  auto key = ReadKeyFile(key_file);
  if (!key.ok()) return false;
  auto channel = std::make_unique<SecureChannel>(SecureChannel::Role::kClient, *key);
  if (!SendAll(WireFrame{nullptr, channel->Begin()})) return false;
  std::string finish;
  while (!channel->established()) {
    size_t avail = 0;
    char* tail = channel->RecvTail(&avail);
    ssize_t n = read(fd_, tail, avail);
    if (n <= 0) return false;
    channel->CommitReceived(static_cast<size_t>(n));
    if (!channel->Handshake(&finish).ok()) return false;
  }
  channel_ = std::move(channel);
  return SendAll(WireFrame{nullptr, std::move(finish)});
}

bool ProtocolPeer::SendAll(const WireFrame& w) {
  for (size_t sent = 0; sent < w.total_bytes();) {
    std::vector<iovec> iov;
    w.AppendIovecs(sent, &iov);
    ssize_t n = writev(fd_, iov.data(), static_cast<int>(iov.size()));
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

bool ProtocolPeer::RecvSome() {
  size_t avail = 0;
  char* tail = channel_ ? channel_->RecvTail(&avail) : reader_.WritableTail(64 * 1024, &avail);
  ssize_t n = read(fd_, tail, avail);
  if (n <= 0) return false;
  bytes_received_ += static_cast<size_t>(n);
  if (!channel_) {
    reader_.CommitReceived(static_cast<size_t>(n));
    return true;
  }
  channel_->CommitReceived(static_cast<size_t>(n));
  while (channel_->has_plaintext()) {
    tail = reader_.WritableTail(SecureChannel::kMaxRecordBytes, &avail);
    auto moved = channel_->Open(tail, avail);
    if (!moved.ok()) return false;
    reader_.CommitReceived(*moved);
  }
  return true;
}

ProtocolPeer::~ProtocolPeer() { close(fd_); }

void ProtocolPeer::Disconnect() { shutdown(fd_, SHUT_RDWR); }

bool ProtocolPeer::Hello(const std::string& client_name) {
  return Call(
             {},
             [&](wire::Request::Builder r) {
               auto h = r.initHello();
               h.setVersionMin(wire::PROTOCOL_VERSION);
               h.setVersionMax(wire::PROTOCOL_VERSION);
               h.setClientName(client_name);
             },
             [&](wire::Reply::Reader r, const std::string&) {
               inodes_first_ = r.getWelcome().getInodes().getFirst();
             }) == 0;
}

int ProtocolPeer::Call(const Caller& caller, const Build& build, const OnReply& on_reply,
                       std::string bulk) {
  capnp::MallocMessageBuilder m;
  auto req = m.initRoot<wire::Request>();
  ToWire(caller, req.initCaller());
  build(req);
  uint64_t id = next_id_++;
  auto f = std::make_shared<const OutFrame>(
      EncodeFrame(FrameKind::kRequest, RequestId(id), m, std::move(bulk)));
  if (!SendAll(ToWire(channel_.get(), std::move(f)))) return -1;
  for (;;) {
    auto next = reader_.Next();
    if (!next.ok()) return -1;
    if (!next->has_value()) {
      if (!RecvSome()) return -1;
      continue;
    }
    InFrame frame = std::move(**next);
    if (frame.header.kind == FrameKind::kRecall) recalls_++;
    if (frame.header.kind != FrameKind::kReply || frame.header.request_id.value != id) continue;
    capnp::FlatArrayMessageReader reader(frame.message);
    auto reply = reader.getRoot<wire::Reply>();
    if (on_reply) on_reply(reply, frame.bulk);
    return static_cast<int>(reply.getErrno());
  }
}

}  // namespace cohfs::test
