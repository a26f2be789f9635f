#include "client/fs_client.h"

#include <sys/stat.h>

#include <chrono>
#include <unordered_set>
#include <utility>

#include "client/fs_client_internal.h"
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
  if (!root.hasLeaf()) return;
  std::vector<DirEntry> entries;
  for (auto e : root.getLeaf()) {
    DirEntry d = FromWire(e);
    PutReplyAttr(d.attr, grants.For(d.attr.ino), reply);
    AbsorbContent(d.attr.ino, e);
    entries.push_back(std::move(d));
  }
  if (root.getLeafComplete()) {
    cache_.SetDirectory(dir, entries, OrderOf(reply));
  } else {
    cache_.AddPage(dir, entries, OrderOf(reply));
  }
}

// A small file's content that came with its entry (after its attributes).
void FsClient::AbsorbContent(InodeId ino, wire::Entry::Reader e) {
  if (e.hasInlineData() && !write_behind_.Holds(ino)) {
    cache_.PutContent(ino, AsView(e.getInlineData()));
  }
}

std::vector<DirEntry> FsClient::AbsorbEntries(const RpcReply& reply) {
  auto root = reply.root();
  Grants grants(reply);
  std::vector<DirEntry> entries;
  for (auto e : root.getEntries()) {
    DirEntry d = FromWire(e);
    PutReplyAttr(d.attr, grants.For(d.attr.ino), reply);
    AbsorbContent(d.attr.ino, e);
    entries.push_back(std::move(d));
  }
  return entries;
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
