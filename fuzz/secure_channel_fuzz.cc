// FuzzSecureChannel: hostile bytes into a SecureChannel
// (protocol/secure_channel.h), received in chunks of fuzzed sizes.
//
// Input: mode byte (bit 0: after a real handshake, as records; else as a
// handshake, to a server or, bit 1, to a client; bit 2 with records: one
// genuine sealed frame of fuzzed bulk first), a count k (< 16) and k u16
// chunk sizes, then the bytes. Checked: no input completes a handshake (the
// fuzzer cannot know the peer's ephemeral key, so a proof it makes is a
// forgery); a server answers with one ServerHello at most; errors are EPROTO
// or EACCES; no forged record opens: only the genuine frame's bytes come out,
// and Open never writes past the room it was given.
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "common/check.h"
#include "fuzz/fuzz_input.h"
#include "fuzz/fuzz_targets.h"
#include "protocol/codec.h"
#include "protocol/secure_channel.h"

namespace cohfs::fuzz {
namespace {

ChannelKey FixedKey() {
  ChannelKey k;
  k.bytes.fill(0x5c);
  return k;
}

// Copies `n` bytes into the channel's receive buffer, as much as it takes.
size_t Receive(SecureChannel& ch, const uint8_t* p, size_t n) {
  size_t avail = 0;
  char* tail = ch.RecvTail(&avail);
  size_t take = std::min(avail, n);
  std::memcpy(tail, p, take);
  ch.CommitReceived(take);
  return take;
}

void Handshakes(bool to_client, const uint8_t* p, size_t n, const std::vector<size_t>& chunks) {
  SecureChannel::Role role =
      to_client ? SecureChannel::Role::kClient : SecureChannel::Role::kServer;
  SecureChannel ch(role, FixedKey());
  if (to_client) (void)ch.Begin();
  std::string reply;
  for (size_t i = 0, at = 0; at < n; i++) {
    size_t want = chunks.empty() ? n - at : std::min(chunks[i % chunks.size()], n - at);
    size_t took = Receive(ch, p + at, want);
    if (took == 0) return;  // the buffer is full of bytes nobody asked for
    at += took;
    Status st = ch.Handshake(&reply);
    if (!st.ok()) {
      CHECK(st.errno_value() == EPROTO || st.errno_value() == EACCES);
      return;
    }
    CHECK_MSG(!ch.established(), "a forged handshake was accepted");
    CHECK(reply.size() == 0 || (!to_client && reply.size() == SecureChannel::kServerHelloBytes));
  }
}

void Records(bool genuine_first, const uint8_t* p, size_t n, const std::vector<size_t>& chunks) {
  SecureChannel client(SecureChannel::Role::kClient, FixedKey());
  SecureChannel server(SecureChannel::Role::kServer, FixedKey());
  std::string hello = client.Begin(), server_hello, finish;
  Receive(server, reinterpret_cast<const uint8_t*>(hello.data()), hello.size());
  CHECK(server.Handshake(&server_hello).ok());
  Receive(client, reinterpret_cast<const uint8_t*>(server_hello.data()), server_hello.size());
  CHECK(client.Handshake(&finish).ok());
  Receive(server, reinterpret_cast<const uint8_t*>(finish.data()), finish.size());
  CHECK(server.Handshake(&finish).ok() && server.established());
  std::string stream, expected;
  if (genuine_first) {
    capnp::MallocMessageBuilder m;
    m.initRoot<wire::Request>().setRenew();
    OutFrame f =
        EncodeFrame(FrameKind::kRequest, RequestId(1), m,
                    std::string(reinterpret_cast<const char*>(p), std::min<size_t>(n, 300)));
    std::vector<iovec> iov;
    f.AppendIovecs(0, &iov);
    for (auto& v : iov) expected.append(static_cast<const char*>(v.iov_base), v.iov_len);
    stream = client.Seal(f).bytes;
  }
  stream.append(reinterpret_cast<const char*>(p), n);
  std::string out;
  for (size_t i = 0, at = 0; at < stream.size(); i++) {
    size_t want = chunks.empty() ? stream.size() - at
                                 : std::min(chunks[i % chunks.size()], stream.size() - at);
    size_t took = Receive(server, reinterpret_cast<const uint8_t*>(stream.data()) + at, want);
    at += took;
    while (server.has_plaintext()) {
      char room[4096 + 1];
      room[4096] = '\x7e';
      size_t give = 1 + i % 4096;
      auto moved = server.Open(room, give);
      if (!moved.ok()) {
        CHECK(moved.errno_value() == EPROTO);
        CHECK(out == expected.substr(0, out.size()));
        return;
      }
      CHECK(*moved <= give && room[4096] == '\x7e');
      out.append(room, *moved);
    }
    CHECK(out.size() <= expected.size() && out == expected.substr(0, out.size()));
    if (took == 0) break;
  }
}

}  // namespace

void FuzzSecureChannel(const uint8_t* data, size_t size) {
  FuzzInput in(data, size);
  const uint8_t mode = in.U8();
  std::vector<size_t> chunks(in.U8() % 16);
  for (size_t& c : chunks) c = std::max<uint16_t>(in.Int<uint16_t>(), 1);
  const uint8_t* bytes = data + (size - in.remaining());
  if (mode & 1) {
    Records((mode & 4) != 0, bytes, in.remaining(), chunks);
  } else {
    Handshakes((mode & 2) != 0, bytes, in.remaining(), chunks);
  }
}

}  // namespace cohfs::fuzz
