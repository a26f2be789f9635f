// A client written by hand that speaks the protocol directly: no FUSE, no
// cache, no local checks. It sends whatever a test builds, in the name of any
// caller, and reads frames until the reply; recalls are counted and never
// answered (a stuck or hostile client). With a key file it first does the
// secure channel's handshake (the same module the client uses).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/fs_types.h"
#include "protocol/codec.h"
#include "protocol/secure_channel.h"

namespace cohfs::test {

class ProtocolPeer {
 public:
  // Connects to the server on loopback; with a key, connected() once the
  // handshake succeeded.
  explicit ProtocolPeer(int port, const std::string& key_file = "");
  ~ProtocolPeer();
  ProtocolPeer(const ProtocolPeer&) = delete;
  ProtocolPeer& operator=(const ProtocolPeer&) = delete;

  bool connected() const { return connected_; }
  void Disconnect();  // shuts the socket down; a blocked Call returns -1
  int recalls() const { return recalls_; }
  size_t bytes_received() const { return bytes_received_; }  // from the server, all told
  uint64_t inodes_first() const { return inodes_first_; }  // the session's inode range

  using Build = std::function<void(wire::Request::Builder)>;
  using OnReply = std::function<void(wire::Reply::Reader, const std::string& bulk)>;
  // Sends the request `build` fills, stamped with `caller` and carrying `bulk`,
  // and reads frames until its reply, which `on_reply` sees with the reply's
  // bulk payload. Returns the
  // reply's errno (0: success), or -1 when the server closed the connection.
  int Call(const Caller& caller, const Build& build, const OnReply& on_reply = nullptr,
           std::string bulk = {});
  // Opens a new session; true when welcomed.
  bool Hello(const std::string& client_name);
  bool Renew() {
    return Call({}, [](wire::Request::Builder r) { r.setRenew(); }) == 0;
  }

 private:
  bool SendAll(const WireFrame& w);
  bool RecvSome();  // into reader_ (through the channel); false once closed
  bool SecureHandshake(const std::string& key_file);

  int fd_ = -1;
  std::unique_ptr<SecureChannel> channel_;
  FrameReader reader_;
  size_t bytes_received_ = 0;
  bool connected_ = false;
  uint64_t next_id_ = 1;
  int recalls_ = 0;
  uint64_t inodes_first_ = 0;
};

}  // namespace cohfs::test
