// Dispatch: one decoded request -> FileSystem call -> encoded reply, plus the
// lock grants that make the reply's objects cacheable on the client.
// Thread: the storage executor only.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/file_locks.h"
#include "common/ids.h"
#include "common/squash.h"
#include "protocol/codec.h"
#include "server/file_system.h"
#include "server/leases.h"
#include "server/lock_manager.h"
#include "server/server_metrics.h"
#include "server/session_store.h"
#include "server/space_grants.h"

namespace cohfs {

// What the server remembers about one client (DESIGN §7): it outlives its
// connections (a client that reconnects resumes it) and, in the store
// (server/session_store.h), server restarts.
struct Session {
  ClientId client;   // also the session id
  uint64_t key = 0;  // a reconnecting client resumes with (id, key)
  std::string name;
  std::vector<InodeRange> inode_ranges;  // numbers this client may create with
  ConnectionId conn = 0;                 // 0: detached, waiting for the client to reconnect
  int64_t ends_ms = 0;                   // detached: when it ends unless resumed
  bool reclaiming = false;               // stored before a restart, locks not reclaimed yet
  bool goodbye = false;                  // a clean unmount: ends with its connection
  int64_t last_request_ms = 0;           // when its last request came (`cohfs status`)
  // Reclaimed as given back (Reclaim.givingBack): granted at the grace
  // period's end unless another client reclaimed them.
  std::vector<std::pair<InodeId, LockMode>> giving_back;
  std::set<uint64_t> replays;  // requests whose replies are stored
  uint64_t replied_below = 0;  // the client has every reply below this request id
  bool OwnsInode(InodeId ino) const;
  SessionItem ToItem() const;
};

// A name a request carries: EINVAL for "", ".", ".." or one with '/' or NUL;
// ENAMETOOLONG past kMaxNameBytes.
Status CheckRequestName(std::string_view name);

struct ServerConfig {
  uint32_t lease_ms = 15000;
  uint64_t inode_range_size = 65536;
  size_t leaf_max_entries = 256;            // a directory this small comes whole with a lookup
  size_t acquire_max_entries = 16384;       // ... and this small with an acquire
  size_t max_locked_inodes = 1 << 20;       // past this, the oldest locks are recalled
  uint64_t max_grant_bytes = 256ull << 20;  // a client's space grant never exceeds this
  Squash squash = Squash::kNone;            // --root-squash, --all-squash
};

class Dispatcher {
 public:
  Dispatcher(FileSystem& fs, LockManager& locks, const Volume& volume, const ServerConfig& config);

  struct Outcome {
    OutFrame reply;
    bool needs_sync = false;  // reply only after the next durable sync
    bool mutated = false;     // the request committed a change
    bool released = false;    // the client gave back locks: parked requests may run
    bool error = false;       // answered with an error
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

  // A new session: its id, key, first inode range, stored.
  Result<Session> NewSession(std::string_view client_name);
  // The reply to a hello that opened (or resumed, or made the client reclaim) `session`.
  OutFrame Welcome(Session& session, DecodedRequest& hello, bool resumed);
  // Hello's version check.
  static Status CheckVersion(wire::Request::Hello::Reader h);
  // A request this session sent before and got no reply to: the stored reply
  // again, without the locks and space it granted (they may be gone since);
  // nullopt: run it (a commit applied in part resumes where it stopped).
  std::optional<OutFrame> Replay(Session& session, DecodedRequest& request);
  // After a restart, until every stored client reclaimed or the grace period
  // ended: nothing is granted that the requester does not hold already.
  void set_grace(bool grace) { grace_ = grace; }
  // Session end: drop its locks and space grant, reclaim orphans nobody
  // references; `forget`: its stored state too (not at a server stop).
  void EndSession(Session& session, bool forget = true);
  // At start, and at the grace period's end: orphans nobody references.
  void ReclaimOrphans();
  // The grace period's end: what `s` reclaimed as given back (Session::giving_back).
  void GrantGivingBack(Session& s);
  SessionStore& session_store() { return store_; }
  LockManager& locks() { return locks_; }
  FileSystem& fs() { return fs_; }
  const SpaceGrants& space_grants() const { return grants_; }
  // Requests, errors and their handling time by type (null: not counted).
  void set_metrics(ServerMetrics* metrics) { metrics_ = metrics; }

 private:
  struct Ctx;
  Outcome Execute(Ctx& ctx, DecodedRequest& request, RequestId id);
  Status Dispatch(Ctx& ctx);
  // The caller a request names, squashed as configured (server/dispatch_access.cc).
  Caller CallerOf(wire::Caller::Reader caller) const;
  // Every inode `req` names by number is one `c` could reach by a path.
  Status CheckReach(const Session& s, const Caller& c, wire::Request::Reader req);
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
  // The reply being recorded for replay (Handle); its partial form goes into
  // every WriteBatch the request commits (FileSystem::set_commit_hook).
  struct Recording {
    uint64_t request = 0;
    uint32_t progress = 1;  // a commit: the changes before this one are applied
    const std::vector<CommitFailure>* failed = nullptr;  // a commit: refused so far
  };
  struct Resume {  // a commit applied in part before a restart, resent
    uint64_t request = 0;
    uint32_t progress = 0;
    std::string partial;  // its partial reply (the failures so far)
  };
  void BeginRecording(Session& s, uint64_t request);
  void FinishRecording(Session& s, const OutFrame& reply);
  Status Reclaim(Ctx& ctx);
  Status Lookup(Ctx& ctx);
  static constexpr size_t kLeafContentBytes = 1u << 20;  // 256 entries of 4 KiB
  void AttachContent(const Caller& c, const Attr& attr, wire::Entry::Builder out, size_t* bytes);
  static std::string FailuresReply(const std::vector<CommitFailure>& failed);
  OutFrame RebuiltReply(wire::Request::Reader request, RequestId id);
  void LoadFailures(const std::string& partial, std::vector<CommitFailure>* failed);
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
  SessionStore store_;
  bool grace_ = false;
  std::optional<Recording> recording_;
  std::optional<Resume> resume_;
  ServerMetrics* metrics_ = nullptr;
};

// Whether a request's reply is stored for replay: every kind that changes
// something (the others are answered again by running them again).
bool RecordsReply(wire::Request::Which which);

}  // namespace cohfs
