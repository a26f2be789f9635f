// FuzzCodec: arbitrary bytes as the message of a frame, decoded as a Request,
// a Reply and a Recall (protocol/codec.h), then read the way the server and
// the client read them, through the codec's conversions.
//
// Checked: no Cap'n Proto exception escapes the codec (an escape aborts the
// process); a decoded message reads within GuardDecode (a read past the
// traversal budget is an EPROTO there, never a crash); every conversion
// round-trips (ToWire(FromWire(x)) encodes as x's conversion did); a
// request's expected reply stays within the bulk limit.
#include <capnp/message.h>
#include <capnp/serialize.h>

#include <algorithm>
#include <cstring>

#include "common/check.h"
#include "common/limits.h"
#include "fuzz/fuzz_targets.h"
#include "protocol/codec.h"

namespace cohfs::fuzz {
namespace {

kj::Array<capnp::word> Flat(capnp::MallocMessageBuilder& m) { return capnp::messageToFlatArray(m); }

bool SameWords(const kj::Array<capnp::word>& a, const kj::Array<capnp::word>& b) {
  return a.size() == b.size() && std::memcmp(a.begin(), b.begin(), a.asBytes().size()) == 0;
}

// ToWire after FromWire gives back what ToWire gave the first time.
template <typename Wire, typename Reader>
void RoundTrip(Reader r) {
  auto value = FromWire(r);
  capnp::MallocMessageBuilder first;
  ToWire(value, first.initRoot<Wire>());
  auto again = FromWire(first.getRoot<Wire>().asReader());
  capnp::MallocMessageBuilder second;
  ToWire(again, second.initRoot<Wire>());
  CHECK_MSG(SameWords(Flat(first), Flat(second)), "a conversion does not round-trip");
}

void RoundTripSetAttr(wire::Request::SetAttr::Reader r) {
  capnp::MallocMessageBuilder first, second;
  ToWire(InodeId(r.getIno()), FromWire(r), first.initRoot<wire::Request>().initSetAttr());
  auto back = first.getRoot<wire::Request>().asReader().getSetAttr();
  ToWire(InodeId(back.getIno()), FromWire(back), second.initRoot<wire::Request>().initSetAttr());
  CHECK_MSG(SameWords(Flat(first), Flat(second)), "SetAttr does not round-trip");
}

void ReadRequest(wire::Request::Reader r) {
  RoundTrip<wire::Caller>(r.getCaller());
  switch (r.which()) {
    case wire::Request::HELLO:
      (void)r.getHello().getClientName().size();
      break;
    case wire::Request::SET_ATTR:
      RoundTripSetAttr(r.getSetAttr());
      break;
    case wire::Request::COMMIT:  // nested no deeper than the reader's nesting limit
      for (auto op : r.getCommit()) ReadRequest(op);
      break;
    case wire::Request::RECLAIM:
      for (auto g : r.getReclaim().getLocks()) (void)FromWire(g.getMode());
      break;
    default:
      (void)r.totalSize();
      break;
  }
}

// A reply's budget is the largest message's (the client trusts its server),
// so a list of empty structs may be millions long: its first elements do.
template <typename List, typename F>
void ForFirst(List list, F&& f) {
  for (uint32_t i = 0; i < std::min(list.size(), 1024u); i++) f(list[i]);
}

void ReadReply(wire::Reply::Reader r) {
  (void)r.getMessage().size();
  ForFirst(r.getGrants(), [](auto g) { (void)FromWire(g.getMode()); });
  ForFirst(r.getLeaf(), [](auto e) { RoundTrip<wire::Entry>(e); });
  ForFirst(r.getChanged(), [](auto a) { RoundTrip<wire::Attr>(a); });
  switch (r.which()) {
    case wire::Reply::ATTR:
      RoundTrip<wire::Attr>(r.getAttr());
      break;
    case wire::Reply::ENTRIES:
      ForFirst(r.getEntries(), [](auto e) { RoundTrip<wire::Entry>(e); });
      break;
    case wire::Reply::FS_STAT:
      RoundTrip<wire::FsStat>(r.getFsStat());
      break;
    case wire::Reply::FAILURES:
      ForFirst(r.getFailures(), [](auto f) { (void)f.getMessage().size(); });
      break;
    case wire::Reply::NAMES:
      ForFirst(r.getNames(), [](auto n) { (void)AsView(n); });
      break;
    default:
      (void)r.totalSize();
      break;
  }
}

InFrame FrameOf(FrameKind kind, const uint8_t* data, size_t size) {
  InFrame f;
  f.header.kind = kind;
  f.message = kj::heapArray<capnp::word>((size + sizeof(capnp::word) - 1) / sizeof(capnp::word));
  std::memset(f.message.begin(), 0, f.message.asBytes().size());
  std::memcpy(f.message.begin(), data, size);
  f.header.message_bytes = static_cast<uint32_t>(f.message.asBytes().size());
  return f;
}

// Decodes `data` as a `Decoded` message; if it decodes, reads it with `read`.
template <typename Decoded, typename F>
void DecodeAndRead(FrameKind kind, const uint8_t* data, size_t size, F&& read) {
  auto decoded = Decoded::Decode(FrameOf(kind, data, size));
  if (!decoded.ok()) {
    CHECK(decoded.errno_value() == EPROTO);
    return;
  }
  Status st = GuardDecode([&] { return read(**decoded), Status::Ok(); });
  CHECK(st.ok() || st.errno_value() == EPROTO);
}

}  // namespace

void FuzzCodec(const uint8_t* data, size_t size) {
  if (size == 0 || size > kMaxMessageBytes) return;
  DecodeAndRead<DecodedRequest>(FrameKind::kRequest, data, size, [](DecodedRequest& m) {
    ReadRequest(m.root());
    CHECK(ExpectedReplyBytes(m) <= 4096 + size_t{kMaxBulkBytes});
  });
  DecodeAndRead<DecodedReply>(FrameKind::kReply, data, size,
                              [](DecodedReply& m) { ReadReply(m.root()); });
  DecodeAndRead<DecodedRecall>(FrameKind::kRecall, data, size, [](DecodedRecall& m) {
    (void)m.root().getIno();
    (void)FromWire(m.root().getMode());
  });
}

}  // namespace cohfs::fuzz
