#include "protocol/codec.h"

#include <algorithm>
#include <type_traits>

#include "common/limits.h"

namespace cohfs {
namespace {

// Validation walks the message once and every field read counts again, so
// allow a few passes over the message. A request's budget is its own size's
// (a list of empty structs costs a word an element: without this, a 40-byte
// request could make the server walk millions); the server's replies, which
// the client trusts, get the largest message's.
template <typename Root>
capnp::ReaderOptions Limits(size_t message_words) {
  constexpr size_t kPasses = 8;
  constexpr size_t kMinWords = 64 * 1024;
  capnp::ReaderOptions o;
  if (!std::is_same_v<Root, wire::Request>) message_words = kMaxMessageBytes / sizeof(capnp::word);
  o.traversalLimitInWords = std::max(kMinWords, kPasses * message_words);
  o.nestingLimit = 16;
  return o;
}

}  // namespace

OutFrame EncodeFrame(FrameKind kind, RequestId id, capnp::MessageBuilder& message,
                     std::string bulk) {
  OutFrame f;
  f.message = capnp::messageToFlatArray(message);
  f.bulk = std::move(bulk);
  FrameHeader h;
  h.kind = kind;
  h.request_id = id;
  h.message_bytes = static_cast<uint32_t>(f.message.size() * sizeof(capnp::word));
  h.bulk_bytes = static_cast<uint32_t>(f.bulk.size());
  EncodeFrameHeader(h, f.header);
  return f;
}

OutFrame EncodeRecall(InodeId ino, LockMode keep) {
  capnp::MallocMessageBuilder m;
  auto r = m.initRoot<wire::Recall>();
  r.setIno(ino.value);
  r.setMode(ToWire(keep));
  return EncodeFrame(FrameKind::kRecall, RequestId(0), m);
}

wire::LockMode ToWire(LockMode m) {
  switch (m) {
    case LockMode::kShared:
      return wire::LockMode::SHARED;
    case LockMode::kExclusive:
      return wire::LockMode::EXCLUSIVE;
    default:
      return wire::LockMode::NONE;
  }
}

LockMode FromWire(wire::LockMode m) {
  switch (m) {
    case wire::LockMode::SHARED:
      return LockMode::kShared;
    case wire::LockMode::EXCLUSIVE:
      return LockMode::kExclusive;
    default:
      return LockMode::kNone;
  }
}

template <typename Root>
DecodedMessage<Root>::DecodedMessage(InFrame frame) : frame_(std::move(frame)) {}

template <typename Root>
Result<std::unique_ptr<DecodedMessage<Root>>> DecodedMessage<Root>::Decode(InFrame frame) {
  std::unique_ptr<DecodedMessage> m(new DecodedMessage(std::move(frame)));
  Status st = GuardDecode([&] {
    m->reader_ = std::make_unique<capnp::FlatArrayMessageReader>(
        m->frame_.message.asPtr(), Limits<Root>(m->frame_.message.size()));
    m->root_ = m->reader_->template getRoot<Root>();
    // Walk the whole message once so later field access cannot hit a bad pointer.
    (void)m->root_.totalSize();
    return Status::Ok();
  });
  if (!st.ok()) return st;
  return m;
}

template class DecodedMessage<wire::Request>;
template class DecodedMessage<wire::Reply>;
template class DecodedMessage<wire::Recall>;

size_t ExpectedReplyBytes(const DecodedRequest& request) {
  constexpr size_t kSmallReplyBytes = 4096;
  size_t bulk = 0;
  (void)GuardDecode([&] {
    auto req = request.root();
    if (req.isRead()) bulk = std::min<size_t>(req.getRead().getLength(), kMaxBulkBytes);
    return Status::Ok();
  });
  return kSmallReplyBytes + bulk;
}

void ToWire(const Attr& a, wire::Attr::Builder b) {
  b.setIno(a.ino.value);
  b.setGeneration(a.generation);
  b.setMode(a.mode);
  b.setNlink(a.nlink);
  b.setUid(a.uid);
  b.setGid(a.gid);
  b.setRdev(a.rdev);
  b.setSize(a.size);
  b.setBlocks(a.blocks);
  b.setAtimeNs(a.atime_ns);
  b.setMtimeNs(a.mtime_ns);
  b.setCtimeNs(a.ctime_ns);
  b.setFlags(a.flags);
}

Attr FromWire(wire::Attr::Reader r) {
  Attr a;
  a.ino = InodeId(r.getIno());
  a.generation = r.getGeneration();
  a.mode = r.getMode();
  a.nlink = r.getNlink();
  a.uid = r.getUid();
  a.gid = r.getGid();
  a.rdev = r.getRdev();
  a.size = r.getSize();
  a.blocks = r.getBlocks();
  a.atime_ns = r.getAtimeNs();
  a.mtime_ns = r.getMtimeNs();
  a.ctime_ns = r.getCtimeNs();
  a.flags = r.getFlags();
  return a;
}

wire::Request::Hello::Builder InitHello(wire::Request::Builder request,
                                        std::string_view client_name, uint64_t want_grant) {
  auto h = request.initHello();
  h.setVersionMin(wire::PROTOCOL_VERSION);
  h.setVersionMax(wire::PROTOCOL_VERSION);
  h.setClientName(capnp::Text::Reader(client_name.data(), client_name.size()));
  h.setWantGrant(want_grant);
  return h;
}

void ToWire(const Caller& c, wire::Caller::Builder b) {
  b.setUid(c.uid);
  b.setGid(c.gid);
  b.setPid(c.pid);
  auto g = b.initGroups(static_cast<unsigned>(c.groups.size()));
  for (size_t i = 0; i < c.groups.size(); i++) g.set(static_cast<unsigned>(i), c.groups[i]);
}

Caller FromWire(wire::Caller::Reader r) {
  Caller c;
  c.uid = r.getUid();
  c.gid = r.getGid();
  c.pid = r.getPid();
  for (uint32_t g : r.getGroups()) c.groups.push_back(g);
  return c;
}

void ToWire(InodeId ino, const SetAttrRequest& r, wire::Request::SetAttr::Builder b) {
  b.setIno(ino.value);
  b.setMask(r.mask);
  b.setMode(r.mode);
  b.setUid(r.uid);
  b.setGid(r.gid);
  b.setSize(r.size);
  b.setAtimeNs(r.atime_ns);
  b.setMtimeNs(r.mtime_ns);
  b.setCtimeNs(r.ctime_ns);
  b.setHasOpenHandle(r.has_open_handle);
  b.setNowNs(r.now_ns);
}

SetAttrRequest FromWire(wire::Request::SetAttr::Reader a) {
  SetAttrRequest sr;
  sr.mask = a.getMask();
  sr.mode = a.getMode();
  sr.uid = a.getUid();
  sr.gid = a.getGid();
  sr.size = a.getSize();
  sr.atime_ns = a.getAtimeNs();
  sr.mtime_ns = a.getMtimeNs();
  sr.ctime_ns = a.getCtimeNs();
  sr.has_open_handle = a.getHasOpenHandle();
  sr.now_ns = a.getNowNs();
  return sr;
}

void ToWire(const FsStat& s, wire::FsStat::Builder b) {
  b.setBlockBytes(s.block_bytes);
  b.setTotalBlocks(s.total_blocks);
  b.setFreeBlocks(s.free_blocks);
  b.setTotalInodes(s.total_inodes);
  b.setFreeInodes(s.free_inodes);
  b.setMaxNameBytes(s.max_name_bytes);
}

FsStat FromWire(wire::FsStat::Reader r) {
  FsStat s;
  s.block_bytes = r.getBlockBytes();
  s.total_blocks = r.getTotalBlocks();
  s.free_blocks = r.getFreeBlocks();
  s.total_inodes = r.getTotalInodes();
  s.free_inodes = r.getFreeInodes();
  s.max_name_bytes = r.getMaxNameBytes();
  return s;
}

void ToWire(const DirEntry& e, wire::Entry::Builder b) {
  b.setName(AsData(e.name));
  b.setCookie(e.cookie);
  ToWire(e.attr, b.initAttr());
}

DirEntry FromWire(wire::Entry::Reader r) {
  DirEntry e;
  e.name = std::string(AsView(r.getName()));
  e.cookie = r.getCookie();
  e.attr = FromWire(r.getAttr());
  return e;
}

FileLock FromWire(ClientId client, wire::FileLock::Reader r) {
  FileLock l;
  l.client = client;
  l.owner = r.getOwner();
  l.flock = r.getFlock();
  l.type = r.getType() <= 2 ? static_cast<FileLock::Type>(r.getType()) : FileLock::Type::kUnlock;
  l.start = l.flock ? 0 : r.getStart();
  l.end = l.flock ? FileLock::kToEnd : r.getEnd();
  l.pid = r.getPid();
  return l;
}

void ToWire(InodeId ino, const FileLock& l, wire::FileLock::Builder b) {
  b.setIno(ino.value);
  b.setOwner(l.owner);
  b.setFlock(l.flock);
  b.setType(static_cast<uint8_t>(l.type));
  b.setStart(l.start);
  b.setEnd(l.end);
  b.setPid(l.pid);
}

}  // namespace cohfs
