// Dispatch: one decoded request -> FileSystem call -> encoded reply, plus the
// lock grants that make the reply's objects cacheable on the client.
// Thread: the storage executor only.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include "common/ids.h"
#include "protocol/codec.h"
#include "server/file_locks.h"
#include "server/file_system.h"
#include "server/lock_manager.h"
#include "server/space_grants.h"

namespace cohfs {

// What the server remembers about one client connection.
struct Session {
  ClientId client;
  bool welcomed = false;
  std::vector<InodeRange> inode_ranges;  // numbers this client may create with
  bool OwnsInode(InodeId ino) const;
};

// A name a request carries: EINVAL for "", ".", ".." or one with '/' or NUL;
// ENAMETOOLONG past kMaxNameBytes.
Status CheckRequestName(std::string_view name);

struct ServerConfig {
  uint32_t lease_ms = 15000;
  uint64_t inode_range_size = 65536;
  size_t leaf_max_entries = 256;       // a directory this small comes whole with a lookup
  size_t acquire_max_entries = 16384;  // ... and this small with an acquire
  size_t max_locked_inodes = 1 << 20;  // past this, the oldest locks are recalled
  uint64_t max_grant_bytes = 256ull << 20;  // a client's space grant never exceeds this
};

class Dispatcher {
 public:
  Dispatcher(FileSystem& fs, LockManager& locks, const Volume& volume, const ServerConfig& config);

  struct Outcome {
    OutFrame reply;
    bool needs_sync = false;  // reply only after the next durable sync
    bool mutated = false;     // the request committed a change
    bool released = false;    // the client gave back locks: parked requests may run
  };
  // Whether `request` may run now: false when other clients' locks are in its
  // way (`other_clients`: any are connected) or it waits for a file lock; the
  // recalls to send (those not already sent) go to `recalls`.
  bool Admit(Session& session, DecodedRequest& request, int64_t now_ms, bool other_clients,
             std::vector<LockManager::Conflict>* recalls);
  Outcome Handle(Session& session, DecodedRequest& request, int64_t now_ms);
  // Recalls that bring the lock table back under its limit (bounded memory).
  std::vector<LockManager::Conflict> TrimLocks(int64_t now_ms) {
    return locks_.TrimTo(config_.max_locked_inodes, kTrimBatch, now_ms);
  }
  static constexpr size_t kTrimBatch = 256;
  // The reply to a sync-gated request once the sync finished with `status`.
  static OutFrame SyncReply(RequestId id, const Status& status);
  static OutFrame ErrorReply(RequestId id, const Status& status);

  // Session end: drop its locks and space grant, reclaim orphans nobody references.
  void EndSession(Session& session);
  const SpaceGrants& space_grants() const { return grants_; }

 private:
  struct Ctx;
  Status Dispatch(Ctx& ctx);
  Status SetFileLock(Ctx& ctx);
  // WRITE: within the client's space grant when it says so; tops the grant up.
  Status Write(Ctx& ctx);
  Status AcquireDirectory(Ctx& ctx);
  // The COMMIT request (server/dispatch_commit.cc): applies `ops` group by
  // group, fills the reply's `failures` and lists in `changed` the inodes of
  // refused changes; `mutated` when any group was applied.
  void Commit(Session& s, capnp::List<wire::Request>::Reader ops, wire::Reply::Builder reply,
              std::vector<InodeId>* changed, bool* mutated);
  struct CommitFailure;
  // One group: ops [first, end), all applied in one FileSystem::Group or none.
  bool ApplyGroup(Session& s, capnp::List<wire::Request>::Reader ops, uint32_t first, uint32_t end,
                  std::vector<CommitFailure>* failed);
  // One change of a group: ownership, then ApplyChange. `touched`: the inodes
  // whose attributes the client re-learns if it fails; `removed`: inodes that
  // lost a name (reclaimed once the group is applied and nobody holds them).
  Status ApplyCommitted(Session& s, wire::Request::Reader op, std::vector<InodeId>* touched,
                        std::vector<InodeId>* removed);
  Status ApplyChange(const Caller& c, wire::Request::Reader op, std::vector<InodeId>* removed);
  // The existing inodes a committed change needs EXCLUSIVE (and, for a create,
  // the new one first), names resolved against the tree as it is now.
  std::vector<InodeId> CommitTargets(wire::Request::Reader op);
  // Puts the grant (if any) in the reply; returns the mode granted (kNone: none).
  LockMode Grant(Ctx& ctx, InodeId ino, LockMode mode);
  void OwnParent(Ctx& ctx, InodeId parent);
  void ReleaseAndReclaim(ClientId client, InodeId ino);
  void MaybeReclaim(InodeId ino);

  FileSystem& fs_;
  LockManager& locks_;
  FileLocks file_locks_;
  SpaceGrants grants_;
  const Volume& volume_;
  ServerConfig config_;
};

}  // namespace cohfs
