#include "protocol/frame.h"

#include <capnp/message.h>
#include <gtest/gtest.h>

#include <bit>
#include <cstring>

#include "common/limits.h"
#include "protocol/codec.h"

namespace cohfs {
namespace {

OutFrame SampleRequest(RequestId id, std::string bulk = {}) {
  capnp::MallocMessageBuilder m;
  auto r = m.initRoot<wire::Request>();
  Caller c;
  c.uid = 1000;
  c.gid = 100;
  c.groups = {4, 27};
  ToWire(c, r.initCaller());
  auto l = r.initLookup();
  l.setParent(1);
  l.setName(AsData("hello"));
  return EncodeFrame(FrameKind::kRequest, id, m, std::move(bulk));
}

std::string Flatten(const OutFrame& f) {
  std::vector<iovec> iov;
  f.AppendIovecs(0, &iov);
  std::string s;
  for (auto& v : iov) s.append(static_cast<const char*>(v.iov_base), v.iov_len);
  return s;
}

void Feed(FrameReader& r, const std::string& bytes) {
  size_t avail = 0;
  char* tail = r.WritableTail(bytes.size(), &avail);
  ASSERT_GE(avail, bytes.size());
  std::memcpy(tail, bytes.data(), bytes.size());
  r.CommitReceived(bytes.size());
}

TEST(Frame, HeaderGoldenVector) {
  FrameHeader h;
  h.kind = FrameKind::kReply;
  h.request_id = RequestId(0x0102030405060708ull);
  h.message_bytes = 16;
  h.bulk_bytes = 5;
  char out[kFrameHeaderBytes];
  EncodeFrameHeader(h, out);
  const unsigned char expect[kFrameHeaderBytes] = {'C', 'H', 'F', 'S', 2,  0, 0, 0, 8, 7, 6, 5,
                                                   4,   3,   2,   1,   16, 0, 0, 0, 5, 0, 0, 0};
  EXPECT_EQ(std::memcmp(out, expect, sizeof(expect)), 0);
  FrameHeader back;
  ASSERT_TRUE(DecodeFrameHeader(out, &back).ok());
  EXPECT_EQ(back.request_id, h.request_id);
  EXPECT_EQ(back.kind, FrameKind::kReply);
  EXPECT_EQ(back.message_bytes, 16u);
  EXPECT_EQ(back.bulk_bytes, 5u);
}

// A recall (frame kind 3, request id 0): the whole frame, Cap'n Proto words included.
TEST(Frame, RecallGoldenVector) {
  OutFrame f = EncodeRecall(InodeId(0x2a), LockMode::kShared);
  std::vector<iovec> iov;
  f.AppendIovecs(0, &iov);
  std::string bytes;
  for (const iovec& v : iov) bytes.append(static_cast<const char*>(v.iov_base), v.iov_len);
  const unsigned char expect[] = {
      'C', 'H', 'F', 'S', 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0, 0, 0, 0, 0, 0,
      // segment table: 1 segment of 3 words; root pointer: struct, 2 data words, 0 pointers
      0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0x2a, 0, 0, 0, 0, 0, 0, 0,  // ino
      1, 0, 0, 0, 0, 0, 0, 0};                                                    // mode = shared
  ASSERT_EQ(bytes.size(), sizeof(expect));
  EXPECT_EQ(std::memcmp(bytes.data(), expect, sizeof(expect)), 0);
  FrameReader r;
  Feed(r, bytes);
  auto next = r.Next();
  ASSERT_TRUE(next.ok() && next->has_value());
  EXPECT_EQ((**next).header.kind, FrameKind::kRecall);
  auto decoded = DecodedRecall::Decode(std::move(**next));
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ((*decoded)->root().getIno(), 0x2au);
  EXPECT_EQ(FromWire((*decoded)->root().getMode()), LockMode::kShared);
}

// Version 3: a commit whose one change (an unlink) carries `nowNs` and
// `withNext`. The whole frame, Cap'n Proto words included, as 64-bit words.
// Version 4's fields took holes in Request's union; version 5's repliedBelow
// made Request 10 data words, version 6's reclaim.givingBack and
// reclaim.fileLocks 5 pointers; version 7's serverStatus took holes (the
// layout of every other request is unchanged).
TEST(Frame, CommitGoldenVectorVersion7) {
  static_assert(std::endian::native == std::endian::little, "the words below are little-endian");
  EXPECT_EQ(wire::PROTOCOL_VERSION, 7u);
  capnp::MallocMessageBuilder m;
  auto ops = m.initRoot<wire::Request>().initCommit(1);
  ops[0].setWithNext(true);
  auto u = ops[0].initUnlink();
  u.setParent(1);
  u.setNowNs(5);
  std::string bytes = Flatten(EncodeFrame(FrameKind::kRequest, RequestId(9), m));
  const unsigned char header[] = {'C', 'H', 'F', 'S', 1,   0, 0, 0, 9, 0, 0, 0,
                                  0,   0,   0,   0,   8,   1, 0, 0, 0, 0, 0, 0};
  uint64_t words[33] = {};
  words[0] = 32ull << 32;                        // segment table: 1 segment of 32 words
  words[1] = (10ull << 32) | (5ull << 48);       // root: struct of 10 data words, 5 pointers
  words[3] = 30;                                 // union discriminant: commit
  words[13] = 13 | (127ull << 32);               // commit: composite list of 15 words
  words[17] = 4 | (10ull << 32) | (5ull << 48);  // list tag: 1 element of 10 + 5 words
  words[18] = 1;                                 // unlink.parent
  words[19] = 9 | (2ull << 16);                  // discriminant unlink; withNext (bit 81)
  words[20] = 5;                                 // unlink.nowNs
  ASSERT_EQ(bytes.size(), sizeof(header) + sizeof(words));
  EXPECT_EQ(std::memcmp(bytes.data(), header, sizeof(header)), 0);
  EXPECT_EQ(std::memcmp(bytes.data() + sizeof(header), words, sizeof(words)), 0);
}

// Version 4: a written-behind write carries the grant it uses and the grant
// the client wants; its data is the bulk payload.
TEST(Frame, GrantedWriteGoldenVectorVersion6) {
  capnp::MallocMessageBuilder m;
  auto w = m.initRoot<wire::Request>().initWrite();
  w.setIno(5);
  w.setOffset(8192);
  w.setGrantBytes(3 * 4096);
  w.setWantGrant(128ull << 20);
  std::string bytes = Flatten(EncodeFrame(FrameKind::kRequest, RequestId(9), m, "data"));
  const unsigned char header[] = {'C', 'H', 'F', 'S', 1,   0, 0, 0, 9, 0, 0, 0,
                                  0,   0,   0,   0,   136, 0, 0, 0, 4, 0, 0, 0};
  uint64_t words[17] = {};
  words[0] = 16ull << 32;                   // segment table: 1 segment of 16 words
  words[1] = (10ull << 32) | (5ull << 48);  // root: struct of 10 data words, 5 pointers
  words[2] = 5;                             // write.ino
  words[3] = 14;                            // union discriminant: write
  words[4] = 8192;                          // write.offset
  words[6] = 3 * 4096;                      // write.grantBytes
  words[7] = 128ull << 20;                  // write.wantGrant
  ASSERT_EQ(bytes.size(), sizeof(header) + sizeof(words) + 4);
  EXPECT_EQ(std::memcmp(bytes.data(), header, sizeof(header)), 0);
  EXPECT_EQ(std::memcmp(bytes.data() + sizeof(header), words, sizeof(words)), 0);
  EXPECT_EQ(bytes.substr(sizeof(header) + sizeof(words)), "data");  // the bulk payload
}

// Version 5: a reconnecting client's hello resumes its session; every
// request says which replies the client has (repliedBelow).
TEST(Frame, ResumingHelloGoldenVectorVersion6) {
  capnp::MallocMessageBuilder m;
  auto r = m.initRoot<wire::Request>();
  r.setRepliedBelow(7);
  auto h = r.initHello();
  h.setResumeSession(3);
  h.setResumeKey(0x1234);
  std::string bytes = Flatten(EncodeFrame(FrameKind::kRequest, RequestId(0), m));
  const unsigned char header[] = {'C', 'H', 'F', 'S', 1,   0, 0, 0, 0, 0, 0, 0,
                                  0,   0,   0,   0,   136, 0, 0, 0, 0, 0, 0, 0};
  uint64_t words[17] = {};
  words[0] = 16ull << 32;                   // segment table: 1 segment of 16 words
  words[1] = (10ull << 32) | (5ull << 48);  // root: struct of 10 data words, 5 pointers
  words[6] = 3;                             // hello.resumeSession (discriminant 0: hello)
  words[7] = 0x1234;                        // hello.resumeKey
  words[11] = 7;                            // repliedBelow
  ASSERT_EQ(bytes.size(), sizeof(header) + sizeof(words));
  EXPECT_EQ(std::memcmp(bytes.data(), header, sizeof(header)), 0);
  EXPECT_EQ(std::memcmp(bytes.data() + sizeof(header), words, sizeof(words)), 0);
}

// Version 7: `cohfs status` sends serverStatus instead of a hello.
TEST(Frame, ServerStatusGoldenVectorVersion7) {
  capnp::MallocMessageBuilder m;
  auto s = m.initRoot<wire::Request>().initServerStatus();
  s.setVersionMin(7);
  s.setVersionMax(9);
  std::string bytes = Flatten(EncodeFrame(FrameKind::kRequest, RequestId(0), m));
  const unsigned char header[] = {'C', 'H', 'F', 'S', 1,   0, 0, 0, 0, 0, 0, 0,
                                  0,   0,   0,   0,   136, 0, 0, 0, 0, 0, 0, 0};
  uint64_t words[17] = {};
  words[0] = 16ull << 32;                   // segment table: 1 segment of 16 words
  words[1] = (10ull << 32) | (5ull << 48);  // root: struct of 10 data words, 5 pointers
  words[3] = 38 | (7ull << 32);             // discriminant 38: serverStatus; versionMin
  words[5] = 9;                             // versionMax
  ASSERT_EQ(bytes.size(), sizeof(header) + sizeof(words));
  EXPECT_EQ(std::memcmp(bytes.data(), header, sizeof(header)), 0);
  EXPECT_EQ(std::memcmp(bytes.data() + sizeof(header), words, sizeof(words)), 0);
}

TEST(Frame, RoundTripThroughReaderByteByByte) {
  std::string wire =
      Flatten(SampleRequest(RequestId(7), "bulk-data")) + Flatten(SampleRequest(RequestId(8)));
  FrameReader r;
  std::vector<InFrame> frames;
  for (char c : wire) {
    Feed(r, std::string(1, c));
    auto next = r.Next();
    ASSERT_TRUE(next.ok());
    if (next->has_value()) frames.push_back(std::move(**next));
  }
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(frames[0].header.request_id, RequestId(7));
  EXPECT_EQ(frames[0].bulk, "bulk-data");
  EXPECT_EQ(frames[1].header.request_id, RequestId(8));
  auto decoded = DecodedRequest::Decode(std::move(frames[0]));
  ASSERT_TRUE(decoded.ok());
  auto root = (*decoded)->root();
  ASSERT_TRUE(root.isLookup());
  EXPECT_EQ(AsView(root.getLookup().getName()), "hello");
  Caller c = FromWire(root.getCaller());
  EXPECT_EQ(c.uid, 1000u);
  EXPECT_EQ(c.groups, (std::vector<uint32_t>{4, 27}));
}

TEST(Frame, TruncatedFrameWaitsForMore) {
  std::string wire = Flatten(SampleRequest(RequestId(1)));
  FrameReader r;
  Feed(r, wire.substr(0, wire.size() - 1));
  auto next = r.Next();
  ASSERT_TRUE(next.ok());
  EXPECT_FALSE(next->has_value());
}

TEST(Frame, RejectsBadHeaders) {
  std::string good = Flatten(SampleRequest(RequestId(1)));
  auto expect_bad = [](std::string bytes, const char* what) {
    FrameReader r;
    Feed(r, bytes);
    auto next = r.Next();
    ASSERT_FALSE(next.ok()) << what;
    EXPECT_EQ(next.errno_value(), EPROTO) << what;
  };
  std::string s = good;
  s[0] = 'X';
  expect_bad(s, "magic");
  s = good;
  s[4] = 9;
  expect_bad(s, "kind");
  s = good;
  s[6] = 1;
  expect_bad(s, "reserved");
  s = good;
  uint32_t odd = 12;
  std::memcpy(&s[16], &odd, 4);
  expect_bad(s, "unaligned message length");
  s = good;
  uint32_t huge = kMaxMessageBytes + 8;
  std::memcpy(&s[16], &huge, 4);
  expect_bad(s, "oversized message");
  s = good;
  uint32_t big_bulk = kMaxBulkBytes + 1;
  std::memcpy(&s[20], &big_bulk, 4);
  expect_bad(s, "oversized bulk");
  s = good;
  uint32_t zero = 0;
  std::memcpy(&s[16], &zero, 4);
  expect_bad(s, "empty message");
}

TEST(Frame, MalformedMessageIsEprotoNotACrash) {
  // A well-framed message full of garbage pointers.
  std::string bytes(24 + 64, '\xff');
  FrameHeader h;
  h.kind = FrameKind::kRequest;
  h.request_id = RequestId(3);
  h.message_bytes = 64;
  EncodeFrameHeader(h, bytes.data());
  FrameReader r;
  Feed(r, bytes);
  auto next = r.Next();
  ASSERT_TRUE(next.ok());
  ASSERT_TRUE(next->has_value());
  auto decoded = DecodedRequest::Decode(std::move(**next));
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.errno_value(), EPROTO);
}

TEST(Frame, DeeplyNestedOrHugeListsAreRejected) {
  // A list pointer claiming 2^29 elements in a tiny message.
  uint64_t words[4] = {};
  // Segment table: one segment of 3 words.
  uint64_t table = uint64_t(3) << 32;
  words[0] = table;
  // Root struct pointer: offset 0, data 0 words, 1 pointer.
  uint64_t root = (uint64_t(1) << 48);
  words[1] = root;
  // Its pointer field: a list of 8-byte elements, count 2^29-1, far past the end.
  uint64_t list = 1 | (uint64_t(5) << 32) | (uint64_t((1u << 29) - 1) << 35);
  words[2] = list;
  InFrame f;
  f.header.kind = FrameKind::kRequest;
  f.header.message_bytes = sizeof(words);
  f.message = kj::heapArray<capnp::word>(4);
  std::memcpy(f.message.begin(), words, sizeof(words));
  auto decoded = DecodedRequest::Decode(std::move(f));
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.errno_value(), EPROTO);
}

// What the server's reactor relies on: BoundedTail never grows the buffer,
// NeededCapacity says how much a large frame takes once its header is in,
// and Resize keeps what is buffered.
TEST(Frame, BoundedReaderGrowsOnlyWhenToldAndShrinksBack) {
  std::string bulk(3 * FrameReader::kInitialBufferBytes, 'b');
  std::string big = Flatten(SampleRequest(RequestId(7), bulk));
  std::string small = Flatten(SampleRequest(RequestId(8)));
  FrameReader r;
  EXPECT_EQ(r.NeededCapacity(), FrameReader::kInitialBufferBytes);
  size_t fed = 0;
  auto feed_bounded = [&](const std::string& bytes, size_t* at) {
    size_t avail = 0;
    char* tail = r.BoundedTail(&avail);
    size_t n = std::min(avail, bytes.size() - *at);
    std::memcpy(tail, bytes.data() + *at, n);
    r.CommitReceived(n);
    *at += n;
  };
  feed_bounded(big, &fed);
  EXPECT_EQ(r.capacity_bytes(), FrameReader::kInitialBufferBytes);  // full, never grown
  EXPECT_EQ(fed, FrameReader::kInitialBufferBytes);
  ASSERT_EQ(r.NeededCapacity(), big.size());
  auto none = r.Next();
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  r.Resize(r.NeededCapacity());
  EXPECT_EQ(r.capacity_bytes(), big.size());
  while (fed < big.size()) feed_bounded(big, &fed);
  EXPECT_EQ(r.capacity_bytes(), big.size());
  size_t small_fed = 0;
  auto frame = r.Next();
  ASSERT_TRUE(frame.ok());
  ASSERT_TRUE(frame->has_value());
  EXPECT_EQ((*frame)->bulk, bulk);
  feed_bounded(small, &small_fed);
  r.Resize(r.NeededCapacity());  // back down, the next frame kept
  EXPECT_EQ(r.capacity_bytes(), FrameReader::kInitialBufferBytes);
  auto next = r.Next();
  ASSERT_TRUE(next.ok());
  ASSERT_TRUE(next->has_value());
  EXPECT_EQ((*next)->header.request_id, RequestId(8));
  EXPECT_EQ(SampleRequest(RequestId(9)).request_id(), RequestId(9));
}

}  // namespace
}  // namespace cohfs
