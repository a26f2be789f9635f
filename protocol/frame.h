// Frames on a cohfs connection: a fixed 24-byte header, one Cap'n Proto
// message (whole words), then an optional bulk payload (file data).
//
//   0  u32 magic "CHFS"     8  u64 request id
//   4  u8  kind             16 u32 message bytes (multiple of 8, >= 8)
//   5  u8  flags (0)        20 u32 bulk bytes
//   6  u16 reserved (0)
//
// All fields little-endian. Every length is checked against common/limits.h on
// the way out (CHECK: a bug) and on the way in (EPROTO: a hostile peer).
#pragma once

#include <capnp/common.h>
#include <kj/array.h>
#include <sys/uio.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/ids.h"
#include "common/status.h"

namespace cohfs {

inline constexpr uint32_t kFrameMagic = 0x53464843;  // "CHFS" in little-endian bytes
inline constexpr size_t kFrameHeaderBytes = 24;

enum class FrameKind : uint8_t {
  kRequest = 1,  // client -> server
  kReply = 2,    // server -> client, same request id
  kRecall = 3,   // server -> client, a Recall message (request id 0)
};

struct FrameHeader {
  FrameKind kind = FrameKind::kRequest;
  RequestId request_id;
  uint32_t message_bytes = 0;
  uint32_t bulk_bytes = 0;
};

void EncodeFrameHeader(const FrameHeader& h, char out[kFrameHeaderBytes]);
// EPROTO for a bad magic, kind, reserved bits or an out-of-bounds length.
Status DecodeFrameHeader(const char in[kFrameHeaderBytes], FrameHeader* h);

// A received frame; the message is copied into word-aligned memory, as Cap'n
// Proto readers require.
struct InFrame {
  FrameHeader header;
  kj::Array<capnp::word> message;
  std::string bulk;
};

// An encoded frame ready to send: header, message, bulk.
struct OutFrame {
  char header[kFrameHeaderBytes];
  kj::Array<capnp::word> message;
  std::string bulk;

  size_t total_bytes() const;
  RequestId request_id() const;  // from the header
  // Appends this frame's (up to 3) iovecs, skipping the first `skip` bytes.
  void AppendIovecs(size_t skip, std::vector<iovec>* out) const;
};

// Incremental frame parser for one connection's byte stream.
// WritableTail grows the buffer as a frame needs (a peer we trust: the
// client's view of its server). BoundedTail never grows it: the owner
// Resize()s it to NeededCapacity() once it has charged those bytes to a
// budget, and back down once the frame is out (the server's view of a peer).
// Owner: the thread that receives on the connection.
class FrameReader {
 public:
  static constexpr size_t kInitialBufferBytes = 256 * 1024;

  // A writable tail of at least `min_bytes` to receive into.
  char* WritableTail(size_t min_bytes, size_t* available);
  // The free tail as it is (compacted when short; never empty once Resize()d
  // to NeededCapacity()).
  char* BoundedTail(size_t* available);
  void CommitReceived(size_t bytes);
  // The next complete frame, nullopt if more bytes are needed, or EPROTO.
  Result<std::optional<InFrame>> Next();
  size_t buffered_bytes() const { return end_ - begin_; }
  size_t capacity_bytes() const { return cap_; }
  // The buffer the frame being received needs: the whole frame once its
  // header is in, else kInitialBufferBytes. Only a valid header is trusted
  // (Next() rejects the others).
  size_t NeededCapacity() const;
  // Grows (capacity_bytes() >= bytes afterwards) or shrinks to `bytes`, never
  // below what is buffered.
  void Resize(size_t bytes);

 private:
  void Compact();

  std::unique_ptr<char[]> buf_;
  size_t cap_ = 0;
  size_t begin_ = 0;
  size_t end_ = 0;
};

// A frame as the far end reads it off the wire (its bytes through a
// FrameReader), for simulations, fuzzing and tests that skip the socket.
// Aborts if the bytes are not one whole frame.
InFrame ThroughWire(const OutFrame& frame);

}  // namespace cohfs
