#include "server/dispatch.h"

#include <capnp/message.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>

#include "common/limits.h"
#include "common/log.h"
#include "server/dispatch_ctx.h"
#include "server/lock_needs.h"

namespace cohfs {

Dispatcher::Dispatcher(FileSystem& fs, LockManager& locks, const Volume& volume,
                       const ServerConfig& config)
    : fs_(fs),
      locks_(locks),
      grants_(config.max_grant_bytes),
      volume_(volume),
      config_(config),
      store_(fs.items()) {}

OutFrame Dispatcher::ErrorReply(RequestId id, const Status& status) {
  capnp::MallocMessageBuilder m;
  auto r = m.initRoot<wire::Reply>();
  r.setErrno(status.errno_value());
  r.setMessage(status.message());
  return EncodeFrame(FrameKind::kReply, id, m);
}

OutFrame Dispatcher::SyncReply(RequestId id, const Status& status) {
  if (!status.ok()) return ErrorReply(id, status);
  capnp::MallocMessageBuilder m;
  m.initRoot<wire::Reply>().setNone();
  return EncodeFrame(FrameKind::kReply, id, m);
}

// After a create through the server: the directory's other holders were
// recalled to make it, so it is the creator's to create in locally from now
// on (an untar into an existing directory costs one round trip, not one per file).
void Dispatcher::OwnParent(Ctx& ctx, InodeId parent) {
  ctx.changed.push_back(parent);
  Grant(ctx, parent, LockMode::kExclusive);
}

LockMode Dispatcher::Grant(Ctx& ctx, InodeId ino, LockMode mode) {
  LockMode held = locks_.HeldBy(ctx.session.client, ino);
  if (grace_) {
    held = held >= mode ? held : LockMode::kNone;  // nothing new until all have reclaimed
  } else {
    held = locks_.Grant(ctx.session.client, ino, mode, ctx.now_ms);
  }
  if (held != LockMode::kNone) ctx.grants.emplace_back(ino, held);
  return held;
}

bool Dispatcher::Admit(Session& session, DecodedRequest& request, int64_t now_ms,
                       bool other_clients, std::vector<LockManager::Conflict>* recalls) {
  std::vector<LockNeed> needs;
  bool blocked = false;
  Status st = GuardDecode([&] {
    auto req = request.root();
    if (req.isSetLock() && req.getSetLock().getWait()) {
      // A blocking lock waits for the holder's unlock (or its session's end).
      auto l = req.getSetLock().getLock();
      blocked = file_locks_.Test(InodeId(l.getIno()), FromWire(session.client, l)).has_value();
    }
    if (other_clients) needs = LockNeedsOf(fs_, req);
    return Status::Ok();
  });
  if (!st.ok()) return true;  // Handle answers the malformed request
  if (blocked) return false;
  std::vector<LockManager::Conflict> conflicts;
  for (const LockNeed& n : needs) locks_.Conflicts(session.client, n.ino, n.mode, &conflicts);
  for (const auto& c : conflicts) {
    if (locks_.Recall(c, now_ms)) recalls->push_back(c);
  }
  return conflicts.empty();
}

void Dispatcher::MaybeReclaim(InodeId ino) {
  // In the grace period clients not back yet may reference it: ReclaimOrphans
  // at its end decides.
  if (grace_) return;
  if (locks_.IsHeld(ino) || locks_.IsReferenced(ino)) return;
  Status st = fs_.Reclaim(ino);
  if (!st.ok() && st.errno_value() != ENOENT) {
    LOG(Warn) << "reclaim of inode " << ino.value << ": " << st.ToString();
  }
}

void Dispatcher::ReleaseAndReclaim(ClientId client, InodeId ino) {
  locks_.Release(client, ino);
  locks_.DropRef(client, ino);
  MaybeReclaim(ino);
}

void Dispatcher::EndSession(Session& session, bool forget) {
  file_locks_.ReleaseClient(session.client);
  std::vector<InodeId> held = locks_.ReleaseAll(session.client);
  for (InodeId ino : locks_.DropRefs(session.client)) held.push_back(ino);
  grants_.Drop(session.client);
  if (!forget) return;  // a server stop: the client reclaims after the restart
  for (InodeId ino : held) MaybeReclaim(ino);
  Status st = store_.Drop(session.client.value, session.replays);
  if (!st.ok()) LOG(Warn) << "forgetting session " << session.client.value << ": " << st.ToString();
}

Dispatcher::Outcome Dispatcher::Handle(Session& session, DecodedRequest& request, int64_t now_ms) {
  auto start = std::chrono::steady_clock::now();
  RequestId id = request.frame().header.request_id;
  Ctx ctx(session, request.root(), request.frame().bulk);
  ctx.now_ms = now_ms;
  bool record = false;
  unsigned which = 0;
  Status decoded = GuardDecode([&] {
    session.replied_below = std::max(session.replied_below, request.root().getRepliedBelow());
    record = RecordsReply(request.root().which());
    which = request.root().which();
    return Status::Ok();
  });
  if (decoded.ok() && record) BeginRecording(session, id.value);
  Outcome out = Execute(ctx, request, id);
  if (decoded.ok() && record) FinishRecording(session, out.reply);
  if (metrics_) {
    std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
    metrics_->ObserveRequest(which, out.error || !decoded.ok(), took.count());
  }
  return out;
}

Dispatcher::Outcome Dispatcher::Execute(Ctx& ctx, DecodedRequest& request, RequestId id) {
  // Nothing this request allocates may take space granted to any client;
  // a granted write may use its own (Write raises the limit for it).
  fs_.set_reserved_bytes(grants_.total());
  Status st = GuardDecode([&] { return Dispatch(ctx); });
  Outcome out;
  out.mutated = ctx.mutated;
  out.released = request.root().isRelease() || request.root().isDowngrade() ||
                 request.root().isUnlock() ||
                 request.root().isSetLock();  // an unlock may let a waiter in
  if (ctx.needs_sync && st.ok()) {
    out.needs_sync = true;
    return out;  // the executor builds the reply after the sync
  }
  if (!st.ok()) {
    out.error = true;
    out.reply = ErrorReply(id, st);
    // Leaves may ride on errors too (a negative lookup in a cached directory).
    return out;
  }
  auto g = ctx.reply.initGrants(static_cast<unsigned>(ctx.grants.size()));
  for (size_t i = 0; i < ctx.grants.size(); i++) {
    g[i].setIno(ctx.grants[i].first.value);
    g[i].setMode(ToWire(ctx.grants[i].second));
  }
  std::vector<Attr> changed;
  for (InodeId ino : ctx.changed) {
    auto a = fs_.GetAttr(ino);
    if (a.ok()) changed.push_back(*a);  // a reclaimed inode has nothing to report
  }
  auto list = ctx.reply.initChanged(static_cast<unsigned>(changed.size()));
  for (size_t i = 0; i < changed.size(); i++) ToWire(changed[i], list[i]);
  out.reply = EncodeFrame(FrameKind::kReply, id, ctx.message, std::move(ctx.reply_bulk));
  return out;
}

}  // namespace cohfs

namespace cohfs {

Status CheckRequestName(std::string_view name) {
  if (name.empty() || name == "." || name == ".." ||
      name.find_first_of(std::string_view("/\0", 2)) != std::string_view::npos) {
    return Status::Error(EINVAL, "invalid name");
  }
  if (name.size() > kMaxNameBytes) return Status::Error(ENAMETOOLONG);
  return Status::Ok();
}

namespace {

LockMode ModeFor(bool mutated) { return mutated ? LockMode::kExclusive : LockMode::kShared; }

void ToWire(const FileLock& l, wire::FileLock::Builder b) {
  b.setOwner(l.owner);
  b.setStart(l.start);
  b.setEnd(l.end);
  b.setType(static_cast<uint8_t>(l.type));
  b.setFlock(l.flock);
  b.setPid(l.pid);
}

}  // namespace

// Ownership on demand (DESIGN §5): a client about to change a directory it
// does not own asks for it, so that this change and the next ones there are
// made locally. The executor parked the request until other holders gave the
// directory back; while it is contended nothing is granted, and the client
// sends its changes as ordinary requests. A child nobody else holds comes
// EXCLUSIVE (unlink and rename need it), the others as they may be shared.
Status Dispatcher::AcquireDirectory(Ctx& ctx) {
  InodeId dir(ctx.req.getAcquire());
  ASSIGN_OR_RETURN(Attr attr, fs_.GetAttr(dir));
  if (!S_ISDIR(attr.mode)) return Status::Error(ENOTDIR);
  ToWire(attr, ctx.reply.initAttr());
  if (Grant(ctx, dir, LockMode::kExclusive) != LockMode::kExclusive) return Status::Ok();
  if (attr.size > config_.acquire_max_entries) return Status::Ok();  // too large to list
  auto entries = fs_.ReadDir(ctx.caller, dir, 0, config_.acquire_max_entries + 1);
  if (!entries.ok() || entries->size() > config_.acquire_max_entries) return Status::Ok();
  auto leaf = ctx.reply.initLeaf(static_cast<unsigned>(entries->size()));
  for (size_t i = 0; i < entries->size(); i++) {
    const DirEntry& e = (*entries)[i];
    ToWire(e, leaf[static_cast<unsigned>(i)]);
    if (Grant(ctx, e.attr.ino, LockMode::kExclusive) == LockMode::kNone) {
      Grant(ctx, e.attr.ino, LockMode::kShared);
    }
  }
  ctx.reply.setLeafComplete(true);
  return Status::Ok();
}

Status Dispatcher::SetFileLock(Ctx& ctx) {
  auto l = ctx.req.getSetLock().getLock();
  FileLock want = FromWire(ctx.session.client, l);
  if (l.getType() > 2 || want.start > want.end) return Status::Error(EINVAL, "bad lock");
  if (!file_locks_.Set(InodeId(l.getIno()), want)) {
    return Status::Error(EAGAIN, "held by another lock owner");  // a waiting one was parked
  }
  ctx.reply.setNone();
  return Status::Ok();
}

// Space grants (server/space_grants.h): the client acknowledged this data
// under its grant, so the write may use that much of it and always takes it
// out, stored or not (the client counts it gone once the reply comes).
Status Dispatcher::Write(Ctx& ctx) {
  auto w = ctx.req.getWrite();
  const ClientId client = ctx.session.client;
  const uint64_t own = std::min(w.getGrantBytes(), grants_.of(client));
  fs_.set_reserved_bytes(grants_.ReservedAgainst(client, own));
  auto write = [&]() -> Result<Attr> {
    uint64_t offset = w.getOffset();
    if (w.getAppend()) {  // O_APPEND: the end as this server sees it, atomically
      ASSIGN_OR_RETURN(Attr a, fs_.GetAttr(InodeId(w.getIno())));
      offset = a.size;
    }
    std::span<const char> data(ctx.request_bulk.data(), ctx.request_bulk.size());
    return fs_.Write(ctx.caller, InodeId(w.getIno()), offset, data, w.getMtimeNs());
  };
  Result<Attr> r = write();
  grants_.Consume(client, w.getGrantBytes());
  fs_.set_reserved_bytes(grants_.total());
  if (!r.ok()) return r.status();
  ctx.mutated = true;
  ToWire(*r, ctx.reply.initAttr());
  Grant(ctx, r->ino, LockMode::kExclusive);
  ctx.reply.setGrantAdded(grants_.TopUp(client, w.getWantGrant(), fs_.free_bytes()));
  return Status::Ok();
}

Status Dispatcher::Dispatch(Ctx& ctx) {
  auto req = ctx.req;
  auto reply = ctx.reply;
  ctx.caller = CallerOf(req.getCaller());
  const Caller& c = ctx.caller;
  Session& s = ctx.session;
  RETURN_IF_ERROR(CheckReach(s, c, req));

  // Replies carrying one inode's attributes, with a grant on it.
  auto reply_attr = [&](Result<Attr> r, bool mutated) -> Status {
    if (!r.ok()) return r.status();
    ctx.mutated |= mutated;
    ToWire(*r, reply.initAttr());
    Grant(ctx, r->ino, ModeFor(mutated));
    return Status::Ok();
  };
  auto new_ino = [&](uint64_t v) -> Result<InodeId> {
    InodeId ino(v);
    if (!s.OwnsInode(ino)) return Status::Error(EINVAL, "inode number outside the client's range");
    return ino;
  };

  switch (req.which()) {
    case wire::Request::HELLO:
      return Status::Error(EPROTO, "second Hello");
    case wire::Request::SERVER_STATUS:  // only first, instead of a hello, on its own connection
      return Status::Error(EPROTO, "serverStatus inside a session");
    case wire::Request::RECLAIM:
      return Reclaim(ctx);
    case wire::Request::LOOKUP:
      return Lookup(ctx);
    case wire::Request::GET_ATTR:
      return reply_attr(fs_.GetAttr(InodeId(req.getGetAttr())), false);
    case wire::Request::SET_ATTR: {
      auto a = req.getSetAttr();
      return reply_attr(fs_.SetAttr(c, InodeId(a.getIno()), FromWire(a)), true);
    }
    case wire::Request::READ_LINK: {
      ASSIGN_OR_RETURN(std::string target, fs_.ReadLink(InodeId(req.getReadLink())));
      reply.setTarget(AsData(target));
      return Status::Ok();
    }
    case wire::Request::MKNOD: {
      auto m = req.getMknod();
      std::string_view name = AsView(m.getName());
      RETURN_IF_ERROR(CheckRequestName(name));
      ASSIGN_OR_RETURN(InodeId ino, new_ino(m.getNewIno()));
      InodeId parent(m.getParent());
      Status st =
          reply_attr(fs_.Mknod(c, parent, name, m.getMode(), m.getRdev(), ino, m.getNowNs()), true);
      if (st.ok()) OwnParent(ctx, parent);
      return st;
    }
    case wire::Request::MKDIR: {
      auto m = req.getMkdir();
      std::string_view name = AsView(m.getName());
      RETURN_IF_ERROR(CheckRequestName(name));
      ASSIGN_OR_RETURN(InodeId ino, new_ino(m.getNewIno()));
      InodeId parent(m.getParent());
      Status st = reply_attr(fs_.Mkdir(c, parent, name, m.getMode(), ino, m.getNowNs()), true);
      if (st.ok()) OwnParent(ctx, parent);
      return st;
    }
    case wire::Request::SYMLINK: {
      auto m = req.getSymlink();
      std::string_view name = AsView(m.getName());
      RETURN_IF_ERROR(CheckRequestName(name));
      ASSIGN_OR_RETURN(InodeId ino, new_ino(m.getNewIno()));
      InodeId parent(m.getParent());
      Status st =
          reply_attr(fs_.Symlink(c, parent, name, AsView(m.getTarget()), ino, m.getNowNs()), true);
      if (st.ok()) OwnParent(ctx, parent);
      return st;
    }
    case wire::Request::LINK: {
      auto m = req.getLink();
      std::string_view name = AsView(m.getNewName());
      RETURN_IF_ERROR(CheckRequestName(name));
      ctx.changed.push_back(InodeId(m.getNewParent()));
      return reply_attr(
          fs_.Link(c, InodeId(m.getIno()), InodeId(m.getNewParent()), name, m.getNowNs()), true);
    }
    case wire::Request::UNLINK:
    case wire::Request::RMDIR: {
      bool is_unlink = req.isUnlink();
      InodeId parent(is_unlink ? req.getUnlink().getParent() : req.getRmdir().getParent());
      std::string_view name =
          AsView(is_unlink ? req.getUnlink().getName() : req.getRmdir().getName());
      RETURN_IF_ERROR(CheckRequestName(name));
      int64_t now_ns = is_unlink ? req.getUnlink().getNowNs() : req.getRmdir().getNowNs();
      ASSIGN_OR_RETURN(InodeId child, is_unlink ? fs_.Unlink(c, parent, name, now_ns)
                                                : fs_.Rmdir(c, parent, name, now_ns));
      ctx.mutated = true;
      reply.setRemoved(child.value);
      MaybeReclaim(child);
      ctx.changed.push_back(parent);
      ctx.changed.push_back(child);
      return Status::Ok();
    }
    case wire::Request::RENAME: {
      auto m = req.getRename();
      std::string_view name = AsView(m.getName());
      std::string_view new_name = AsView(m.getNewName());
      RETURN_IF_ERROR(CheckRequestName(name));
      RETURN_IF_ERROR(CheckRequestName(new_name));
      ASSIGN_OR_RETURN(std::optional<InodeId> replaced,
                       fs_.Rename(c, InodeId(m.getParent()), name, InodeId(m.getNewParent()),
                                  new_name, m.getFlags(), m.getNowNs()));
      ctx.mutated = true;
      reply.setRemoved(replaced ? replaced->value : 0);
      if (replaced) MaybeReclaim(*replaced);
      ctx.changed.push_back(InodeId(m.getParent()));
      if (m.getNewParent() != m.getParent()) ctx.changed.push_back(InodeId(m.getNewParent()));
      if (replaced) ctx.changed.push_back(*replaced);
      // The moved inode(s): their ctime changed.
      for (std::string_view n : {new_name, name}) {
        InodeId dir(n == new_name ? m.getNewParent() : m.getParent());
        auto moved = fs_.Lookup(c, dir, n);
        if (moved.ok()) ctx.changed.push_back(moved->ino);
      }
      return Status::Ok();
    }
    case wire::Request::OPEN: {
      auto o = req.getOpen();
      RETURN_IF_ERROR(fs_.Open(c, InodeId(o.getIno()), o.getFlags()));
      return reply_attr(fs_.GetAttr(InodeId(o.getIno())), (o.getFlags() & O_TRUNC) != 0);
    }
    case wire::Request::READ: {
      auto r = req.getRead();
      uint32_t len = std::min<uint32_t>(r.getLength(), kMaxIoBytes);
      ASSIGN_OR_RETURN(ctx.reply_bulk, fs_.Read(c, InodeId(r.getIno()), r.getOffset(), len));
      reply.setData();
      Grant(ctx, InodeId(r.getIno()), LockMode::kShared);  // the reader's page cache
      return Status::Ok();
    }
    case wire::Request::WRITE:
      return Write(ctx);
    case wire::Request::FSYNC:
    case wire::Request::SYNC_FS:
      ctx.needs_sync = true;
      return Status::Ok();
    case wire::Request::READ_DIR: {
      auto r = req.getReadDir();
      InodeId dir(r.getIno());
      size_t max = std::clamp<size_t>(r.getMaxEntries(), 1, 4096);
      ASSIGN_OR_RETURN(std::vector<DirEntry> entries, fs_.ReadDir(c, dir, r.getCookie(), max));
      auto list = reply.initEntries(static_cast<unsigned>(entries.size()));
      size_t content_bytes = 0;
      for (size_t i = 0; i < entries.size(); i++) {
        ToWire(entries[i], list[i]);
        if (Grant(ctx, entries[i].attr.ino, LockMode::kShared) != LockMode::kNone) {
          AttachContent(c, entries[i].attr, list[i], &content_bytes);  // find | xargs cat
        }
      }
      Grant(ctx, dir, LockMode::kShared);
      return Status::Ok();
    }
    case wire::Request::STAT_FS: {
      ASSIGN_OR_RETURN(FsStat st, fs_.StatFs());
      // What this client can still write: free space less other clients' grants.
      uint64_t others = grants_.ReservedAgainst(s.client, grants_.of(s.client)) / kBlockBytes;
      st.free_blocks -= std::min(st.free_blocks, others);
      ToWire(st, reply.initFsStat());
      return Status::Ok();
    }
    case wire::Request::SET_XATTR: {
      auto x = req.getSetXattr();
      InodeId ino(x.getIno());
      RETURN_IF_ERROR(fs_.SetXattr(c, ino, AsView(x.getName()), AsView(x.getValue()), x.getFlags(),
                                   x.getNowNs()));
      ctx.mutated = true;
      return reply_attr(fs_.GetAttr(ino), true);
    }
    case wire::Request::GET_XATTR: {
      auto x = req.getGetXattr();
      ASSIGN_OR_RETURN(std::string value,
                       fs_.GetXattr(c, InodeId(x.getIno()), AsView(x.getName())));
      reply.setValue(AsData(value));
      return Status::Ok();
    }
    case wire::Request::LIST_XATTR: {
      ASSIGN_OR_RETURN(std::vector<std::string> names,
                       fs_.ListXattr(c, InodeId(req.getListXattr())));
      auto list = reply.initNames(static_cast<unsigned>(names.size()));
      for (size_t i = 0; i < names.size(); i++)
        list.set(static_cast<unsigned>(i), AsData(names[i]));
      return Status::Ok();
    }
    case wire::Request::REMOVE_XATTR: {
      auto x = req.getRemoveXattr();
      InodeId ino(x.getIno());
      RETURN_IF_ERROR(fs_.RemoveXattr(c, ino, AsView(x.getName()), x.getNowNs()));
      ctx.mutated = true;
      return reply_attr(fs_.GetAttr(ino), true);
    }
    case wire::Request::FALLOCATE: {
      auto f = req.getFallocate();
      return reply_attr(
          fs_.Fallocate(c, InodeId(f.getIno()), f.getMode(), f.getOffset(), f.getLength()), true);
    }
    case wire::Request::SET_FLAGS: {
      auto f = req.getSetFlags();
      return reply_attr(fs_.SetFlags(c, InodeId(f.getIno()), f.getFlags()), true);
    }
    case wire::Request::LSEEK: {
      auto l = req.getLseek();
      ASSIGN_OR_RETURN(uint64_t off, fs_.Lseek(InodeId(l.getIno()), l.getOffset(), l.getWhence()));
      reply.setOffset(off);
      return Status::Ok();
    }
    case wire::Request::ACCESS: {
      auto a = req.getAccess();
      RETURN_IF_ERROR(fs_.Access(c, InodeId(a.getIno()), a.getMask()));
      reply.setNone();
      return Status::Ok();
    }
    case wire::Request::RELEASE: {
      for (uint64_t ino : req.getRelease()) ReleaseAndReclaim(s.client, InodeId(ino));
      reply.setNone();
      return Status::Ok();
    }
    case wire::Request::SET_LOCK:
      return SetFileLock(ctx);
    case wire::Request::ACQUIRE:
      return AcquireDirectory(ctx);
    case wire::Request::GET_LOCK: {
      FileLock want = FromWire(s.client, req.getGetLock());
      auto held = file_locks_.Test(InodeId(req.getGetLock().getIno()), want);
      auto out = reply.initLock();
      out.setType(static_cast<uint8_t>(FileLock::Type::kUnlock));
      if (held) ToWire(*held, out);
      return Status::Ok();
    }
    case wire::Request::UNLOCK: {
      for (uint64_t ino : req.getUnlock()) {
        locks_.Release(s.client, InodeId(ino));
        locks_.AddRef(s.client, InodeId(ino));
      }
      reply.setNone();
      return Status::Ok();
    }
    case wire::Request::DOWNGRADE: {
      for (uint64_t ino : req.getDowngrade()) locks_.Downgrade(s.client, InodeId(ino));
      reply.setNone();
      return Status::Ok();
    }
    case wire::Request::ALLOC_INODES: {
      uint64_t count = std::clamp<uint64_t>(req.getAllocInodes(), 1, config_.inode_range_size);
      ASSIGN_OR_RETURN(InodeRange range, fs_.AllocateInodes(count));
      s.inode_ranges.push_back(range);
      RETURN_IF_ERROR(store_.Put(s.client.value, s.ToItem()));  // a restart keeps the range
      auto r = reply.initInodes();
      r.setFirst(range.first);
      r.setCount(range.count);
      return Status::Ok();
    }
    case wire::Request::COMMIT:
      // Each change was answered on the client already: one refused group
      // does not stop the others; the client learns which changes failed and
      // the server's attributes of the inodes they touched.
      if (req.getCommit().size() > kMaxCommitOps) {
        return Status::Error(EINVAL, "a commit of more than " + std::to_string(kMaxCommitOps) +
                                         " changes");  // its reply could outgrow a message
      }
      Commit(s, req.getCommit(), reply, &ctx.changed, &ctx.mutated);
      return Status::Ok();
    case wire::Request::RETURN_GRANT:
      grants_.Consume(s.client, req.getReturnGrant());
      reply.setNone();
      return Status::Ok();
    case wire::Request::RENEW:
    case wire::Request::GOODBYE:
      reply.setNone();
      return Status::Ok();
  }
  return Status::Error(EOPNOTSUPP, "unknown request");
}

}  // namespace cohfs
