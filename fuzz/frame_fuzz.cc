// FuzzFrameReader: an arbitrary byte stream through FrameReader, received in
// chunks of fuzzed sizes, as the server receives it (BoundedTail, resized to
// NeededCapacity as the reactor does) or as the client does (WritableTail).
//
// Input: mode byte (bit 0: bounded), a count k (< 16) and k little-endian
// u16 chunk sizes used in turn (none: the stream at once), then the stream.
// Checked: the frames and the final outcome (EPROTO or waiting for more) are
// those of the same stream parsed in one piece; every accepted header encodes
// back to its own bytes; the bounded tail is never empty.
#include <algorithm>
#include <cstring>
#include <vector>

#include "common/check.h"
#include "fuzz/fuzz_input.h"
#include "fuzz/fuzz_targets.h"
#include "protocol/frame.h"

namespace cohfs::fuzz {
namespace {

struct Parsed {
  std::vector<InFrame> frames;
  bool failed = false;  // EPROTO: the peer would be dropped
};

// Takes every complete frame; each accepted header round-trips.
void Drain(FrameReader& reader, Parsed* out) {
  while (!out->failed) {
    auto next = reader.Next();
    if (!next.ok()) {
      CHECK(next.errno_value() == EPROTO);
      out->failed = true;
      return;
    }
    if (!next->has_value()) return;
    InFrame& f = **next;
    char header[kFrameHeaderBytes];
    EncodeFrameHeader(f.header, header);
    FrameHeader back;
    CHECK(DecodeFrameHeader(header, &back).ok());
    CHECK(back.message_bytes == f.header.message_bytes && back.bulk_bytes == f.header.bulk_bytes);
    CHECK(f.message.size() * sizeof(capnp::word) == f.header.message_bytes);
    CHECK(f.bulk.size() == f.header.bulk_bytes);
    out->frames.push_back(std::move(f));
  }
}

// Receives `n` bytes into the reader, as much as its tail takes at a time.
void Receive(FrameReader& reader, bool bounded, const uint8_t* p, size_t n, Parsed* out) {
  while (n > 0 && !out->failed) {
    size_t avail = 0;
    char* tail;
    if (bounded) {
      if (reader.NeededCapacity() > reader.capacity_bytes()) {
        reader.Resize(reader.NeededCapacity());
      }
      tail = reader.BoundedTail(&avail);
      CHECK(avail > 0);
    } else {
      tail = reader.WritableTail(n, &avail);  // the client's way: room for it all
    }
    size_t take = std::min(avail, n);
    std::memcpy(tail, p, take);
    reader.CommitReceived(take);
    p += take;
    n -= take;
    Drain(reader, out);
    if (bounded && reader.NeededCapacity() < reader.capacity_bytes()) {
      reader.Resize(reader.NeededCapacity());  // the frame is out: its room goes back
    }
  }
}

bool SameFrames(const Parsed& a, const Parsed& b) {
  if (a.failed != b.failed || a.frames.size() != b.frames.size()) return false;
  for (size_t i = 0; i < a.frames.size(); i++) {
    const InFrame& x = a.frames[i];
    const InFrame& y = b.frames[i];
    if (x.header.kind != y.header.kind || x.header.request_id != y.header.request_id ||
        x.bulk != y.bulk || x.message.size() != y.message.size() ||
        std::memcmp(x.message.begin(), y.message.begin(), x.message.asBytes().size()) != 0) {
      return false;
    }
  }
  return true;
}

}  // namespace

void FuzzFrameReader(const uint8_t* data, size_t size) {
  FuzzInput in(data, size);
  const bool bounded = in.Bool();
  std::vector<size_t> chunks(in.U8() % 16);
  for (size_t& c : chunks) c = std::max<uint16_t>(in.Int<uint16_t>(), 1);
  const uint8_t* stream = data + (size - in.remaining());
  const size_t stream_bytes = in.remaining();

  Parsed whole;
  FrameReader one;
  Receive(one, /*bounded=*/false, stream, stream_bytes, &whole);

  Parsed split;
  FrameReader reader;
  size_t at = 0;
  for (size_t i = 0; at < stream_bytes && !split.failed; i++) {
    size_t n =
        chunks.empty() ? stream_bytes : std::min(chunks[i % chunks.size()], stream_bytes - at);
    Receive(reader, bounded, stream + at, n, &split);
    at += n;
  }
  CHECK_MSG(SameFrames(whole, split), "a split stream parsed differently");
}

}  // namespace cohfs::fuzz
