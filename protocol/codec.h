// Codec: the only place that builds or reads Cap'n Proto messages' framing and
// converts wire structs to common/fs_types.h. Readers get traversal and nesting
// limits and are validated in full before use; a Cap'n Proto exception never
// escapes this module's guards (GuardDecode).
#pragma once

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/exception.h>

#include <memory>
#include <string>

#include "common/file_locks.h"
#include "common/fs_types.h"
#include "common/status.h"
#include "protocol/cohfs.capnp.h"
#include "protocol/frame.h"

namespace cohfs {

// Encodes one frame from a finished message.
OutFrame EncodeFrame(FrameKind kind, RequestId id, capnp::MessageBuilder& message,
                     std::string bulk = {});

// A received message, validated against the limits. Owns the frame's words.
template <typename Root>
class DecodedMessage {
 public:
  static Result<std::unique_ptr<DecodedMessage>> Decode(InFrame frame);
  typename Root::Reader root() const { return root_; }
  InFrame& frame() { return frame_; }

 private:
  explicit DecodedMessage(InFrame frame);
  InFrame frame_;
  std::unique_ptr<capnp::FlatArrayMessageReader> reader_;
  typename Root::Reader root_;
};

using DecodedRequest = DecodedMessage<wire::Request>;
using DecodedReply = DecodedMessage<wire::Reply>;
using DecodedRecall = DecodedMessage<wire::Recall>;

// What a reply to `request` is expected to take on the wire: its read length
// for a read, a few KiB for the rest. Reserved while the request is in flight.
size_t ExpectedReplyBytes(const DecodedRequest& request);

// A recall frame (server -> client): give up `ino` down to `keep`.
OutFrame EncodeRecall(InodeId ino, LockMode keep);

// Runs `f` (which reads a decoded message); a Cap'n Proto exception becomes
// EPROTO instead of crossing the module boundary.
template <typename F>
Status GuardDecode(F&& f) {
  try {
    return f();
  } catch (const kj::Exception& e) {
    return Status::Error(EPROTO, std::string("malformed message: ") + e.getDescription().cStr());
  }
}

wire::LockMode ToWire(LockMode m);
LockMode FromWire(wire::LockMode m);
void ToWire(const Attr& a, wire::Attr::Builder b);
Attr FromWire(wire::Attr::Reader r);
void ToWire(const Caller& c, wire::Caller::Builder b);
// `request` as a hello of this protocol version from `client_name`, asking
// for a space grant of `want_grant` bytes (a resume sets its session after).
wire::Request::Hello::Builder InitHello(wire::Request::Builder request,
                                        std::string_view client_name, uint64_t want_grant);
Caller FromWire(wire::Caller::Reader r);
void ToWire(const FsStat& s, wire::FsStat::Builder b);
FsStat FromWire(wire::FsStat::Reader r);
void ToWire(const DirEntry& e, wire::Entry::Builder b);
DirEntry FromWire(wire::Entry::Reader r);
void ToWire(InodeId ino, const SetAttrRequest& r, wire::Request::SetAttr::Builder b);
SetAttrRequest FromWire(wire::Request::SetAttr::Reader r);  // the inode: r.getIno()
// A file lock of `client` (flock locks cover the whole file); its inode: r.getIno().
FileLock FromWire(ClientId client, wire::FileLock::Reader r);
void ToWire(InodeId ino, const FileLock& l, wire::FileLock::Builder b);

inline std::string_view AsView(capnp::Data::Reader d) {
  return std::string_view(reinterpret_cast<const char*>(d.begin()), d.size());
}
inline capnp::Data::Reader AsData(std::string_view s) {
  return capnp::Data::Reader(reinterpret_cast<const capnp::byte*>(s.data()), s.size());
}

}  // namespace cohfs
