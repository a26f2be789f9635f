// FuseOps: the libfuse low-level operations table. Every request is answered
// exactly once; cached operations are answered from the ObjectCache; attribute
// changes of inodes this client holds EXCLUSIVE are answered locally and
// shipped later (WritebackLog); data under EXCLUSIVE is written behind
// (WriteBehind); the rest become one RPC each through the RpcClient
// (write-through: the server applies the change before the kernel sees it
// succeed). Every request is sent behind the log's pending changes, so the
// server always sees this client's changes in the order it made them.
#pragma once

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "client/object_cache.h"
#include "client/rpc_client.h"
#include "client/stats.h"
#include "client/write_behind.h"
#include "client/writeback_log.h"

namespace cohfs {

struct FuseOpsConfig {
  double cached_timeout_s = 86400;  // kernel entry/attr timeout while a lock is held
  uint32_t readdir_batch = 1024;    // entries fetched per ReadDir round trip
};

class FuseOps {
 public:
  FuseOps(RpcClient& rpc, ClientStats& stats, const FuseOpsConfig& config);

  static const fuse_lowlevel_ops& Table();
  // Called once the kernel's INIT has been answered (the mount is live).
  void set_on_init(std::function<void()> f) { on_init_ = std::move(f); }

  // Network thread hook: ships the writeback log and the queued lock releases
  // once they have waited long enough.
  void Tick();
  // For invalidating the kernel's attributes of a change the server refused;
  // nullptr once the mount is gone.
  void set_session(fuse_session* se) { session_ = se; }

  // Implementation entry points, one per FUSE operation (see fuse_ops.cc).
  struct Impl;

 private:
  friend struct Impl;
  RpcClient& rpc_;
  ClientStats& stats_;
  FuseOpsConfig config_;
  ObjectCache cache_;
  WriteBehind write_behind_;
  std::function<void()> on_init_;
  std::atomic<fuse_session*> session_{nullptr};  // read by the network thread

  // Orders local changes against requests: a request is enqueued, under this
  // mutex, right behind a Commit of everything logged before it (rank: above
  // the RpcClient's and the cache's mutexes; never held while waiting).
  std::mutex send_mu_;
  WritebackLog log_;  // guarded by send_mu_ (but its failure records)

  // Sends `m` behind the pending log and waits for the reply.
  Result<RpcReply> Call(capnp::MallocMessageBuilder& m, std::string bulk = {});
  // Sends the log as one Commit; returns the log sequence it covers. send_mu_ held.
  uint64_t ShipLogLocked();
  void OnCommitted(const std::vector<InodeId>& inos, uint64_t seq, Result<RpcReply> reply);
  // Applies an attribute change to an EXCLUSIVE inode locally and logs it;
  // nullopt when the server must do it.
  std::optional<Result<Attr>> SetAttrLocally(InodeId ino, const Caller& c, SetAttrRequest req);
  // Creates regular file `ino` in a directory held EXCLUSIVE locally and logs
  // it; nullopt when the server must do it.
  std::optional<Result<Attr>> CreateLocally(InodeId parent, const std::string& name,
                                            const Caller& c, uint32_t mode, InodeId ino);
  void AppendLocked(WritebackLog::Op op);  // send_mu_ held
  // Sends one range of file data behind the log without waiting (the
  // WriteBehind sender); a failure is reported by the next flush of the inode.
  Status PostWrite(InodeId ino, const Caller& c, uint64_t offset, std::string data);
  void OnWritten(InodeId ino, uint64_t seq, Result<RpcReply> reply);
  // Back-pressure: a FUSE request that logged a change or posted data waits
  // (holding no lock of ours) while too much is unanswered.
  void WaitForSendWindow();
  static constexpr int kMaxCommitsInFlight = 4;
  static constexpr size_t kMaxDataInFlight = 64u << 20;
  std::mutex flight_mu_;  // guards the two counters below (rank: leaf)
  std::condition_variable flight_cv_;
  int commits_in_flight_ = 0;
  size_t bytes_in_flight_ = 0;
  // Sends queued lock releases older than `min_age_ms`.
  void SendReleases(int64_t min_age_ms);
  // A logged change waits at most about this long for a request to ride ahead of.
  static constexpr int64_t kLogDelayMs = 100;
  static constexpr size_t kMaxLogOps = 4096;  // then it ships at once

  // Inodes the kernel forgot, whose locks go back to the server in batches.
  std::mutex release_mu_;  // guards the two fields below (rank: leaf)
  std::vector<uint64_t> pending_release_;
  int64_t oldest_release_ns_ = 0;

  std::mutex ino_mu_;  // guards next_ino_, end_ino_ (rank: leaf)
  uint64_t next_ino_ = 0;
  uint64_t end_ino_ = 0;
};

}  // namespace cohfs
