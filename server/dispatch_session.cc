// Sessions (DESIGN §7; docs/failure.md): hello and welcome, resuming a
// session on a new connection, reclaiming locks after a restart, and the
// stored replies that make a resent request apply at most once.
// Thread: the storage executor, as all of Dispatcher.
#include <capnp/serialize.h>
#include <sys/random.h>

#include "common/log.h"
#include "server/dispatch.h"
#include "server/dispatch_ctx.h"

namespace cohfs {

bool Session::OwnsInode(InodeId ino) const {
  for (const auto& r : inode_ranges) {
    if (ino.value >= r.first && ino.value - r.first < r.count) return true;
  }
  return false;
}

SessionItem Session::ToItem() const {
  SessionItem item;
  item.key = key;
  item.client_name = name;
  for (const InodeRange& r : inode_ranges) item.inode_ranges.emplace_back(r.first, r.count);
  return item;
}

bool RecordsReply(wire::Request::Which which) {
  switch (which) {
    case wire::Request::SET_ATTR:
    case wire::Request::MKNOD:
    case wire::Request::MKDIR:
    case wire::Request::SYMLINK:
    case wire::Request::LINK:
    case wire::Request::UNLINK:
    case wire::Request::RMDIR:
    case wire::Request::RENAME:
    case wire::Request::WRITE:
    case wire::Request::SET_XATTR:
    case wire::Request::REMOVE_XATTR:
    case wire::Request::FALLOCATE:
    case wire::Request::SET_FLAGS:
    case wire::Request::COMMIT:
      return true;
    default:
      return false;  // reads, locks, renew: running them again answers the same
  }
}

Status Dispatcher::CheckVersion(wire::Request::Hello::Reader h) {
  uint32_t v = wire::PROTOCOL_VERSION;
  if (h.getVersionMin() > v || h.getVersionMax() < v) {
    return Status::Error(EPROTONOSUPPORT, "server speaks protocol version " + std::to_string(v));
  }
  return Status::Ok();
}

Result<Session> Dispatcher::NewSession(std::string_view client_name) {
  Session s;
  ASSIGN_OR_RETURN(uint64_t id, store_.NewId());
  s.client = ClientId(id);
  if (getrandom(&s.key, sizeof(s.key), 0) != static_cast<ssize_t>(sizeof(s.key))) {
    return Status::Error(errno, "getrandom");
  }
  s.name = std::string(client_name);
  ASSIGN_OR_RETURN(InodeRange range, fs_.AllocateInodes(config_.inode_range_size));
  s.inode_ranges.push_back(range);
  RETURN_IF_ERROR(store_.Put(id, s.ToItem()));
  LOG(Info) << "client " << id << " ('" << s.name << "') welcomed, inodes [" << range.first << ", +"
            << range.count << ")";
  return s;
}

OutFrame Dispatcher::Welcome(Session& s, DecodedRequest& hello, bool resumed) {
  capnp::MallocMessageBuilder m;
  auto w = m.initRoot<wire::Reply>().initWelcome();
  w.setVersion(wire::PROTOCOL_VERSION);
  w.setSessionId(s.client.value);
  w.setSessionKey(s.key);
  w.setLeaseMs(config_.lease_ms);
  w.setRootIno(kRootInode.value);
  w.setServerGeneration(volume_.super().generation);
  w.setResumed(resumed);
  w.setReclaim(resumed && s.reclaiming);
  w.setSquash(static_cast<uint8_t>(config_.squash));
  if (!resumed) {  // a resumed client keeps its ranges and grant
    w.initInodes().setFirst(s.inode_ranges.back().first);
    w.getInodes().setCount(s.inode_ranges.back().count);
    uint64_t want = hello.root().getHello().getWantGrant();  // read once by the Scheduler
    w.setGrantBytes(grants_.TopUp(s.client, want, fs_.free_bytes()));
  }
  return EncodeFrame(FrameKind::kReply, hello.frame().header.request_id, m);
}

// After a restart: the locks the client held come back unless another
// client's reclaim holds them (which two correct clients never do).
Status Dispatcher::Reclaim(Ctx& ctx) {
  Session& s = ctx.session;
  if (!s.reclaiming) return Status::Error(EPROTO, "nothing to reclaim");
  auto r = ctx.req.getReclaim();
  size_t refused = 0;
  for (auto g : r.getLocks()) {
    InodeId ino(g.getIno());
    LockMode mode = FromWire(g.getMode());
    if (mode == LockMode::kNone) continue;
    if (locks_.Acquire(s.client, ino, mode) == mode) {
      ctx.grants.emplace_back(ino, mode);
    } else {
      refused++;
    }
  }
  for (uint64_t ino : r.getRefs()) locks_.AddRef(s.client, InodeId(ino));
  for (auto g : r.getGivingBack())
    s.giving_back.emplace_back(InodeId(g.getIno()), FromWire(g.getMode()));
  size_t file_locks_refused = 0;
  for (auto l : r.getFileLocks()) {
    FileLock lock = FromWire(s.client, l);
    if (lock.type == FileLock::Type::kUnlock || lock.start > lock.end) continue;
    file_locks_refused += file_locks_.Set(InodeId(l.getIno()), lock) ? 0 : 1;
  }
  ctx.reply.setGrantAdded(grants_.Restore(s.client, r.getGrantBytes(), fs_.free_bytes()));
  ctx.reply.setNone();
  s.reclaiming = false;
  LOG(Info) << "client " << s.client.value << " reclaimed " << ctx.grants.size() << " locks ("
            << refused << " refused), " << r.getRefs().size() << " references, "
            << r.getFileLocks().size() << " file locks (" << file_locks_refused << " refused)";
  return Status::Ok();
}

void Dispatcher::BeginRecording(Session& s, uint64_t request) {
  recording_ = Recording{request};
  s.replays.insert(request);  // from the first WriteBatch on, the store may hold it
  const uint64_t id = s.client.value;
  fs_.set_commit_hook([this, id](Txn& txn) {
    ReplayItem item;
    item.progress = recording_->progress;
    if (recording_->failed) item.reply = FailuresReply(*recording_->failed);
    store_.PutReplay(txn, id, recording_->request, item);
  });
}

void Dispatcher::FinishRecording(Session& s, const OutFrame& reply) {
  fs_.set_commit_hook(nullptr);
  ReplayItem item;
  item.complete = true;
  item.progress = recording_->progress;
  item.reply.assign(reinterpret_cast<const char*>(reply.message.begin()),
                    reply.message.size() * sizeof(capnp::word));
  uint64_t request = recording_->request;
  recording_.reset();
  s.replays.erase(request);
  Status st = store_.Record(s.client.value, request, item, &s.replays, s.replied_below);
  if (!st.ok()) LOG(Warn) << "storing the reply to request " << request << ": " << st.ToString();
}

std::string Dispatcher::FailuresReply(const std::vector<CommitFailure>& failed) {
  capnp::MallocMessageBuilder m;
  auto list = m.initRoot<wire::Reply>().initFailures(static_cast<unsigned>(failed.size()));
  for (size_t i = 0; i < failed.size(); i++) {
    list[i].setIndex(failed[i].index);
    list[i].setIno(failed[i].touched.empty() ? 0 : failed[i].touched[0].value);
    list[i].setErrno(failed[i].status.errno_value());
    list[i].setMessage(failed[i].status.message());
  }
  auto words = capnp::messageToFlatArray(m);
  return std::string(reinterpret_cast<const char*>(words.begin()), words.asBytes().size());
}

namespace {

// Runs `f` on the Reply stored as flat words (EPROTO if they are not one).
template <typename F>
Status WithStoredReply(const std::string& bytes, F&& f) {
  if (bytes.empty() || bytes.size() % sizeof(capnp::word) != 0) {
    return Status::Error(EPROTO, "bad stored reply");
  }
  kj::Array<capnp::word> words = kj::heapArray<capnp::word>(bytes.size() / sizeof(capnp::word));
  memcpy(words.begin(), bytes.data(), bytes.size());
  return GuardDecode([&] {
    capnp::FlatArrayMessageReader reader(words);
    return f(reader.getRoot<wire::Reply>());
  });
}

}  // namespace

void Dispatcher::LoadFailures(const std::string& partial, std::vector<CommitFailure>* failed) {
  if (partial.empty()) return;
  Status st = WithStoredReply(partial, [&](wire::Reply::Reader r) {
    for (auto f : r.getFailures()) {
      std::vector<InodeId> touched;
      if (f.getIno() != 0) touched.push_back(InodeId(f.getIno()));
      failed->push_back(
          {f.getIndex(), Status::Error(f.getErrno(), f.getMessage().cStr()), std::move(touched)});
    }
    return Status::Ok();
  });
  if (!st.ok()) LOG(Warn) << "a stored partial commit reply: " << st.ToString();
}

namespace {

// What a changing request (not a commit) changed: the object its reply
// describes (0: none, as for a removal) and the directories it changed.
struct Touched {
  InodeId object;
  std::vector<InodeId> dirs;
};

Touched TouchedBy(wire::Request::Reader req) {
  switch (req.which()) {
    case wire::Request::SET_ATTR:
      return {InodeId(req.getSetAttr().getIno()), {}};
    case wire::Request::WRITE:
      return {InodeId(req.getWrite().getIno()), {}};
    case wire::Request::SET_XATTR:
      return {InodeId(req.getSetXattr().getIno()), {}};
    case wire::Request::REMOVE_XATTR:
      return {InodeId(req.getRemoveXattr().getIno()), {}};
    case wire::Request::MKNOD:
      return {InodeId(req.getMknod().getNewIno()), {InodeId(req.getMknod().getParent())}};
    case wire::Request::MKDIR:
      return {InodeId(req.getMkdir().getNewIno()), {InodeId(req.getMkdir().getParent())}};
    case wire::Request::SYMLINK:
      return {InodeId(req.getSymlink().getNewIno()), {InodeId(req.getSymlink().getParent())}};
    case wire::Request::LINK:
      return {InodeId(req.getLink().getIno()), {InodeId(req.getLink().getNewParent())}};
    case wire::Request::UNLINK:
      return {InodeId(0), {InodeId(req.getUnlink().getParent())}};
    case wire::Request::RMDIR:
      return {InodeId(0), {InodeId(req.getRmdir().getParent())}};
    case wire::Request::RENAME:
      return {InodeId(0),
              {InodeId(req.getRename().getParent()), InodeId(req.getRename().getNewParent())}};
    default:
      return {InodeId(0), {}};
  }
}

}  // namespace

// A change applied just before a crash that came before its reply was
// stored: the reply is made again from what the store holds now, as an NFS
// server answers a retransmission it has no cached reply for. It grants
// nothing; the attributes are current, so at worst newer than the change.
OutFrame Dispatcher::RebuiltReply(wire::Request::Reader request, RequestId id) {
  capnp::MallocMessageBuilder m;
  auto reply = m.initRoot<wire::Reply>();
  Touched t = TouchedBy(request);
  if (t.object.value == 0) {
    reply.setRemoved(0);  // which inode lost a name is not known any more
  } else {
    Result<Attr> a = fs_.GetAttr(t.object);
    if (!a.ok()) return ErrorReply(id, a.status());
    ToWire(*a, reply.initAttr());
  }
  std::vector<Attr> dirs;
  for (InodeId d : t.dirs) {
    Result<Attr> a = fs_.GetAttr(d);
    if (a.ok()) dirs.push_back(*a);
  }
  auto changed = reply.initChanged(static_cast<unsigned>(dirs.size()));
  for (size_t i = 0; i < dirs.size(); i++) ToWire(dirs[i], changed[static_cast<unsigned>(i)]);
  return EncodeFrame(FrameKind::kReply, id, m);
}

std::optional<OutFrame> Dispatcher::Replay(Session& s, DecodedRequest& request) {
  RequestId id = request.frame().header.request_id;
  if (s.replays.count(id.value) == 0) return std::nullopt;
  auto stored = store_.GetReplay(s.client.value, id.value);
  if (!stored.ok()) return ErrorReply(id, stored.status());
  if (!stored->has_value()) return std::nullopt;
  ReplayItem& item = **stored;
  if (!item.complete) {
    // (The request was decoded once by the Scheduler.)
    if (!request.root().isCommit()) return RebuiltReply(request.root(), id);
    resume_ = Resume{id.value, item.progress, std::move(item.reply)};  // applied in part
    return std::nullopt;
  }
  capnp::MallocMessageBuilder m;
  auto reply = m.initRoot<wire::Reply>();
  Status st = WithStoredReply(item.reply, [&](wire::Reply::Reader r) {
    m.setRoot(r);
    return Status::Ok();
  });
  if (!st.ok()) return ErrorReply(id, st);
  reply = m.getRoot<wire::Reply>();
  reply.initGrants(0);  // locks and space it granted then may be gone now
  reply.setGrantAdded(0);
  return EncodeFrame(FrameKind::kReply, id, m);
}

// The grace period's end: a lock given back in a request the server may
// have taken before its restart is the client's again unless another client
// reclaimed it (then the server had taken the release).
void Dispatcher::GrantGivingBack(Session& s) {
  size_t granted = 0;
  for (auto [ino, mode] : s.giving_back) granted += locks_.Acquire(s.client, ino, mode) == mode;
  if (!s.giving_back.empty()) {
    LOG(Info) << "client " << s.client.value << " has " << granted << " of " << s.giving_back.size()
              << " locks it was giving back";
  }
  s.giving_back.clear();
}

void Dispatcher::ReclaimOrphans() {
  std::vector<InodeId> orphans;
  Status st = fs_.Orphans(&orphans);
  if (!st.ok()) LOG(Warn) << "listing orphans: " << st.ToString();
  size_t before = orphans.size();
  for (InodeId ino : orphans) MaybeReclaim(ino);
  if (before > 0) LOG(Info) << "checked " << before << " orphan inodes for reclaim";
}

}  // namespace cohfs
