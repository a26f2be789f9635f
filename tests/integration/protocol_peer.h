// A client written by hand that speaks the protocol directly: no FUSE, no
// cache, no local checks. It sends whatever a test builds, in the name of any
// caller, and reads frames until the reply; recalls are counted and never
// answered (a stuck or hostile client).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "common/fs_types.h"
#include "protocol/codec.h"

namespace cohfs::test {

class ProtocolPeer {
 public:
  explicit ProtocolPeer(int port);  // connects to the server on loopback
  ~ProtocolPeer();
  ProtocolPeer(const ProtocolPeer&) = delete;
  ProtocolPeer& operator=(const ProtocolPeer&) = delete;

  bool connected() const { return connected_; }
  void Disconnect();  // shuts the socket down; a blocked Call returns -1
  int recalls() const { return recalls_; }
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
  bool ReadAll(void* p, size_t n);

  int fd_ = -1;
  bool connected_ = false;
  uint64_t next_id_ = 1;
  int recalls_ = 0;
  uint64_t inodes_first_ = 0;
};

}  // namespace cohfs::test
