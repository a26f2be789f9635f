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

ProtocolPeer::ProtocolPeer(int port) {
  fd_ = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
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
  OutFrame f = EncodeFrame(FrameKind::kRequest, RequestId(id), m, std::move(bulk));
  std::vector<iovec> iov;
  f.AppendIovecs(0, &iov);
  if (writev(fd_, iov.data(), static_cast<int>(iov.size())) !=
      static_cast<ssize_t>(f.total_bytes())) {
    return -1;
  }
  for (;;) {
    char header[kFrameHeaderBytes];
    FrameHeader h;
    if (!ReadAll(header, sizeof(header)) || !DecodeFrameHeader(header, &h).ok()) return -1;
    kj::Array<capnp::word> words = kj::heapArray<capnp::word>(h.message_bytes / 8);
    std::string reply_bulk(h.bulk_bytes, '\0');
    if (!ReadAll(words.begin(), h.message_bytes) ||
        !ReadAll(reply_bulk.data(), reply_bulk.size())) {
      return -1;
    }
    if (h.kind == FrameKind::kRecall) recalls_++;
    if (h.kind != FrameKind::kReply || h.request_id.value != id) continue;
    capnp::FlatArrayMessageReader reader(words);
    auto reply = reader.getRoot<wire::Reply>();
    if (on_reply) on_reply(reply, reply_bulk);
    return static_cast<int>(reply.getErrno());
  }
}

bool ProtocolPeer::ReadAll(void* p, size_t n) {
  char* c = static_cast<char*>(p);
  while (n > 0) {
    ssize_t got = read(fd_, c, n);
    if (got <= 0) return false;
    c += got;
    n -= static_cast<size_t>(got);
  }
  return true;
}

}  // namespace cohfs::test
