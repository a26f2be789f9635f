// Writes the seed corpus of the frame_reader and codec targets from messages
// encoded by the real codec, and the regression inputs made by hand:
// fuzz_make_seeds <fuzz>. (The dispatch seeds are a merged corpus of a fuzz
// run: any bytes are a script.)
#include <capnp/message.h>
#include <capnp/schema.h>
#include <capnp/serialize.h>
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "protocol/codec.h"
#include "protocol/cohfs.capnp.h"

namespace cohfs {
namespace {

std::string Flatten(const OutFrame& f) {
  std::vector<iovec> iov;
  f.AppendIovecs(0, &iov);
  std::string s;
  for (const iovec& v : iov) s.append(static_cast<const char*>(v.iov_base), v.iov_len);
  return s;
}

std::string MessageBytes(const OutFrame& f) {
  return std::string(reinterpret_cast<const char*>(f.message.begin()), f.message.asBytes().size());
}

OutFrame Lookup() {
  capnp::MallocMessageBuilder m;
  auto r = m.initRoot<wire::Request>();
  ToWire(Caller{1000, 1000, {4, 27}, 7}, r.initCaller());
  r.initLookup().setParent(1);
  r.getLookup().setName(AsData("hello"));
  r.getLookup().setWantLeaf(true);
  return EncodeFrame(FrameKind::kRequest, RequestId(1), m);
}

OutFrame Write() {
  capnp::MallocMessageBuilder m;
  auto w = m.initRoot<wire::Request>().initWrite();
  w.setIno(1025);
  w.setOffset(4096);
  w.setGrantBytes(8);
  return EncodeFrame(FrameKind::kRequest, RequestId(2), m, "abcdefgh");
}

// A commit of a mkdir and a file made in it (one group), then a rename.
OutFrame Commit() {
  capnp::MallocMessageBuilder m;
  auto ops = m.initRoot<wire::Request>().initCommit(3);
  auto d = ops[0].initMkdir();
  d.setParent(1);
  d.setName(AsData("d"));
  d.setMode(0755);
  d.setNewIno(1025);
  ops[0].setWithNext(true);
  auto f = ops[1].initMknod();
  f.setParent(1025);
  f.setName(AsData("f"));
  f.setMode(0100644);
  f.setNewIno(1026);
  auto r = ops[2].initRename();
  r.setParent(1025);
  r.setName(AsData("f"));
  r.setNewParent(1);
  r.setNewName(AsData("g"));
  return EncodeFrame(FrameKind::kRequest, RequestId(3), m);
}

OutFrame Hello() {
  capnp::MallocMessageBuilder m;
  auto h = m.initRoot<wire::Request>().initHello();
  h.setVersionMin(wire::PROTOCOL_VERSION);
  h.setVersionMax(wire::PROTOCOL_VERSION);
  h.setClientName("seed");
  h.setWantGrant(1 << 20);
  return EncodeFrame(FrameKind::kRequest, RequestId(1), m);
}

// A reply with everything a lookup can carry: attr, grants, leaf, changed.
OutFrame AttrReply() {
  capnp::MallocMessageBuilder m;
  auto r = m.initRoot<wire::Reply>();
  Attr a;
  a.ino = InodeId(1025);
  a.mode = 0100644;
  a.nlink = 1;
  a.size = 4096;
  ToWire(a, r.initAttr());
  auto g = r.initGrants(1);
  g[0].setIno(1025);
  g[0].setMode(wire::LockMode::SHARED);
  ToWire(DirEntry{"f", 3, a}, r.initLeaf(1)[0]);
  r.setLeafComplete(true);
  ToWire(a, r.initChanged(1)[0]);
  return EncodeFrame(FrameKind::kReply, RequestId(1), m);
}

OutFrame FailuresReply() {
  capnp::MallocMessageBuilder m;
  auto f = m.initRoot<wire::Reply>().initFailures(1);
  f[0].setIndex(1);
  f[0].setIno(1026);
  f[0].setErrno(13);
  f[0].setMessage("refused");
  return EncodeFrame(FrameKind::kReply, RequestId(3), m);
}

void Put(const std::string& dir, const std::string& name, const std::string& bytes) {
  mkdir(dir.c_str(), 0755);
  std::ofstream(dir + "/" + name, std::ios::binary) << bytes;
}

// A frame_reader input: mode byte, chunk sizes, then the stream.
std::string Chunked(bool bounded, const std::vector<uint16_t>& chunks, const std::string& stream) {
  std::string s(1, bounded ? '\1' : '\0');
  s += static_cast<char>(chunks.size());
  for (uint16_t c : chunks)
    s += std::string{static_cast<char>(c & 0xff), static_cast<char>(c >> 8)};
  return s + stream;
}

// A commit of `n` empty changes: a list of zero-sized structs, which costs
// its sender one word (the list's tag) however long it claims to be.
std::string EmptyChangesCommit(uint32_t n) {
  using Layout = wire::Request::_capnpPrivate;
  auto commit = capnp::Schema::from<wire::Request>().getFieldByName("commit").getProto();
  const uint32_t data = Layout::dataWordSize, ptrs = Layout::pointerCount;
  std::vector<uint64_t> w(1 + data + ptrs + 1, 0);
  w[0] = (uint64_t{ptrs} << 48) | (uint64_t{data} << 32);  // root: struct at word 1
  const uint32_t discriminant = capnp::Schema::from<wire::Request>()
                                    .getProto()
                                    .getStruct()
                                    .getDiscriminantOffset();  // in 16-bit units
  w[1 + discriminant / 4] |= uint64_t{commit.getDiscriminantValue()} << (16 * (discriminant % 4));
  const uint32_t at = 1 + data + commit.getSlot().getOffset();
  const uint32_t tag = 1 + data + ptrs;
  w[at] = (uint64_t{7} << 32) | (uint64_t{tag - at - 1} << 2) | 1;  // inline composite, 0 words
  w[tag] = uint64_t{n} << 2;                      // n elements of no data and no pointers
  w.insert(w.begin(), uint64_t{w.size()} << 32);  // the segment table: one segment
  return std::string(reinterpret_cast<const char*>(w.data()), w.size() * sizeof(uint64_t));
}

// A dispatch script: a hello on connection 0, then `message` as raw bytes there.
std::string HelloThenRaw(const std::string& message) {
  std::string s = {0, 0, 1, 1, 0};  // conn 0, a request (the hello), version, grant, no resume
  s += {0, 10};                     // conn 0, raw message bytes
  s += {static_cast<char>(message.size() & 0xff), static_cast<char>(message.size() >> 8)};
  return s + message;
}

}  // namespace
}  // namespace cohfs

int main(int argc, char** argv) {
  using namespace cohfs;
  if (argc != 2) {
    fprintf(stderr, "usage: %s <fuzz>\n", argv[0]);
    return 2;
  }
  const std::string out = std::string(argv[1]) + "/corpus";
  const std::string regressions = std::string(argv[1]) + "/regressions";
  const std::string frames = out + "/frame_reader", codec = out + "/codec";
  mkdir(out.c_str(), 0755);
  mkdir(regressions.c_str(), 0755);
  Put(frames, "lookup", Chunked(false, {}, Flatten(Lookup())));
  Put(frames, "two-split", Chunked(true, {1, 7, 24}, Flatten(Write()) + Flatten(Commit())));
  Put(frames, "reply-recall",
      Chunked(false, {5},
              Flatten(AttrReply()) + Flatten(EncodeRecall(InodeId(7), LockMode::kShared))));
  Put(frames, "bad-after-good",
      Chunked(true, {30}, Flatten(Hello()) + "CHFX" + std::string(20, '\0')));
  Put(codec, "lookup", MessageBytes(Lookup()));
  Put(codec, "commit", MessageBytes(Commit()));
  Put(codec, "hello", MessageBytes(Hello()));
  Put(codec, "attr-reply", MessageBytes(AttrReply()));
  Put(codec, "failures-reply", MessageBytes(FailuresReply()));
  Put(codec, "recall", MessageBytes(EncodeRecall(InodeId(7), LockMode::kNone)));
  // A 40-byte commit of a million empty changes took seconds to refuse and a
  // reply too large to send (CHECK); 20000 fit the budget and are refused whole.
  Put(regressions + "/codec", "empty-changes-commit", EmptyChangesCommit(1000000));
  Put(regressions + "/dispatch", "empty-changes-commit", HelloThenRaw(EmptyChangesCommit(1000000)));
  Put(regressions + "/dispatch", "long-empty-commit", HelloThenRaw(EmptyChangesCommit(20000)));
  return 0;
}
