// The simulation's applications and the FUSE adapter they go through: what
// client/fuse_ops.cc does around the core for getattr, setattr (chmod),
// write, read, lookup, create, mkdir and forget, with the kernel's caches in
// SimKernel. A request is sent in one step (FsClient::SendInOrder) and its
// reply absorbed in a later one (FinishOp), as a FUSE thread wakes up later
// than the network thread that received the reply.
#include <sys/stat.h>

#include <algorithm>

#include "tests/sim/sim_world.h"

namespace cohfs::sim {
namespace {

struct Request {
  capnp::MallocMessageBuilder message;
  wire::Request::Builder root;
  Request() : root(message.initRoot<wire::Request>()) { ToWire(Caller{}, root.initCaller()); }
};

const char* const kNames[] = {"a", "b", "c"};

}  // namespace

// The files processes on `c` may use: those its kernel has looked up.
std::vector<InodeId> World::FilesOf(const Client& c) const {
  std::vector<InodeId> out;
  for (InodeId f : files_) {
    auto it = c.kernel.nlookup.find(f);
    if (it != c.kernel.nlookup.end() && it->second > 0) out.push_back(f);
  }
  return out;
}

InodeId World::PickDir() { return dirs_[Pick(static_cast<int>(dirs_.size()))]; }

std::string World::PickName(InodeId dir) {
  int i = Pick(dir == kRootInode ? 6 : 3);
  if (i < 3) return kNames[i];
  return (Pick(2) ? "f" : "d") + std::to_string(i - 3);
}

void World::StartOp(Client& c) {
  std::vector<InodeId> files = FilesOf(c);
  if (files.empty()) return StartLookup(c, kRootInode, "f" + std::to_string(Pick(kFixedFiles)));
  InodeId f = files[Pick(static_cast<int>(files.size()))];
  switch (Pick(10)) {
    case 0:
    case 1:
      return StartStat(c, f);
    case 2:
      return StartChmod(c, f);
    case 3:
    case 4:
      return StartWrite(c, f);
    case 5:
      return StartRead(c, f);
    case 6: {
      InodeId d = PickDir();
      return StartLookup(c, d, PickName(d));
    }
    case 7: {
      InodeId d = PickDir();
      return StartCreate(c, d, kNames[Pick(3)]);
    }
    case 8:
      if (!c.dir.valid()) return StartMkdir(c);
      return Forget(c, f);
    default:
      return Forget(c, f);
  }
}

void World::Send(Client& c, Op op, capnp::MallocMessageBuilder& m, std::string bulk) {
  c.sending_own = true;
  op.ticket = c.core->SendInOrder(m, std::move(bulk), &op.log_seq);
  c.sending_own = false;
  Trace("c" + std::to_string(c.index) + " sends #" + std::to_string(c.rpc->last_request_id()) +
        " for op " + std::to_string(static_cast<int>(op.kind)) + " on " +
        std::to_string(op.ino.value) + (op.mode ? " mode " + std::to_string(op.mode) : ""));
  c.op = std::move(op);
}

void World::FinishOp(Client& c) {
  Result<RpcReply> reply = c.rpc->Wait(c.op->ticket);
  if (reply.ok()) reply->set_log_seq(c.op->log_seq);
  Complete(c, std::move(reply));
  c.op.reset();
}

// ---- the adapter's replies: what the kernel may cache, pinned as FuseOps pins it

void World::ReplyAttr(Client& c, const Attr& attr) {
  FsClient::ReplyPin pin(*c.core, attr.ino, InodeId());
  ObjectCache& cache = c.core->cache();
  c.kernel.TakeAttr(cache.GetAttr(attr.ino).value_or(attr), cache.lock(attr.ino));
}

void World::ReplyEntry(Client& c, InodeId dir, const std::string& name, const Attr& attr) {
  FsClient::ReplyPin pin(*c.core, dir, attr.ino);
  ObjectCache& cache = c.core->cache();
  c.kernel.TakeAttr(cache.GetAttr(attr.ino).value_or(attr), cache.lock(attr.ino));
  if (cache.lock(dir) != LockMode::kNone) {
    cache.NoteKernelName(dir, name);
    c.kernel.entries[{dir, name}] = attr.ino;
  } else {
    c.kernel.entries.erase({dir, name});  // entry_timeout 0
  }
  cache.AddLookup(attr.ino);
  c.kernel.nlookup[attr.ino]++;
}

void World::ReplyNegative(Client& c, InodeId dir, const std::string& name) {
  FsClient::ReplyPin pin(*c.core, dir, InodeId());
  if (c.core->cache().lock(dir) == LockMode::kNone) {
    c.kernel.entries.erase({dir, name});  // entry_timeout 0
    return;
  }
  c.core->cache().NoteKernelName(dir, name);
  c.kernel.entries[{dir, name}] = InodeId();
}

// ---- operations

void World::StartStat(Client& c, InodeId f) {
  Op op(Op::Kind::kStat, f);
  op.mark = modes_[f].size() - 1;
  op.size_floor = size_floor_[f];
  if (auto it = c.kernel.attrs.find(f); it != c.kernel.attrs.end()) {
    Trace("c" + std::to_string(c.index) + " stat from the kernel's cache");
    return SawAttr(c, op, it->second);
  }
  if (auto a = c.core->cache().GetAttr(f)) {
    Trace("c" + std::to_string(c.index) + " stat from the core's cache");
    ReplyAttr(c, *a);
    return SawAttr(c, op, c.core->cache().GetAttr(f).value_or(*a));
  }
  if (!c.core->FlushData(f).ok()) return Fail("flush before getattr failed");
  Request r;
  r.root.setGetAttr(f.value);
  Send(c, std::move(op), r.message);
}

void World::StartChmod(Client& c, InodeId f) {
  Op op(Op::Kind::kChmod, f);
  op.mode = 1 + (next_mode_++ % 4000);
  if (!c.core->FlushData(f).ok()) return Fail("flush before setattr failed");
  SetAttrRequest req;
  req.mask = kSetMode;
  req.mode = S_IFREG | op.mode;
  if (auto local = c.core->SetAttrLocally(f, Caller{}, req)) {
    if (!local->ok()) return Fail("local chmod failed: " + local->status().ToString());
    Trace("c" + std::to_string(c.index) + " chmods " + std::to_string(f.value) + " locally");
    c.unsent_changes[f]++;
    modes_[f].push_back(op.mode);  // it takes effect now
    c.core->WaitForSendWindow();
    return ReplyAttr(c, **local);
  }
  Request r;
  ToWire(f, req, r.root.initSetAttr());
  Send(c, std::move(op), r.message);
}

void World::StartWrite(Client& c, InodeId f) {
  Op op(Op::Kind::kWrite, f);
  op.block = Pick(kBlocks);
  op.data = "w" + std::to_string(++next_stamp_);
  op.data.resize(kStampBytes, '.');
  const uint64_t offset = op.block * kStampBytes;
  if (c.core->cache().lock(f) == LockMode::kExclusive) {  // FsClient::Write buffers it
    Status st = c.core->Write(f, Caller{}, offset, op.data, /*append=*/false);
    if (!st.ok()) return Fail("write behind failed: " + st.ToString());
    Trace("c" + std::to_string(c.index) + " writes " + std::to_string(f.value) + " behind");
    c.unsent_bytes[f] += kStampBytes;
    blocks_[{f, op.block}].push_back(op.data);
    size_floor_[f] = std::max(size_floor_[f], offset + kStampBytes);
    return WroteLocally(c, op);
  }
  if (!c.core->FlushData(f).ok()) return Fail("flush before a write through failed");
  Request r;
  auto w = r.root.initWrite();
  w.setIno(f.value);
  w.setOffset(offset);
  std::string bulk = op.data;
  Send(c, std::move(op), r.message, std::move(bulk));
}

// The kernel's side of a write: its pages take the data, its size goes stale.
void World::WroteLocally(Client& c, const Op& op) {
  c.kernel.attrs.erase(op.ino);
  auto it = c.kernel.pages.find(op.ino);
  if (it == c.kernel.pages.end()) return;
  const size_t offset = op.block * kStampBytes;
  if (it->second.size() < offset + kStampBytes) it->second.resize(offset + kStampBytes, '\0');
  it->second.replace(offset, kStampBytes, op.data);
}

void World::StartRead(Client& c, InodeId f) {
  Op op(Op::Kind::kRead, f);
  op.size_floor = size_floor_[f];
  for (int b = 0; b < kBlocks; b++) op.block_marks.push_back(blocks_[{f, b}].size() - 1);
  if (auto it = c.kernel.pages.find(f); it != c.kernel.pages.end()) {
    return SawData(c, op, it->second);  // keep_cache: the page cache answers
  }
  if (!c.core->FlushData(f).ok()) return Fail("flush before a read failed");
  Request r;
  auto rd = r.root.initRead();
  rd.setIno(f.value);
  rd.setLength(kBlocks * kStampBytes);
  c.core->BeginRead(f);  // never waits here: recalls run whole, in their own steps
  op.gated = true;
  Send(c, std::move(op), r.message);
}

void World::StartLookup(Client& c, InodeId dir, const std::string& name) {
  Op op(Op::Kind::kLookup, dir, name);
  op.mark = names_[{dir, name}];
  if (auto it = c.kernel.entries.find({dir, name}); it != c.kernel.entries.end()) {
    return SawName(c, op, it->second.valid());
  }
  Attr cached;
  switch (c.core->cache().Lookup(dir, name, &cached)) {
    case ObjectCache::LookupResult::kFound:
      ReplyEntry(c, dir, name, cached);
      return SawName(c, op, true);
    case ObjectCache::LookupResult::kNegative:
      ReplyNegative(c, dir, name);
      return SawName(c, op, false);
    case ObjectCache::LookupResult::kUnknown:
      break;
  }
  Request r;
  auto l = r.root.initLookup();
  l.setParent(dir.value);
  l.setName(AsData(name));
  l.setWantLeaf(true);
  Send(c, std::move(op), r.message);
}

void World::StartCreate(Client& c, InodeId dir, const std::string& name) {
  Op op(Op::Kind::kCreate, dir, name);
  auto ino = c.core->NewInode(Caller{});
  if (!ino.ok()) return Fail("no inode number: " + ino.status().ToString());
  op.new_ino = InodeId(*ino);
  if (auto local = c.core->MakeLocally(dir, name, Caller{}, FsClient::NewNode{S_IFREG, {}}, op.new_ino)) {
    if (!local->ok()) {
      if (local->errno_value() != EEXIST)
        return Fail("local create: " + local->status().ToString());
      return SawName(c, op, true);
    }
    Trace("c" + std::to_string(c.index) + " creates " + name + " in " + std::to_string(dir.value) +
          " locally");
    c.unsent_changes[dir]++;
    c.unsent_changes[op.new_ino]++;
    names_[{dir, name}] = true;  // it takes effect now
    files_.push_back(op.new_ino);
    c.born.insert(op.new_ino);
    modes_[op.new_ino] = {0};
    for (int b = 0; b < kBlocks; b++) blocks_[{op.new_ino, b}] = {std::string(kStampBytes, '\0')};
    c.core->WaitForSendWindow();
    return ReplyEntry(c, dir, name, **local);
  }
  Request r;
  auto m = r.root.initMknod();
  m.setParent(dir.value);
  m.setName(AsData(name));
  m.setMode(S_IFREG);
  m.setNewIno(op.new_ino.value);
  Send(c, std::move(op), r.message);
}

void World::StartMkdir(Client& c) {
  Op op(Op::Kind::kMkdir, kRootInode, "d" + std::to_string(c.index));
  auto ino = c.core->NewInode(Caller{});
  if (!ino.ok()) return Fail("no inode number: " + ino.status().ToString());
  op.new_ino = InodeId(*ino);
  c.dir = op.new_ino;  // one mkdir per client
  Request r;
  auto m = r.root.initMkdir();
  m.setParent(kRootInode.value);
  m.setName(AsData(op.name));
  m.setMode(0755);
  m.setNewIno(op.new_ino.value);
  Send(c, std::move(op), r.message);
}

// The kernel forgets a file it no longer needs (every open of it closed).
void World::Forget(Client& c, InodeId f) {
  if (c.kernel.nlookup[f] == 0) return;
  if (!c.core->FlushAndDropData(f).ok()) return Fail("close failed");
  uint64_t n = c.kernel.Evict(f);
  Trace("c" + std::to_string(c.index) + " forgets " + std::to_string(f.value));
  if (c.core->cache().Forget(f, n)) c.core->QueueRelease({f.value});
}

// ---- replies, and what the applications saw

void World::Complete(Client& c, Result<RpcReply> reply) {
  Op& op = *c.op;
  Trace("c" + std::to_string(c.index) + " takes the reply to its op " +
        std::to_string(static_cast<int>(op.kind)));
  const std::string who = "client " + std::to_string(c.index);
  if (op.gated) c.core->EndRead(op.ino);
  if (!reply.ok()) {
    if (op.kind == Op::Kind::kLookup && reply.errno_value() == ENOENT) return SawName(c, op, false);
    if (op.kind == Op::Kind::kCreate && reply.errno_value() == EEXIST) return SawName(c, op, true);
    return Fail(who + ": request failed: " + reply.status().ToString());
  }
  LockMode lock;
  switch (op.kind) {
    case Op::Kind::kStat:
      ReplyAttr(c, c.core->AbsorbAttr(*reply, &lock));
      return SawAttr(c, op, FromWire(reply->root().getAttr()));
    case Op::Kind::kChmod: {
      Attr a = c.core->AbsorbAttr(*reply, &lock);
      if ((FromWire(reply->root().getAttr()).mode & 07777) != op.mode) Fail(who + ": chmod lost");
      return ReplyAttr(c, a);
    }
    case Op::Kind::kWrite:
      c.core->AbsorbAttr(*reply, &lock);
      return WroteLocally(c, op);
    case Op::Kind::kRead: {
      LockMode held = c.core->AbsorbRead(op.ino, *reply);
      if (held != LockMode::kNone) c.kernel.pages[op.ino] = reply->bulk();
      return SawData(c, op, reply->bulk());
    }
    case Op::Kind::kLookup: {
      c.core->AbsorbLookup(op.ino, *reply);
      if (!reply->root().isAttr()) {
        ReplyNegative(c, op.ino, op.name);
        return SawName(c, op, false);
      }
      ReplyEntry(c, op.ino, op.name, c.core->AbsorbAttr(*reply, &lock));
      return SawName(c, op, true);
    }
    case Op::Kind::kCreate:
    case Op::Kind::kMkdir: {
      Attr a = c.core->AbsorbAttr(*reply, &lock);
      c.core->cache().AddName(op.ino, op.name, a.ino);
      // Empty from birth, unless a recall took it before this reply was
      // taken (FuseOps::Mkdir passes no request id here: a bug this found).
      if (op.kind == Op::Kind::kMkdir) {
        c.core->cache().SetDirectory(a.ino, {},
                                     ObjectCache::ReplyOrder(UINT64_MAX, reply->request_id()));
      }
      return ReplyEntry(c, op.ino, op.name, a);
    }
  }
}

void World::SawAttr(Client& c, const Op& op, const Attr& attr) {
  const std::vector<uint32_t>& h = modes_[op.ino];
  const uint32_t mode = attr.mode & 07777;
  Trace("c" + std::to_string(c.index) + " stat " + std::to_string(op.ino.value) + ": mode " +
        std::to_string(mode) + " size " + std::to_string(attr.size));
  if (std::find(h.begin() + static_cast<ptrdiff_t>(op.mark), h.end(), mode) == h.end()) {
    Fail("client " + std::to_string(c.index) + " saw mode " + std::to_string(mode) + " of inode " +
         std::to_string(op.ino.value) + "; the newest before it looked was " +
         std::to_string(h[op.mark]));
  }
  if (attr.size < op.size_floor) {
    Fail("client " + std::to_string(c.index) + " saw size " + std::to_string(attr.size) +
         " of inode " + std::to_string(op.ino.value) + ", written up to " +
         std::to_string(op.size_floor) + " before it looked");
  }
}

void World::SawData(Client& c, const Op& op, const std::string& data) {
  Trace("c" + std::to_string(c.index) + " read " + std::to_string(op.ino.value) + ": " +
        std::to_string(data.size()) + " bytes");
  const std::string who =
      "client " + std::to_string(c.index) + " read inode " + std::to_string(op.ino.value);
  if (data.size() < op.size_floor) {
    return Fail(who + ": " + std::to_string(data.size()) + " bytes, written up to " +
                std::to_string(op.size_floor) + " before it read");
  }
  for (int b = 0; b < kBlocks && (b + 1) * kStampBytes <= data.size(); b++) {
    const std::vector<std::string>& h = blocks_[{op.ino, b}];
    std::string block = data.substr(b * kStampBytes, kStampBytes);
    auto from = h.begin() + static_cast<ptrdiff_t>(op.block_marks[b]);
    if (std::find(from, h.end(), block) == h.end()) {
      return Fail(who + ": block " + std::to_string(b) + " is stale");
    }
  }
}

void World::SawName(Client& c, const Op& op, bool found) {
  Trace("c" + std::to_string(c.index) + " lookup " + op.name + " in " +
        std::to_string(op.ino.value) + (found ? ": found" : ": absent"));
  const std::string what = "client " + std::to_string(c.index) + " looked up '" + op.name +
                           "' in " + std::to_string(op.ino.value);
  if (found && !names_[{op.ino, op.name}]) Fail(what + " and found a name never created");
  if (!found && op.mark) Fail(what + " and missed a name created before it looked");
}

}  // namespace cohfs::sim
