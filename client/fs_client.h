// FsClient: the client core (DESIGN §6, §8). It speaks in inodes, names and
// callers and knows nothing of FUSE: the object cache and the locks that make
// it valid, the writeback log and the order it ships in, write-behind, inode
// numbers, lock releases, and the server's recalls.
//
// Send order: every request leaves, under send_mu_, right behind a Commit of
// everything logged before it, so the server sees this client's changes in the
// order it made them.
//
// Recalls (DESIGN §5) run on the core's own thread, never on one the kernel
// waits for: the lock drops in the cache (grants in replies already on the
// wire are voided), the log ships, the inode's written-behind data is posted,
// reads of it in flight finish (new ones wait), the kernel's caches of it are
// invalidated, and only then does the release (or downgrade) go out. A FUSE
// reply built from a lock holds a ReplyPin on the inode, so a recall's
// invalidation always comes after any reply that told the kernel to cache.
//
// Kernel invalidations run on threads of their own (KernelHold says why), and
// a release voids every grant in replies to requests sent before it.
//
// Mutex ranks (outer first): pin stripes, a WriteBehind buffer's lock,
// send_mu_, inval_mu_, then the leaves (the cache's, gate_mu_, flight_mu_,
// release_mu_, giving_mu_, ino_mu_, tasks_mu_, the Rpc's, grant_'s, errors_').
//
// Space grants and deferred errors: written-behind data is acknowledged only
// within grant_ (client/space_grant.h), and what the server refuses later is
// reported through errors_ (client/error_seq.h: every open file's fsync once,
// the next write or close once). None is held across a
// wait for the server (a send may wait for the window, holding a buffer lock).
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "client/error_seq.h"
#include "client/object_cache.h"
#include "client/rpc.h"
#include "client/space_grant.h"
#include "client/stats.h"
#include "client/write_behind.h"
#include "client/writeback_log.h"
#include "common/file_locks.h"
#include "common/limits.h"

namespace cohfs {

// What the core tells the kernel to forget (FUSE notifications); called only
// from the core's own thread.
class KernelCache {
 public:
  virtual ~KernelCache() = default;
  virtual void InvalInode(InodeId ino) = 0;  // attributes and cached pages
  virtual void InvalEntry(InodeId dir, const std::string& name) = 0;
};

// How the core runs: the defaults are the mount's. The deterministic
// simulation (tests/sim) runs it on one thread and on simulated time.
struct FsClientOptions {
  // false: no task thread and no invalidation threads; whoever owns the core
  // runs its queued tasks with RunPendingTask, and invalidations run inline.
  bool own_threads = true;
  // Now, in ns, for timestamps, log and release delays and data ages (empty:
  // the real clocks).
  std::function<int64_t()> clock_ns;
};

class FsClient {
 public:
  // `max_locked_inodes`: past this many cached inodes, the least recently
  // used locks are given back (bounded memory, on both sides).
  FsClient(Rpc& rpc, ClientStats& stats, size_t max_locked_inodes, FsClientOptions options = {});
  ~FsClient();

  // Recalls start being answered (call before the Rpc delivers any).
  void Start();
  // Without own threads: runs the oldest queued task (recall, invalidation,
  // data flush) here. False when there is none, or when it is a recall that
  // must wait for reads of its inode in flight (it stays first and the tasks
  // behind it wait, as on the core's thread).
  bool RunPendingTask();
  void Stop();
  void set_kernel(KernelCache* kernel) { kernel_ = kernel; }

  ObjectCache& cache() { return cache_; }
  ClientStats& stats() { return stats_; }
  // Before the cache answers anything: waits while the lease may have run
  // out (Rpc::AwaitLease).
  Status AwaitLease() { return rpc_.AwaitLease(); }
  // The server's identity squashing (callers are squashed before any check).
  Squash squash() const { return rpc_.welcome().squash; }
  // A setLock the server applied (any thread): the client's copy of the file
  // locks its processes hold, which it reclaims after a server restart.
  void NoteFileLock(wire::FileLock::Reader lock);
  // Whether the kernel's lock `owner` holds a record lock on `ino` (a close
  // then has to drop it on the server).
  bool HoldsRecordLock(InodeId ino, uint64_t owner);

  // Sends `m` behind the pending log and waits for the reply (at most
  // timeout_ms; -1: as long as it takes).
  Result<RpcReply> Call(capnp::MallocMessageBuilder& m, std::string bulk = {},
                        int timeout_ms = Rpc::kCallTimeoutMs);
  // Call's first half, for a caller that must not block: sends `m` behind the
  // pending log. The reply comes from the Rpc's Wait; `log_seq` is what it
  // must carry (set_log_seq) before it is absorbed.
  Rpc::Ticket SendInOrder(capnp::MallocMessageBuilder& m, std::string bulk, uint64_t* log_seq);
  // Applies what a reply teaches: attributes of changed inodes and grants.
  void Absorb(const RpcReply& reply);
  // The reply's main inode, as the cache now has it (a local change the reply
  // predates wins), and the lock it is cached under.
  Attr AbsorbAttr(const RpcReply& reply, LockMode* lock);
  // A read's reply: the lock it came with on `ino` (which covers the pages the
  // kernel keeps); returns the lock now held.
  LockMode AbsorbRead(InodeId ino, const RpcReply& reply);
  void AbsorbContent(InodeId ino, wire::Entry::Reader e);
  // A lookup's reply: the directory's lock and, when it came whole, its names.
  void AbsorbLookup(InodeId dir, const RpcReply& reply);
  // A readdir reply's entries, their attributes and grants absorbed.
  std::vector<DirEntry> AbsorbEntries(const RpcReply& reply);
  static ObjectCache::ReplyOrder OrderOf(const RpcReply& r) {
    return ObjectCache::ReplyOrder(r.log_seq(), r.request_id());
  }

  // Ownership on demand (DESIGN §5): before changing directory `dir`, which
  // it does not own, the client asks the server for it and its listing (one
  // round trip) so that this change and the next ones there are local.
  // Returns whether it owns `dir` now. Not asked again for a second after a
  // refusal (the directory is contended: its changes go to the server).
  bool AcquireDirectory(InodeId dir, const Caller& c);
  // AcquireDirectory's two halves, for a caller that must not block (the
  // simulation); AcquireDirectory is exactly SendAcquire, the Rpc's Wait and
  // AbsorbAcquire. SendAcquire returns no ticket when it need not ask (then
  // `owned` is the answer).
  struct Acquiring {
    bool owned = false;
    Rpc::Ticket ticket;    // the acquire sent, if any
    uint64_t log_seq = 0;  // as SendInOrder gives it
    int64_t sent_ns = 0;
  };
  Acquiring SendAcquire(InodeId dir, const Caller& c);
  // Takes the acquire's reply (a failure included); returns whether `dir` is owned now.
  bool AbsorbAcquire(InodeId dir, const Acquiring& sent, Result<RpcReply> reply);

  // Local changes (client/local_ops.cc): applied to the cache under
  // EXCLUSIVE locks and logged; nullopt when the server must do it.
  //
  // An attribute change (truncation included) of an inode held EXCLUSIVE.
  std::optional<Result<Attr>> SetAttrLocally(InodeId ino, const Caller& c, SetAttrRequest req);
  // A new inode `ino` named `name` in a directory held EXCLUSIVE (regular
  // files, directories, symlinks, fifos and sockets; devices go to the server).
  struct NewNode {
    uint32_t mode = 0;   // type | permissions
    std::string target;  // symlinks
  };
  std::optional<Result<Attr>> MakeLocally(InodeId parent, const std::string& name, const Caller& c,
                                          const NewNode& node, InodeId ino);
  // unlink (or rmdir, `want_dir`) of a name whose inode is held EXCLUSIVE too.
  std::optional<Status> RemoveLocally(InodeId parent, const std::string& name, const Caller& c,
                                      bool want_dir);
  // rename(2) with its flags, when both directories, the moved inode and any
  // victim are held EXCLUSIVE (a directory moving elsewhere: the server).
  std::optional<Status> RenameLocally(InodeId parent, const std::string& name, InodeId new_parent,
                                      const std::string& new_name, uint32_t flags, const Caller& c);
  // setxattr(2) / removexattr(2) of an inode held EXCLUSIVE whose extended
  // attributes this client knows (ObjectCache::KnownXattrs).
  std::optional<Status> SetXattrLocally(InodeId ino, const std::string& name,
                                        const std::string& value, int flags, const Caller& c);
  std::optional<Status> RemoveXattrLocally(InodeId ino, const std::string& name, const Caller& c);
  // link(2) of an inode and a directory held EXCLUSIVE.
  std::optional<Result<Attr>> LinkLocally(InodeId ino, InodeId new_parent,
                                          const std::string& new_name, const Caller& c);
  // Back-pressure: a request that logged a change or posted data waits
  // (holding no lock of ours) while too much is unanswered.
  void WaitForSendWindow();
  Result<uint64_t> NewInode(const Caller& c);

  // File data: written behind while the inode is held EXCLUSIVE, else through
  // the server. `append`: at the end of the file (O_APPEND), wherever that is.
  Status Write(InodeId ino, const Caller& c, uint64_t offset, std::string_view data, bool append);
  // The server must have this inode's buffered data before it answers about it.
  Status FlushData(InodeId ino) { return write_behind_.Flush(ino); }
  Status FlushAndDropData(InodeId ino) { return write_behind_.FlushAndDrop(ino); }
  // Deferred errors (a written-behind write or a logged change the server
  // refused), reported as Linux reports writeback errors (client/error_seq.h).
  // An open file (FUSE file handle) of `ino`: its fsyncs report each failure once.
  uint64_t OpenFile(InodeId ino) { return errors_.Open(ino); }
  void CloseFile(uint64_t file) { errors_.Close(file); }
  // fsync of open file `file`: flushes `ino`'s data, waits until the server
  // has made everything sent before durable, then reports a failure this
  // open file has not reported (0: a failure no close has).
  Status Fsync(uint64_t file, InodeId ino);
  // write() and close(): a failure neither has reported, once.
  Status TakeDeferredError(InodeId ino) { return errors_.TakeForClose(ino); }
  // The grant the server gave this client for data written behind.
  const SpaceGrant& space_grant() const { return grant_; }

  // Reads of an inode's data: a recall waits for those in flight and holds
  // new ones back until its release is out.
  void BeginRead(InodeId ino);
  void EndRead(InodeId ino);

  // A request the kernel sends while it holds a lock of the inode: a
  // directory's (lookup, create, unlink, rename, readdir) or pages of a file
  // (read, write). A recall cannot wait for the kernel to drop its caches of
  // the inode while one is in flight: the kernel would wait for the request,
  // the request (or the server) for the recall.
  void BeginKernelHold(InodeId ino);
  void EndKernelHold(InodeId ino);
  class KernelHold {
   public:
    KernelHold(FsClient& c, InodeId a, InodeId b = InodeId())
        : c_(c), a_(a), b_(b == a ? InodeId() : b) {
      c_.BeginKernelHold(a_);
      if (b_.valid()) c_.BeginKernelHold(b_);
    }
    ~KernelHold() {
      c_.EndKernelHold(a_);
      if (b_.valid()) c_.EndKernelHold(b_);
    }
    KernelHold(const KernelHold&) = delete;
    KernelHold& operator=(const KernelHold&) = delete;

   private:
    FsClient& c_;
    InodeId a_, b_;
  };

  // Holds off recalls of `a` and `b` while a reply built from their locks is sent.
  class ReplyPin {
   public:
    ReplyPin(FsClient& c, InodeId a, InodeId b);
    ~ReplyPin();
    ReplyPin(const ReplyPin&) = delete;
    ReplyPin& operator=(const ReplyPin&) = delete;

   private:
    std::shared_mutex* first_;
    std::shared_mutex* second_;  // null when a and b share a stripe
  };

  // Holds off every recall (a readdirplus reply carries many inodes).
  class AllPins {
   public:
    explicit AllPins(FsClient& c) : c_(c) {
      for (auto& m : c_.pins_) m.lock_shared();
    }
    ~AllPins() {
      for (auto& m : c_.pins_) m.unlock_shared();
    }
    AllPins(const AllPins&) = delete;
    AllPins& operator=(const AllPins&) = delete;

   private:
    FsClient& c_;
  };

  // After a rename the kernel keeps the moved dentry under its new name as
  // long as it was told to keep the old one: the name is noted under the
  // directory's lock (a recall drops it) or, with no lock, dropped at once
  // (from the core's thread). Call with a ReplyPin on `dir` held.
  void NoteRenamedName(InodeId dir, const std::string& name);
  // Inodes the kernel forgot: their locks go back in batches.
  void QueueRelease(const std::vector<uint64_t>& inos);
  // Network thread hook: ships the log and queued releases once they waited enough.
  void Tick();
  // Network thread: a recall from the server (queued for the core's thread).
  void OnRecall(InodeId ino, LockMode keep);
  void BuildReclaim(wire::Request::Builder request);  // client/fs_client.cc
  void OnReclaimed(wire::Reply::Reader reply);
  // Unmount: everything logged reaches the server and is made durable.
  void Unmount();

 private:
  struct Task {
    InodeId ino;
    LockMode keep = LockMode::kNone;
    enum class Kind { kRecall, kInvalidate, kFlushOldData } kind = Kind::kRecall;
    std::vector<std::string> names = {};  // kInvalidate: names in `ino` the kernel may cache
  };
  static constexpr int64_t kDataDelayNs = 1000000000;  // data in an open file waits at most ~1 s
  void TaskLoop();
  void RunTask(const Task& t);
  int64_t Now() const;      // realtime, unless FsClientOptions::clock_ns
  int64_t MonoNow() const;  // monotonic (data ages), unless FsClientOptions::clock_ns
  void HandleRecall(InodeId ino, LockMode keep);
  void WaitForReads(InodeId ino);
  // `giving`: the NoteGivingBack token of the lock given back.
  void SendRelease(InodeId ino, LockMode keep, uint64_t giving);
  // Drops the kernel's caches of `ino` (attributes, pages, and the names in
  // it) from a thread of their own, waiting for that until done, or a request
  // the kernel holds a lock of `ino` for is in flight (see KernelHold).
  void InvalidateKernel(InodeId ino, std::vector<std::string> names);
  struct Invalidator {
    std::thread thread;
    std::shared_ptr<bool> done;  // guarded by gate_mu_
  };
  void JoinFinishedInvalidators(bool all = false);
  std::mutex inval_mu_;  // guards inval_threads_ (rank: above gate_mu_)
  std::vector<Invalidator> inval_threads_;
  void Post(Task t);

  class Grants;  // one reply's grants, indexed
  // A reply's attributes of `attr.ino` into the cache (they are older than
  // data of it still held here, whatever the log order says).
  Attr PutReplyAttr(const Attr& attr, LockMode lock, const RpcReply& reply);
  void AbsorbChanged(const RpcReply& reply, const Grants& grants);
  uint64_t ShipLogLocked();  // send_mu_ held; returns the log sequence it covers
  void AppendLocked(WritebackLog::Op op);
  // `touched`: per change of the commit, the inodes whose cache a refusal voids.
  void OnCommitted(const std::vector<std::vector<InodeId>>& touched, uint64_t seq,
                   Result<RpcReply> reply);
  Status PostWrite(InodeId ino, const Caller& c, uint64_t offset, std::string data,
                   uint64_t grant_bytes);
  void OnWritten(InodeId ino, uint64_t seq, uint64_t grant_bytes, Result<RpcReply> reply);
  Status WriteThrough(InodeId ino, const Caller& c, uint64_t offset, std::string_view data,
                      bool append);
  void SendReleases(int64_t min_age_ms);
  // Gives back the least recently used locks while the cache is over its bound.
  void TrimCache();
  void ReturnIdleGrant(int64_t now_ns);
  std::shared_mutex& Stripe(InodeId ino) { return pins_[ino.value % kPinStripes]; }

  Rpc& rpc_;
  ClientStats& stats_;
  size_t max_locked_inodes_;
  const FsClientOptions options_;
  ObjectCache cache_;
  SpaceGrant grant_;          // what data written behind may take on the server
  std::mutex file_locks_mu_;  // guards file_locks_
  FileLocks file_locks_;      // every owner under ClientId() (the server knows who we are)
  std::vector<InodeId> reclaim_asked_;  // network thread: locks the last reclaim asked for
  WriteBehind write_behind_;
  ErrorSeq errors_;
  std::atomic<KernelCache*> kernel_{nullptr};

  static constexpr size_t kPinStripes = 64;
  std::shared_mutex pins_[kPinStripes];

  std::mutex send_mu_;  // orders sends; guards log_'s change list
  WritebackLog log_;

  static constexpr int kMaxCommitsInFlight = 4;
  static constexpr size_t kMaxDataInFlight = 64u << 20;
  static constexpr int64_t kLogDelayMs = 100;  // a logged change waits at most about this
  static constexpr size_t kMaxLogOps = 4096;   // then it ships at once
  static_assert(kMaxLogOps <= kMaxCommitOps, "the server refuses longer commits");
  std::mutex flight_mu_;  // guards the two counters below
  std::condition_variable flight_cv_;
  int commits_in_flight_ = 0;
  size_t bytes_in_flight_ = 0;

  struct Gate {
    int reads = 0;
    int kernel_holds = 0;  // requests in flight the kernel sends holding a lock of this inode
    bool recalling = false;
  };
  void LeaveGate(InodeId ino, int Gate::*counter);
  std::mutex gate_mu_;  // guards gates_
  std::condition_variable gate_cv_;
  std::unordered_map<InodeId, Gate> gates_;

  std::mutex release_mu_;  // guards the two fields below
  std::vector<uint64_t> pending_release_;
  int64_t oldest_release_ns_ = 0;

  // Locks being given back (the mode held before), from when the cache drops
  // them until the server answers the release, unlock or downgrade. The
  // server holds them until it takes that request, and the changes sent
  // before it (through request `changes_through`) need them: after a restart,
  // while any of those may be unanswered, the reclaim lists them as given
  // back (the server grants them at its grace period's end unless another
  // client reclaimed them; the resent release gives them back again). NoteGivingBack returns a
  // token (0: none); ChangesSent notes the last change sent; GivenBack(token) is the release's
  // reply handler, which forgets them.
  struct Giving {
    std::vector<std::pair<InodeId, LockMode>> locks;
    uint64_t changes_through = UINT64_MAX;  // not all sent yet
  };
  uint64_t NoteGivingBack(std::vector<std::pair<InodeId, LockMode>> locks,
                          uint64_t changes_through = UINT64_MAX);
  void ChangesSent(uint64_t token, uint64_t last_request_id);
  Rpc::ReplyHandler GivenBack(uint64_t token);
  std::mutex giving_mu_;  // guards the two fields below (rank: leaf)
  uint64_t next_giving_ = 1;
  std::map<uint64_t, Giving> giving_back_;

  static constexpr int64_t kAcquireRetryNs = 1000000000;
  static constexpr uint64_t kAcquireMaxEntries = 16384;  // the server lists no larger ones
  std::mutex acquire_mu_;                                // guards refused_ns_ (rank: leaf)
  std::unordered_map<InodeId, int64_t> refused_ns_;      // directory -> when it was refused

  std::mutex ino_mu_;  // guards next_ino_, end_ino_
  uint64_t next_ino_ = 0;
  uint64_t end_ino_ = 0;

  // Network thread only (Tick):
  int64_t last_prune_ns_ = 0;
  uint64_t prune_watermark_ = 0;
  int64_t last_data_tick_ns_ = 0;

  std::mutex tasks_mu_;  // guards tasks_, stop_
  std::condition_variable tasks_cv_;
  std::deque<Task> tasks_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace cohfs
