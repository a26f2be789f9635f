// The simulation's applications and the FUSE adapter they go through: what
// client/fuse_ops.cc does around the core for getattr, setattr (chmod),
// write, read, lookup and forget, with the kernel's caches in SimKernel (the
// namespace is in sim_ns_ops.cc). A request is sent in one step (FsClient::SendInOrder) and its
// reply absorbed in a later one (FinishOp), as a FUSE thread wakes up later
// than the network thread that received the reply.
#include <sys/stat.h>

#include <algorithm>

#include "tests/sim/sim_world.h"

namespace cohfs::sim {

// The inodes processes on `c` may use: those its kernel has looked up
// (directories or the others).
std::vector<InodeId> World::FilesOf(const Client& c, bool dirs) const {
  std::vector<InodeId> out;
  for (const auto& [ino, obj] : model_.objs()) {
    auto it = c.kernel.nlookup.find(ino);
    if (obj.dir == dirs && it != c.kernel.nlookup.end() && it->second > 0) out.push_back(ino);
  }
  return out;
}

// A directory the kernel of `c` can name: the root or one it looked up.
InodeId World::PickDir(const Client& c) {
  std::vector<InodeId> dirs = FilesOf(c, /*dirs=*/true);
  if (std::find(dirs.begin(), dirs.end(), kRootInode) == dirs.end()) dirs.push_back(kRootInode);
  return dirs[Pick(static_cast<int>(dirs.size()))];
}

// Half the time a name that exists (removals and renames then do something).
std::string World::PickName(InodeId dir) {
  const std::vector<std::string>& names = Model::NamesIn(dir);
  std::vector<const std::string*> present;
  for (const std::string& n : names) {
    if (model_.Name(dir, n).valid()) present.push_back(&n);
  }
  if (!present.empty() && Pick(2)) return *present[Pick(static_cast<int>(present.size()))];
  return names[Pick(static_cast<int>(names.size()))];
}

void World::StartOp(Client& c) {
  std::vector<InodeId> files = FilesOf(c);
  if (files.empty()) return StartLookup(c, kRootInode, "f" + std::to_string(Pick(kFixedFiles)));
  InodeId f = files[Pick(static_cast<int>(files.size()))];
  switch (int which = Pick(18)) {
    case 0:
      return StartStat(c, f);
    case 1: {
      std::vector<InodeId> dirs = FilesOf(c, /*dirs=*/true);
      return StartStat(c, dirs.empty() ? f : dirs[Pick(static_cast<int>(dirs.size()))]);
    }
    case 2:
      return StartChmod(c, f);
    case 3:
    case 4:
      return StartWrite(c, f);
    case 5:
      return StartRead(c, f);
    case 6:
    case 7: {
      InodeId d = PickDir(c);
      return StartLookup(c, d, PickName(d));
    }
    case 8:
      return Forget(c, f);
    default:
      return StartNamespaceOp(c, which - 9, files);
  }
}

void World::Send(Client& c, Op op, capnp::MallocMessageBuilder& m, std::string bulk) {
  c.sending_own = true;
  op.ticket = c.core->SendInOrder(m, std::move(bulk), &op.log_seq);
  c.sending_own = false;
  op.request_id = c.rpc->last_request_id();
  op.answered_ns = 0;
  Trace("c" + std::to_string(c.index) + " sends #" + std::to_string(op.request_id) + " for op " +
        std::to_string(static_cast<int>(op.kind)) + " on " + std::to_string(op.ino.value) + " " +
        op.name + (op.mode ? " mode " + std::to_string(op.mode) : ""));
  c.op = std::move(op);
}

void World::FinishOp(Client& c) {
  Result<RpcReply> reply = c.rpc->Wait(c.op->ticket);
  if (c.op->stage == Op::Stage::kAcquireFirst || c.op->stage == Op::Stage::kAcquireSecond) {
    return TookAcquire(c, std::move(reply));
  }
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
  const ModelObj& o = model_.Obj(f);
  op.mode_mark = o.modes.size() - 1;
  op.size_mark = o.sizes.size() - 1;
  op.nlink_mark = o.nlinks.size() - 1;
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
    Logged(c, wire::Request::SET_ATTR, {f});
    model_.Chmod(f, op.mode);  // it takes effect now
    c.core->WaitForSendWindow();
    return ReplyAttr(c, **local);
  }
  Request r;
  ToWire(f, req, r.root.initSetAttr());
  op.changes = true;
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
    model_.Write(f, op.block, op.data);
    return WroteLocally(c, op);
  }
  if (!c.core->FlushData(f).ok()) return Fail("flush before a write through failed");
  Request r;
  auto w = r.root.initWrite();
  w.setIno(f.value);
  w.setOffset(offset);
  std::string bulk = op.data;
  op.changes = true;
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
  const ModelObj& o = model_.Obj(f);
  op.size_mark = o.sizes.size() - 1;
  for (int b = 0; b < kBlocks; b++) op.block_marks.push_back(o.blocks.at(b).size() - 1);
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
  op.mark = model_.History(dir, name).size() - 1;
  if (auto it = c.kernel.entries.find({dir, name}); it != c.kernel.entries.end()) {
    return SawName(c, op, it->second);
  }
  Attr cached;
  switch (c.core->cache().Lookup(dir, name, &cached)) {
    case ObjectCache::LookupResult::kFound:
      ReplyEntry(c, dir, name, cached);
      return SawName(c, op, cached.ino);
    case ObjectCache::LookupResult::kNegative:
      ReplyNegative(c, dir, name);
      return SawName(c, op, InodeId());
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
  if (op.changes && !op.applied) return Fail(who + ": a change answered but never applied");
  if (op.changes && op.kind != Op::Kind::kChmod && op.kind != Op::Kind::kWrite) {
    return CompleteChange(c, op, reply);
  }
  if (!reply.ok()) {
    if (op.kind == Op::Kind::kLookup && reply.errno_value() == ENOENT) {
      return SawName(c, op, InodeId());
    }
    // The last name went, and with it (nobody holding it) the inode.
    if (reply.errno_value() == ENOENT && Gone(op.ino)) return;
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
        return SawName(c, op, InodeId());
      }
      Attr a = c.core->AbsorbAttr(*reply, &lock);
      ReplyEntry(c, op.ino, op.name, a);
      return SawName(c, op, a.ino);
    }
    default:
      return Fail(who + ": no reply expected");
  }
}

// `h` from `mark` holds `v`: what was read is the newest value when the
// read began, or a newer one.
template <typename T>
static bool Seen(const std::vector<T>& h, size_t mark, const T& v) {
  return std::find(h.begin() + static_cast<ptrdiff_t>(mark), h.end(), v) != h.end();
}

void World::SawAttr(Client& c, const Op& op, const Attr& attr) {
  const ModelObj& o = model_.Obj(op.ino);
  const uint32_t mode = attr.mode & 07777;
  Trace("c" + std::to_string(c.index) + " stat " + std::to_string(op.ino.value) + ": mode " +
        std::to_string(mode) + " size " + std::to_string(attr.size) + " nlink " +
        std::to_string(attr.nlink));
  const std::string who =
      "client " + std::to_string(c.index) + " saw inode " + std::to_string(op.ino.value) + " with ";
  if (!o.dir && !Seen(o.modes, op.mode_mark, mode)) {
    Fail(who + "mode " + std::to_string(mode) + "; the newest before it looked was " +
         std::to_string(o.modes[op.mode_mark]));
  } else if (!Seen(o.sizes, op.size_mark, attr.size)) {
    Fail(who + "size " + std::to_string(attr.size) + "; the newest before it looked was " +
         std::to_string(o.sizes[op.size_mark]));
  } else if (!Seen(o.nlinks, op.nlink_mark, attr.nlink)) {
    Fail(who + std::to_string(attr.nlink) + " links; the newest before it looked was " +
         std::to_string(o.nlinks[op.nlink_mark]));
  }
}

void World::SawData(Client& c, const Op& op, const std::string& data) {
  Trace("c" + std::to_string(c.index) + " read " + std::to_string(op.ino.value) + ": " +
        std::to_string(data.size()) + " bytes");
  const std::string who =
      "client " + std::to_string(c.index) + " read inode " + std::to_string(op.ino.value);
  const ModelObj& o = model_.Obj(op.ino);
  if (!Seen(o.sizes, op.size_mark, static_cast<uint64_t>(data.size()))) {
    return Fail(who + ": " + std::to_string(data.size()) +
                " bytes; the newest size before it read was " +
                std::to_string(o.sizes[op.size_mark]));
  }
  for (int b = 0; b < kBlocks && (b + 1) * kStampBytes <= data.size(); b++) {
    if (!Seen(o.blocks.at(b), op.block_marks[b], data.substr(b * kStampBytes, kStampBytes))) {
      return Fail(who + ": block " + std::to_string(b) + " is stale");
    }
  }
}

void World::SawName(Client& c, const Op& op, InodeId found) {
  Trace("c" + std::to_string(c.index) + " lookup " + op.name + " in " +
        std::to_string(op.ino.value) + ": " + std::to_string(found.value));
  const std::vector<InodeId>& h = model_.History(op.ino, op.name);
  if (!Seen(h, op.mark, found)) {
    Fail("client " + std::to_string(c.index) + " looked up '" + op.name + "' in " +
         std::to_string(op.ino.value) + " and found inode " + std::to_string(found.value) +
         "; the newest before it looked was " + std::to_string(h[op.mark].value));
  }
}

}  // namespace cohfs::sim
