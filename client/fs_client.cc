#include "client/fs_client.h"

#include <sys/stat.h>

#include <chrono>
#include <unordered_set>
#include <utility>

#include "common/limits.h"
#include "common/log.h"
#include "common/permissions.h"

namespace cohfs {
namespace {

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// A write of file data (the data travels as the frame's bulk payload).
// `grant_bytes`: what it takes out of this client's space grant (written
// behind); `want_grant`: the grant to be topped up to in the reply;
// `mtime_ns`: what the server stores as the file's mtime (0: its clock).
void BuildWrite(capnp::MallocMessageBuilder& m, InodeId ino, const Caller& c, uint64_t offset,
                bool append, uint64_t grant_bytes, uint64_t want_grant, int64_t mtime_ns = 0) {
  auto root = m.initRoot<wire::Request>();
  ToWire(c, root.initCaller());
  auto w = root.initWrite();
  w.setIno(ino.value);
  w.setOffset(offset);
  w.setAppend(append);
  w.setGrantBytes(grant_bytes);
  w.setWantGrant(want_grant);
  w.setMtimeNs(mtime_ns);
}

// A request with no caller of its own (the client's bookkeeping).
struct OwnRequest {
  capnp::MallocMessageBuilder message;
  wire::Request::Builder root;
  OwnRequest() : root(message.initRoot<wire::Request>()) { ToWire(Caller{}, root.initCaller()); }
};

}  // namespace

// The grants of one reply, indexed once (a reply may carry thousands).
class FsClient::Grants {
 public:
  explicit Grants(const RpcReply& reply) {
    if (reply.stale_grants()) return;
    for (auto g : reply.root().getGrants()) {
      LockMode& m = modes_[g.getIno()];
      m = std::max(m, FromWire(g.getMode()));
    }
  }
  LockMode For(InodeId ino) const {
    auto it = modes_.find(ino.value);
    return it == modes_.end() ? LockMode::kNone : it->second;
  }

 private:
  std::unordered_map<uint64_t, LockMode> modes_;
};

FsClient::FsClient(Rpc& rpc, ClientStats& stats, size_t max_locked_inodes, FsClientOptions options)
    : rpc_(rpc),
      stats_(stats),
      max_locked_inodes_(max_locked_inodes),
      options_(std::move(options)),
      write_behind_(
          [this](InodeId ino, const Caller& c, uint64_t off, std::string data, uint64_t grant) {
            return PostWrite(ino, c, off, std::move(data), grant);
          },
          kMaxIoBytes, options_.clock_ns, &grant_),
      next_ino_(rpc.welcome().inodes_first),
      end_ino_(rpc.welcome().inodes_first + rpc.welcome().inodes_count) {
  cache_.AddLookup(kRootInode, 1);  // the kernel never forgets the root
  grant_.Add(rpc.welcome().grant_bytes);
  stats_.space_grant_bytes = grant_.granted();
}

FsClient::~FsClient() { Stop(); }

// After a server restart (network thread, before any request is resent):
// the locks this client holds, the inodes its kernel keeps, its grant.
void FsClient::BuildReclaim(wire::Request::Builder request) {
  std::vector<std::pair<InodeId, LockMode>> locks;
  std::vector<InodeId> refs;
  // Forgotten, their release not sent yet (their changes may not be either);
  // being given back while changes sent before the release may be
  // unanswered: the server may not have taken the release.
  std::vector<std::pair<InodeId, LockMode>> giving;
  cache_.ReclaimState(&locks, &refs, &giving);
  const uint64_t oldest = rpc_.oldest_unanswered_id();
  {
    std::lock_guard<std::mutex> l(giving_mu_);
    for (const auto& [token, given] : giving_back_) {
      if (oldest > given.changes_through) continue;  // every change it covers was answered
      giving.insert(giving.end(), given.locks.begin(), given.locks.end());
    }
  }
  auto r = request.initReclaim();
  auto l = r.initLocks(static_cast<unsigned>(locks.size()));
  for (size_t i = 0; i < locks.size(); i++) {
    l[i].setIno(locks[i].first.value);
    l[i].setMode(ToWire(locks[i].second));
  }
  auto f = r.initRefs(static_cast<unsigned>(refs.size()));
  for (size_t i = 0; i < refs.size(); i++) f.set(static_cast<unsigned>(i), refs[i].value);
  auto g = r.initGivingBack(static_cast<unsigned>(giving.size()));
  for (size_t i = 0; i < giving.size(); i++) {
    g[i].setIno(giving[i].first.value);
    g[i].setMode(ToWire(giving[i].second));
  }
  r.setGrantBytes(grant_.granted());
  std::vector<std::pair<InodeId, FileLock>> held;
  {
    std::lock_guard<std::mutex> g(file_locks_mu_);
    held = file_locks_.Held(ClientId());
  }
  auto fl = r.initFileLocks(static_cast<unsigned>(held.size()));
  for (size_t i = 0; i < held.size(); i++) {
    ToWire(held[i].first, held[i].second, fl[static_cast<unsigned>(i)]);
  }
  reclaim_asked_.clear();
  for (auto& [ino, mode] : locks) reclaim_asked_.push_back(ino);
}

uint64_t FsClient::NoteGivingBack(std::vector<std::pair<InodeId, LockMode>> locks,
                                  uint64_t changes_through) {
  std::lock_guard<std::mutex> l(giving_mu_);
  uint64_t token = next_giving_++;
  if (!locks.empty()) giving_back_[token] = Giving{std::move(locks), changes_through};
  return token;
}

Rpc::ReplyHandler FsClient::GivenBack(uint64_t token) {
  return [this, token](Result<RpcReply>) {
    std::lock_guard<std::mutex> g(giving_mu_);
    giving_back_.erase(token);
  };
}

void FsClient::ChangesSent(uint64_t token, uint64_t last_request_id) {
  std::lock_guard<std::mutex> l(giving_mu_);
  auto it = giving_back_.find(token);
  if (it != giving_back_.end()) it->second.changes_through = last_request_id;
}

void FsClient::OnReclaimed(wire::Reply::Reader reply) {
  if (!grant_.Reset(reply.getGrantAdded())) {
    LOG(Warn) << "the restarted server gave back less space than written-behind data needs";
  }
  stats_.space_grant_bytes = grant_.granted();
  if (reply.getGrants().size() == reclaim_asked_.size()) return;
  LOG(Warn) << "the restarted server gave back " << reply.getGrants().size() << " of "
            << reclaim_asked_.size() << " locks; the others are handled as recalled";
  // A lock refused is someone else's now: what the cache holds under it goes
  // as on a recall (logged changes the server then refuses are reported).
  std::unordered_set<uint64_t> granted;
  for (auto g : reply.getGrants()) granted.insert(g.getIno());
  for (InodeId ino : reclaim_asked_) {
    if (granted.count(ino.value) == 0) OnRecall(ino, LockMode::kNone);
  }
}

// Replies to two owners' calls can arrive out of the server's order (one's
// unlock after another's lock of the range): a conflict here keeps the
// newer lock in place of the older one.
bool FsClient::HoldsRecordLock(InodeId ino, uint64_t owner) {
  std::lock_guard<std::mutex> g(file_locks_mu_);
  return file_locks_.HoldsRecordLock(ino, ClientId(), owner);
}

void FsClient::NoteFileLock(wire::FileLock::Reader l) {
  FileLock lock = FromWire(ClientId(), l);
  std::lock_guard<std::mutex> g(file_locks_mu_);
  while (!file_locks_.Set(InodeId(l.getIno()), lock)) {
    auto other = file_locks_.Test(InodeId(l.getIno()), lock);
    if (!other) break;
    FileLock unlock = *other;
    unlock.type = FileLock::Type::kUnlock;
    file_locks_.Set(InodeId(l.getIno()), unlock);
  }
}

void FsClient::Start() {
  rpc_.SetRecallHandler([this](InodeId ino, LockMode keep) { OnRecall(ino, keep); });
  rpc_.SetReclaimer({[this](wire::Request::Builder r) { BuildReclaim(r); },
                     [this](wire::Reply::Reader r) { OnReclaimed(r); }});
  if (options_.own_threads) thread_ = std::thread([this] { TaskLoop(); });
}

int64_t FsClient::Now() const { return options_.clock_ns ? options_.clock_ns() : NowNs(); }

int64_t FsClient::MonoNow() const {
  return options_.clock_ns ? options_.clock_ns() : WriteBehind::NowNs();
}

void FsClient::Stop() {
  {
    std::lock_guard<std::mutex> l(tasks_mu_);
    stop_ = true;
  }
  tasks_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  JoinFinishedInvalidators(/*all=*/true);
}

// ---- replies and the send order

Result<RpcReply> FsClient::Call(capnp::MallocMessageBuilder& m, std::string bulk, int timeout_ms) {
  uint64_t seq;
  Rpc::Ticket ticket = SendInOrder(m, std::move(bulk), &seq);
  auto reply = rpc_.Wait(ticket, timeout_ms);
  if (reply.ok()) reply->set_log_seq(seq);
  return reply;
}

Rpc::Ticket FsClient::SendInOrder(capnp::MallocMessageBuilder& m, std::string bulk,
                                  uint64_t* log_seq) {
  std::lock_guard<std::mutex> l(send_mu_);
  *log_seq = ShipLogLocked();
  return rpc_.Send(m, std::move(bulk));
}

Attr FsClient::PutReplyAttr(const Attr& attr, LockMode lock, const RpcReply& reply) {
  // The server lacks data held here: the reply is older than its size and times.
  return cache_.PutAttr(attr, lock, OrderOf(reply), write_behind_.Holds(attr.ino));
}

// The attributes of the other inodes a reply describes, under its grants.
void FsClient::AbsorbChanged(const RpcReply& reply, const Grants& grants) {
  for (auto a : reply.root().getChanged()) {
    Attr attr = FromWire(a);
    PutReplyAttr(attr, grants.For(attr.ino), reply);
  }
}

void FsClient::Absorb(const RpcReply& reply) { AbsorbChanged(reply, Grants(reply)); }

Attr FsClient::AbsorbAttr(const RpcReply& reply, LockMode* lock) {
  Grants grants(reply);
  AbsorbChanged(reply, grants);
  Attr attr = FromWire(reply.root().getAttr());
  Attr now = PutReplyAttr(attr, grants.For(attr.ino), reply);
  *lock = cache_.lock(attr.ino);
  return now;
}

LockMode FsClient::AbsorbRead(InodeId ino, const RpcReply& reply) {
  Grants grants(reply);
  AbsorbChanged(reply, grants);
  cache_.SetLock(ino, grants.For(ino), reply.request_id());
  return cache_.lock(ino);
}

void FsClient::AbsorbLookup(InodeId dir, const RpcReply& reply) {
  auto root = reply.root();
  Grants grants(reply);
  cache_.SetLock(dir, grants.For(dir), reply.request_id());
  if (!root.getLeafComplete()) return;
  std::vector<DirEntry> entries;
  for (auto e : root.getLeaf()) {
    DirEntry d = FromWire(e);
    PutReplyAttr(d.attr, grants.For(d.attr.ino), reply);
    entries.push_back(std::move(d));
  }
  cache_.SetDirectory(dir, entries, OrderOf(reply));
}

std::vector<DirEntry> FsClient::AbsorbEntries(const RpcReply& reply) {
  auto root = reply.root();
  Grants grants(reply);
  std::vector<DirEntry> entries;
  for (auto e : root.getEntries()) {
    DirEntry d = FromWire(e);
    PutReplyAttr(d.attr, grants.For(d.attr.ino), reply);
    entries.push_back(std::move(d));
  }
  return entries;
}

// A logged create: mkdir, symlink or mknod by the new inode's type.
static void EncodeCreate(const WritebackLog::Op& op, wire::Request::Builder out) {
  auto common = [&](auto m) {
    m.setParent(op.parent.value);
    m.setName(AsData(op.name));
    m.setNowNs(op.now_ns);
    m.setNewIno(op.ino.value);
  };
  if (S_ISDIR(op.mode)) {
    auto m = out.initMkdir();
    common(m);
    m.setMode(op.mode);
  } else if (S_ISLNK(op.mode)) {
    auto m = out.initSymlink();
    common(m);
    m.setTarget(AsData(op.target));
  } else {
    auto m = out.initMknod();
    common(m);
    m.setMode(op.mode);
    m.setRdev(op.rdev);
  }
}

// One logged change as the server applies it from a commit.
static void EncodeChange(const WritebackLog::Op& op, wire::Request::Builder out) {
  using Kind = WritebackLog::Op::Kind;
  ToWire(op.caller, out.initCaller());
  out.setWithNext(op.with_next);
  auto names = [&](auto b) {
    b.setParent(op.parent.value);
    b.setName(AsData(op.name));
    b.setNowNs(op.now_ns);
  };
  switch (op.kind) {
    case Kind::kSetAttr:
      ToWire(op.ino, op.setattr, out.initSetAttr());
      break;
    case Kind::kCreate:
      EncodeCreate(op, out);
      break;
    case Kind::kLink: {
      auto m = out.initLink();
      m.setIno(op.ino.value);
      m.setNewParent(op.new_parent.value);
      m.setNewName(AsData(op.new_name));
      m.setNowNs(op.now_ns);
      break;
    }
    case Kind::kUnlink:
      names(out.initUnlink());
      break;
    case Kind::kRmdir:
      names(out.initRmdir());
      break;
    case Kind::kRename: {
      auto m = out.initRename();
      names(m);
      m.setNewParent(op.new_parent.value);
      m.setNewName(AsData(op.new_name));
      m.setFlags(op.flags);
      break;
    }
    case Kind::kSetXattr: {
      auto m = out.initSetXattr();
      m.setIno(op.ino.value);
      m.setName(AsData(op.xattr));
      m.setValue(AsData(op.target));
      m.setFlags(static_cast<int32_t>(op.flags));
      m.setNowNs(op.now_ns);
      break;
    }
    case Kind::kRemoveXattr: {
      auto m = out.initRemoveXattr();
      m.setIno(op.ino.value);
      m.setName(AsData(op.xattr));
      m.setNowNs(op.now_ns);
      break;
    }
  }
}

uint64_t FsClient::ShipLogLocked() {
  if (log_.empty()) return log_.last_seq();
  std::vector<WritebackLog::Op> ops = log_.Drain();
  OwnRequest r;
  auto list = r.root.initCommit(static_cast<unsigned>(ops.size()));
  std::vector<std::vector<InodeId>> touched;
  touched.reserve(ops.size());
  for (size_t i = 0; i < ops.size(); i++) {
    EncodeChange(ops[i], list[static_cast<unsigned>(i)]);
    touched.push_back(std::move(ops[i].touched));
  }
  uint64_t seq = log_.last_seq();
  {
    std::lock_guard<std::mutex> l(flight_mu_);
    commits_in_flight_++;
  }
  rpc_.Post(r.message, [this, touched = std::move(touched), seq](Result<RpcReply> reply) {
    OnCommitted(touched, seq, std::move(reply));
  });
  return seq;
}

// Network thread (or a sender, when the connection is gone): record what the
// server refused, take its attributes, and drop what this client and its
// kernel believed of the inodes the refused changes touched.
void FsClient::OnCommitted(const std::vector<std::vector<InodeId>>& touched, uint64_t seq,
                           Result<RpcReply> reply) {
  {
    std::lock_guard<std::mutex> l(flight_mu_);
    commits_in_flight_--;
  }
  flight_cv_.notify_all();
  std::vector<std::pair<size_t, Status>> refused;  // (index in the commit, why)
  if (!reply.ok()) {
    for (size_t i = 0; i < touched.size(); i++) refused.emplace_back(i, reply.status());
  } else {
    reply->set_log_seq(seq);
    Absorb(*reply);
    auto root = reply->root();
    if (root.isFailures()) {
      for (auto f : root.getFailures()) {
        int err = f.getErrno() > 0 && f.getErrno() < 4096 ? f.getErrno() : EIO;
        if (f.getIndex() < touched.size())
          refused.emplace_back(f.getIndex(), Status::Error(err, f.getMessage().cStr()));
      }
    }
  }
  for (auto& [index, st] : refused) {
    for (InodeId ino : touched[index]) {
      LOG(Warn) << "server refused a change of inode " << ino.value
                << " made locally: " << st.ToString();
      errors_.Record(ino, st);
      Post(Task{ino, LockMode::kNone, Task::Kind::kInvalidate, cache_.ForgetDirectory(ino)});
    }
  }
}

void FsClient::WaitForSendWindow() {
  std::unique_lock<std::mutex> l(flight_mu_);
  flight_cv_.wait_for(l, std::chrono::milliseconds(Rpc::kCallTimeoutMs), [&] {
    return commits_in_flight_ <= kMaxCommitsInFlight && bytes_in_flight_ <= kMaxDataInFlight;
  });
}

bool FsClient::AcquireDirectory(InodeId dir, const Caller& c) {
  Acquiring sent = SendAcquire(dir, c);
  if (!sent.ticket) return sent.owned;
  return AbsorbAcquire(dir, sent, rpc_.Wait(sent.ticket));
}

FsClient::Acquiring FsClient::SendAcquire(InodeId dir, const Caller& c) {
  Acquiring sent;
  if (cache_.OwnsDirectory(dir)) {
    sent.owned = true;
    return sent;
  }
  if (auto a = cache_.GetAttr(dir); a && (!S_ISDIR(a->mode) || a->size > kAcquireMaxEntries)) {
    return sent;
  }
  const int64_t now = Now();
  {
    std::lock_guard<std::mutex> l(acquire_mu_);
    auto it = refused_ns_.find(dir);
    if (it != refused_ns_.end() && now - it->second < kAcquireRetryNs) return sent;
    if (refused_ns_.size() > 4096) {
      std::erase_if(refused_ns_, [&](const auto& r) { return now - r.second >= kAcquireRetryNs; });
    }
  }
  capnp::MallocMessageBuilder m;
  auto root = m.initRoot<wire::Request>();
  ToWire(c, root.initCaller());
  root.setAcquire(dir.value);
  sent.sent_ns = now;
  sent.ticket = SendInOrder(m, {}, &sent.log_seq);
  return sent;
}

bool FsClient::AbsorbAcquire(InodeId dir, const Acquiring& sent, Result<RpcReply> reply) {
  if (reply.ok()) {
    reply->set_log_seq(sent.log_seq);
    LockMode lock;
    AbsorbAttr(*reply, &lock);
    Grants grants(*reply);
    if (reply->root().getLeafComplete()) {
      std::vector<DirEntry> entries;
      for (auto e : reply->root().getLeaf()) {
        DirEntry d = FromWire(e);
        PutReplyAttr(d.attr, grants.For(d.attr.ino), *reply);
        entries.push_back(std::move(d));
      }
      cache_.SetDirectory(dir, entries, OrderOf(*reply));
    }
  }
  if (cache_.OwnsDirectory(dir)) return true;
  std::lock_guard<std::mutex> l(acquire_mu_);
  refused_ns_[dir] = sent.sent_ns;
  return false;
}

Result<uint64_t> FsClient::NewInode(const Caller& c) {
  while (true) {
    {
      std::lock_guard<std::mutex> l(ino_mu_);
      if (next_ino_ < end_ino_) return next_ino_++;
    }
    // Out of numbers: ask for a new range without holding the lock across
    // the round trip (two threads may both ask; the spare range is dropped).
    capnp::MallocMessageBuilder m;
    auto root = m.initRoot<wire::Request>();
    ToWire(c, root.initCaller());
    root.setAllocInodes(65536);
    ASSIGN_OR_RETURN(RpcReply reply, Call(m));
    auto range = reply.root().getInodes();
    if (range.getCount() == 0) return Status::Error(ENOSPC, "server gave no inodes");
    std::lock_guard<std::mutex> l(ino_mu_);
    if (next_ino_ >= end_ino_) {
      next_ino_ = range.getFirst();
      end_ino_ = range.getFirst() + range.getCount();
    }
  }
}

void FsClient::NoteRenamedName(InodeId dir, const std::string& name) {
  if (!cache_.NoteKernelNameIfHeld(dir, name)) {
    Post(Task{dir, LockMode::kNone, Task::Kind::kInvalidate, {name}});
  }
}

// ---- releases, ticks, unmount

void FsClient::QueueRelease(const std::vector<uint64_t>& inos) {
  if (inos.empty()) return;
  bool full;
  {
    std::lock_guard<std::mutex> l(release_mu_);
    if (pending_release_.empty()) oldest_release_ns_ = Now();
    pending_release_.insert(pending_release_.end(), inos.begin(), inos.end());
    full = pending_release_.size() >= 512;
  }
  if (full) SendReleases(0);
}

void FsClient::SendReleases(int64_t min_age_ms) {
  std::vector<uint64_t> inos;
  {
    std::lock_guard<std::mutex> l(release_mu_);
    if (pending_release_.empty() || Now() - oldest_release_ns_ < min_age_ms * 1000000) return;
    inos.swap(pending_release_);
  }
  // Changes to these inodes must reach the server while it still knows them as ours.
  std::lock_guard<std::mutex> l(send_mu_);
  ShipLogLocked();
  uint64_t last_sent = rpc_.last_request_id();
  std::vector<std::pair<InodeId, LockMode>> given;
  std::erase_if(inos, [&](uint64_t ino) {
    LockMode held = LockMode::kNone;
    if (!cache_.RevokeIfForgotten(InodeId(ino), last_sent, &held)) return true;
    if (held != LockMode::kNone) given.emplace_back(InodeId(ino), held);
    return false;
  });
  if (inos.empty()) return;
  OwnRequest r;
  auto list = r.root.initRelease(static_cast<unsigned>(inos.size()));
  for (size_t i = 0; i < inos.size(); i++) list.set(static_cast<unsigned>(i), inos[i]);
  rpc_.Post(r.message, GivenBack(NoteGivingBack(std::move(given), last_sent)));
}

void FsClient::Tick() {
  {
    std::lock_guard<std::mutex> l(send_mu_);
    if (!log_.empty() && Now() - log_.oldest_ns() >= kLogDelayMs * 1000000) ShipLogLocked();
  }
  SendReleases(/*min_age_ms=*/500);
  // Written-behind data of files kept open: sent from the core's thread (a
  // send may wait for the window, which this thread must keep opening).
  if (int64_t mono = MonoNow(); mono - last_data_tick_ns_ >= kDataDelayNs / 4) {
    last_data_tick_ns_ = mono;
    Post(Task{InodeId(), LockMode::kNone, Task::Kind::kFlushOldData});
  }
  // Revocations matter while a reply that crossed them may still be absorbed:
  // keep each until every request sent before it was answered a second ago.
  int64_t now = Now();
  if (now - last_prune_ns_ >= 1000000000) {
    TrimCache();
    ReturnIdleGrant(now);
    cache_.PruneRevocations(prune_watermark_);
    prune_watermark_ = rpc_.oldest_unanswered_id();
    last_prune_ns_ = now;
  }
}

// ---- data

Status FsClient::Write(InodeId ino, const Caller& c, uint64_t offset, std::string_view data,
                       bool append) {
  RETURN_IF_ERROR(TakeDeferredError(ino));
  // Owned: answer from memory and send behind. The lock is checked under the
  // inode's buffer lock, which a recall takes to flush after dropping the lock.
  auto owned = [&]() -> std::optional<uint64_t> {
    if (cache_.lock(ino) != LockMode::kExclusive) return std::nullopt;
    if (!append) return offset;
    auto a = cache_.GetAttr(ino);  // the kernel serializes writes to one inode
    return a ? std::optional<uint64_t>(a->size) : std::nullopt;
  };
  uint64_t at = offset;
  auto buffered = write_behind_.Write(ino, c, data, [&]() -> std::optional<uint64_t> {
    auto where = owned();
    if (where) at = *where;
    return where;
  });
  if (!buffered.ok()) return buffered.status();
  if (!*buffered) return WriteThrough(ino, c, offset, data, append);
  // Replies to requests sent before this write (e.g. of earlier data still in
  // flight) must not shrink the size it set.
  std::lock_guard<std::mutex> l(send_mu_);
  cache_.NoteLocalWrite(ino, c, at + data.size(), Now(), log_.NoteLocalChange());
  return Status::Ok();
}

// Also the way of a write to an owned inode past the space grant: it gets
// ENOSPC here, and its reply may bring the grant that lets the next ones go
// behind again.
Status FsClient::WriteThrough(InodeId ino, const Caller& c, uint64_t offset, std::string_view data,
                              bool append) {
  RETURN_IF_ERROR(FlushData(ino));
  capnp::MallocMessageBuilder m;
  const bool owned = cache_.lock(ino) == LockMode::kExclusive;
  // What is left of the grant (too little for this write to go behind) is
  // the write's to use too: else a nearly full device refuses it while
  // space granted to this very client lies unused.
  const uint64_t grant_bytes = owned ? grant_.ChargeRest() : 0;
  BuildWrite(m, ino, c, offset, append, grant_bytes, owned ? SpaceGrant::kWantBytes : 0);
  stats_.writes_through++;
  Result<RpcReply> called = Call(m, std::string(data));
  grant_.Settle(grant_bytes);  // the server took it out, whatever the outcome
  ASSIGN_OR_RETURN(RpcReply reply, std::move(called));
  if (!reply.stale_grants()) grant_.Add(reply.root().getGrantAdded());
  stats_.space_grant_bytes = grant_.granted();
  LockMode lock;
  AbsorbAttr(reply, &lock);
  return Status::Ok();
}

Status FsClient::Fsync(uint64_t file, InodeId ino) {
  RETURN_IF_ERROR(FlushData(ino));
  OwnRequest r;
  r.root.setFsync(ino.value);
  auto reply = Call(r.message);
  // Every write and commit sent before the fsync has been answered by now.
  if (!reply.ok()) return reply.status();
  return errors_.TakeForFsync(file, ino);
}

// Sends one range of file data behind the log without waiting (the
// WriteBehind sender), charged `grant_bytes` of the space grant; a failure is
// reported as a deferred error (errors_).
Status FsClient::PostWrite(InodeId ino, const Caller& c, uint64_t offset, std::string data,
                           uint64_t grant_bytes) {
  const size_t n = data.size();
  {
    std::lock_guard<std::mutex> l(flight_mu_);
    bytes_in_flight_ += n;
  }
  // The server takes the mtime this cache shows (the local write's, or a
  // later utimes'), so that every client sees the one this one does.
  auto cached = cache_.GetAttr(ino);
  capnp::MallocMessageBuilder m;
  BuildWrite(m, ino, c, offset, /*append=*/false, grant_bytes, SpaceGrant::kWantBytes,
             cached ? cached->mtime_ns : 0);
  {
    std::lock_guard<std::mutex> l(send_mu_);
    cache_.NoteLocalChange(ino, log_.NoteLocalChange());  // replies sent before lack this data
    uint64_t seq = ShipLogLocked();
    rpc_.Post(
        m,
        [this, ino, n, seq, grant_bytes](Result<RpcReply> reply) {
          OnWritten(ino, seq, grant_bytes, std::move(reply));
          {
            std::lock_guard<std::mutex> fl(flight_mu_);
            bytes_in_flight_ -= n;
          }
          flight_cv_.notify_all();
        },
        std::move(data));
  }
  WaitForSendWindow();
  return Status::Ok();
}

// Network thread (or a sender, when the connection is gone).
void FsClient::OnWritten(InodeId ino, uint64_t seq, uint64_t grant_bytes, Result<RpcReply> reply) {
  grant_.Settle(grant_bytes);  // the server took it out of the grant, stored or not
  if (!reply.ok()) {
    LOG(Warn) << "deferred write of inode " << ino.value
              << " failed: " << reply.status().ToString();
    errors_.Record(ino, reply.status());
    return;
  }
  if (!reply->stale_grants()) grant_.Add(reply->root().getGrantAdded());
  stats_.space_grant_bytes = grant_.granted();
  reply->set_log_seq(seq);
  LockMode lock;
  AbsorbAttr(*reply, &lock);
}

// A grant unused for a lease goes back, so that an idle mount keeps no free
// space from the others (its next write tops it up again, through the server).
void FsClient::ReturnIdleGrant(int64_t now_ns) {
  const int64_t lease_ns = std::max<int64_t>(rpc_.welcome().lease_ms, 1000) * 1000000;
  uint64_t bytes = grant_.TakeIdle(now_ns, lease_ns);
  if (bytes == 0) return;
  OwnRequest r;
  r.root.setReturnGrant(bytes);
  rpc_.Post(r.message, [this, bytes](Result<RpcReply>) {
    grant_.Settle(bytes);  // the server took it out, whatever the reply says
    stats_.space_grant_bytes = grant_.granted();
  });
}

void FsClient::TrimCache() {
  if (cache_.size() <= max_locked_inodes_) return;  // cheap test first: no scan
  for (InodeId ino : cache_.LocksOverBound(max_locked_inodes_)) {
    stats_.lru_releases++;
    Post(Task{ino, LockMode::kNone, Task::Kind::kRecall});  // as if the server asked
  }
}

void FsClient::Unmount() {
  // A hard mount waits for the server; an unmount waits one lease (the time
  // the server keeps the session for it) and then gives up, logging it.
  rpc_.GiveUpAfter(std::max<int64_t>(rpc_.welcome().lease_ms, 1000));
  SendReleases(0);
  OwnRequest r;
  r.root.setSyncFs();
  auto reply = Call(r.message);
  if (!reply.ok()) LOG(Warn) << "final sync at unmount: " << reply.status().ToString();
}

}  // namespace cohfs
