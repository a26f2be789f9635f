#include "protocol/secure_channel.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include <cstring>

#include "protocol/codec.h"

namespace cohfs {
namespace {

using Role = SecureChannel::Role;

ChannelKey RandomKey() {
  EXPECT_GE(sodium_init(), 0);
  ChannelKey k;
  randombytes_buf(k.bytes.data(), k.bytes.size());
  return k;
}

// Puts `bytes` into `to`'s receive buffer.
void Deliver(SecureChannel& to, const std::string& bytes) {
  size_t avail = 0;
  char* tail = to.RecvTail(&avail);
  ASSERT_GE(avail, bytes.size());
  std::memcpy(tail, bytes.data(), bytes.size());
  to.CommitReceived(bytes.size());
}

// Runs the three handshake messages; returns the first failure.
Status Connect(SecureChannel& client, SecureChannel& server) {
  Deliver(server, client.Begin());
  std::string server_hello, client_finish, none;
  RETURN_IF_ERROR(server.Handshake(&server_hello));
  EXPECT_EQ(server_hello.size(), SecureChannel::kServerHelloBytes);
  Deliver(client, server_hello);
  RETURN_IF_ERROR(client.Handshake(&client_finish));
  Deliver(server, client_finish);
  RETURN_IF_ERROR(server.Handshake(&none));
  EXPECT_TRUE(none.empty());
  return Status::Ok();
}

OutFrame Frame(uint64_t id, std::string bulk) {
  capnp::MallocMessageBuilder m;
  m.initRoot<wire::Request>().setRenew();
  return EncodeFrame(FrameKind::kRequest, RequestId(id), m, std::move(bulk));
}

std::string Plain(const OutFrame& f) {
  std::vector<iovec> iov;
  f.AppendIovecs(0, &iov);
  std::string s;
  for (auto& v : iov) s.append(static_cast<const char*>(v.iov_base), v.iov_len);
  return s;
}

// Opens everything `to` has, in pieces of at most `piece` bytes.
Result<std::string> OpenAll(SecureChannel& to, size_t piece) {
  std::string out;
  while (to.has_plaintext()) {
    std::string chunk(piece, '\0');
    ASSIGN_OR_RETURN(size_t n, to.Open(chunk.data(), chunk.size()));
    out.append(chunk, 0, n);
  }
  return out;
}

class SecureChannelTest : public ::testing::Test {
 protected:
  ChannelKey key_ = RandomKey();
  SecureChannel client_{Role::kClient, key_};
  SecureChannel server_{Role::kServer, key_};
};

TEST_F(SecureChannelTest, HandshakeThenFramesBothWays) {
  ASSERT_TRUE(Connect(client_, server_).ok());
  ASSERT_TRUE(client_.established() && server_.established());
  OutFrame big = Frame(7, std::string(300 * 1024, 'x'));  // several records
  WireFrame sealed = client_.Seal(big);
  EXPECT_EQ(sealed.bytes.find("xxxxxxxx"), std::string::npos) << "plaintext on the wire";
  std::string all;
  for (size_t off = 0; off < sealed.bytes.size(); off += 60000) {
    Deliver(server_, sealed.bytes.substr(off, 60000));
    auto got = OpenAll(server_, 1000);  // small pieces: records opened in place
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    all += *got;
  }
  EXPECT_EQ(all, Plain(big));
  OutFrame reply = Frame(7, "pong");
  Deliver(client_, server_.Seal(reply).bytes);
  auto got = OpenAll(client_, 1 << 20);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, Plain(reply));
}

TEST_F(SecureChannelTest, WrongKeyIsRefusedByTheClient) {
  ChannelKey other = RandomKey();
  SecureChannel server(Role::kServer, other);
  Status st = Connect(client_, server);
  EXPECT_EQ(st.errno_value(), EACCES) << st.ToString();
  EXPECT_NE(st.message().find("wrong --key"), std::string::npos);
  EXPECT_FALSE(client_.established());
}

TEST_F(SecureChannelTest, ClientWithoutTheKeyIsRefusedByTheServer) {
  // A client that ignores the server's proof still cannot finish.
  Deliver(server_, client_.Begin());
  std::string server_hello;
  ASSERT_TRUE(server_.Handshake(&server_hello).ok());
  Deliver(server_, std::string(SecureChannel::kClientFinishBytes, '\x42'));
  std::string none;
  EXPECT_EQ(server_.Handshake(&none).errno_value(), EACCES);
  EXPECT_FALSE(server_.established());
}

TEST_F(SecureChannelTest, ReflectedServerProofIsNotAClientProof) {
  Deliver(server_, client_.Begin());
  std::string server_hello;
  ASSERT_TRUE(server_.Handshake(&server_hello).ok());
  // The attacker sends the server's own proof back as the client's finish.
  Deliver(server_, server_hello.substr(server_hello.size() - SecureChannel::kProofBytes));
  std::string none;
  EXPECT_EQ(server_.Handshake(&none).errno_value(), EACCES);
}

TEST_F(SecureChannelTest, ReflectedClientHelloIsNotAServerHello) {
  std::string hello = client_.Begin();
  Deliver(client_, hello + std::string(SecureChannel::kServerHelloBytes, '\0'));
  std::string reply;
  EXPECT_EQ(client_.Handshake(&reply).errno_value(), EPROTO);
}

TEST_F(SecureChannelTest, PlainFrameIsNotAHandshake) {
  Deliver(server_, Plain(Frame(1, "")));
  std::string reply;
  EXPECT_EQ(server_.Handshake(&reply).errno_value(), EPROTO);
  EXPECT_TRUE(reply.empty()) << "nothing is sent to a peer without the key";
}

TEST_F(SecureChannelTest, ReplayedRecordIsRejected) {
  ASSERT_TRUE(Connect(client_, server_).ok());
  std::string one = client_.Seal(Frame(1, "a")).bytes;
  Deliver(server_, one);
  ASSERT_TRUE(OpenAll(server_, 4096).ok());
  Deliver(server_, one);
  EXPECT_EQ(OpenAll(server_, 4096).errno_value(), EPROTO);
}

TEST_F(SecureChannelTest, ReorderedOrDroppedRecordIsRejected) {
  ASSERT_TRUE(Connect(client_, server_).ok());
  std::string first = client_.Seal(Frame(1, "a")).bytes;
  std::string second = client_.Seal(Frame(2, "b")).bytes;
  Deliver(server_, second);  // the first dropped (or the two swapped)
  EXPECT_EQ(OpenAll(server_, 4096).errno_value(), EPROTO);
}

TEST_F(SecureChannelTest, TamperedOrTruncatedRecordIsRejected) {
  ASSERT_TRUE(Connect(client_, server_).ok());
  std::string rec = client_.Seal(Frame(1, "payload")).bytes;
  std::string flipped = rec;
  flipped[flipped.size() / 2] ^= 1;
  Deliver(server_, flipped);
  EXPECT_EQ(OpenAll(server_, 4096).errno_value(), EPROTO);

  // A record cut short opens nothing; one whose length prefix was changed fails.
  constexpr size_t kHeaderRecord = 4 + kFrameHeaderBytes + SecureChannel::kTagBytes;
  SecureChannel client(Role::kClient, key_), server(Role::kServer, key_);
  ASSERT_TRUE(Connect(client, server).ok());
  std::string r = client.Seal(Frame(1, "payload")).bytes;
  Deliver(server, r.substr(0, kHeaderRecord - 1));
  EXPECT_FALSE(server.has_plaintext());
  SecureChannel client3(Role::kClient, key_), server3(Role::kServer, key_);
  ASSERT_TRUE(Connect(client3, server3).ok());
  std::string shortened = client3.Seal(Frame(1, "payload")).bytes;
  shortened[0] = static_cast<char>(shortened[0] - 1);  // claims one byte less
  Deliver(server3, shortened.substr(0, kHeaderRecord - 1));
  EXPECT_EQ(OpenAll(server3, 4096).errno_value(), EPROTO);
}

TEST_F(SecureChannelTest, RecordFromAnotherConnectionIsRejected) {
  ASSERT_TRUE(Connect(client_, server_).ok());
  SecureChannel client2(Role::kClient, key_), server2(Role::kServer, key_);
  ASSERT_TRUE(Connect(client2, server2).ok());
  Deliver(server2, client_.Seal(Frame(1, "a")).bytes);  // same key, same counter
  EXPECT_EQ(OpenAll(server2, 4096).errno_value(), EPROTO);
}

TEST_F(SecureChannelTest, ReplayedHandshakeDoesNotEstablish) {
  // What a client sent to one server, replayed to a new one.
  std::string client_hello = client_.Begin();
  Deliver(server_, client_hello);
  std::string server_hello, client_finish;
  ASSERT_TRUE(server_.Handshake(&server_hello).ok());
  Deliver(client_, server_hello);
  ASSERT_TRUE(client_.Handshake(&client_finish).ok());
  SecureChannel fresh(Role::kServer, key_);
  Deliver(fresh, client_hello);
  std::string fresh_hello, none;
  ASSERT_TRUE(fresh.Handshake(&fresh_hello).ok());
  EXPECT_NE(fresh_hello, server_hello) << "each server hello has a new ephemeral key";
  Deliver(fresh, client_finish);
  EXPECT_EQ(fresh.Handshake(&none).errno_value(), EACCES);
  EXPECT_FALSE(fresh.established());
}

}  // namespace
}  // namespace cohfs
