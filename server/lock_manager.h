// LockManager: which client holds which inode in which mode, and which holders
// are being recalled (DESIGN §5).
//
// Modes per client: NONE < SHARED < EXCLUSIVE; EXCLUSIVE excludes every other
// holder. A request that needs an inode (to read it: nobody else EXCLUSIVE; to
// change it: nobody else at all) asks Conflicts() for the holders in its way;
// the server sends each a recall (Recall()) and parks the request until the
// holders have released or downgraded. While a recall of (client, inode) is
// outstanding, that client is granted nothing new on the inode: a grant that
// crossed the recall on the wire would outlive it.
//
// Contention: an inode recalled within the last `contention_ms` is not handed
// out at all (locks already held stay), so two clients working in one
// directory send their operations to the server instead of taking the
// directory from each other per call (as CephFS falls back when caps bounce).
// The table is bounded: past a limit the oldest locks are recalled (TrimTo).
// Knows nothing of storage or sockets. Thread: the server's storage executor.
#pragma once

#include <cstdint>
#include <deque>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/fs_types.h"
#include "common/ids.h"

namespace cohfs {

class LockManager {
 public:
  explicit LockManager(int64_t contention_ms = 1000) : contention_ms_(contention_ms) {}

  // A holder in the way of a request, and the mode it may keep.
  struct Conflict {
    ClientId holder;
    InodeId ino;
    LockMode keep = LockMode::kNone;
  };

  // Grants `wanted` (or keeps a stronger mode already held) when compatible
  // with every other holder; returns the mode the client now holds. On
  // conflict returns the mode held before and lists the conflicting holders.
  LockMode Acquire(ClientId client, InodeId ino, LockMode wanted,
                   std::vector<ClientId>* conflicts = nullptr);
  // The lock a reply may carry: `wanted` if compatible; nothing while the
  // inode is contended or a recall of it from this client is outstanding.
  // Returns the mode to put in the reply (kNone: none).
  LockMode Grant(ClientId client, InodeId ino, LockMode wanted, int64_t now_ms);
  // Holders other than `client` that must give way before `client` may read
  // (kShared) or change (kExclusive) `ino`.
  void Conflicts(ClientId client, InodeId ino, LockMode need, std::vector<Conflict>* out) const;
  // Records a recall; true when it is new (not already asked at this mode or
  // lower). `contended`: another client wants the inode (see Contended).
  bool Recall(const Conflict& c, int64_t now_ms, bool contended = true);
  // Bounded memory: while more than `max_inodes` inodes are locked, recalls
  // (to NONE) every holder of the oldest locked inodes, up to `batch` of them
  // at a time. Returns the recalls to send.
  std::vector<Conflict> TrimTo(size_t max_inodes, size_t batch, int64_t now_ms);
  bool RecallPending(ClientId client, InodeId ino) const;
  // The recalls of `client` not answered yet (sent again when it reconnects).
  std::vector<Conflict> PendingRecalls(ClientId client) const;
  // Clients with a recall outstanding since `sent_before_ms` or earlier (the
  // recall deadline: DESIGN §7). Each is reported once per recall.
  std::vector<ClientId> Unanswered(int64_t sent_before_ms);
  // A client that reconnected was sent its pending recalls again: their
  // deadlines start over.
  void RestartRecallClocks(ClientId client, int64_t now_ms);

  void Release(ClientId client, InodeId ino);
  void Downgrade(ClientId client, InodeId ino);  // EXCLUSIVE -> SHARED
  // Drops every lock of a client (session end); returns the inodes it held.
  std::vector<InodeId> ReleaseAll(ClientId client);

  // References: a client whose kernel still has an inode (open, cached) after
  // giving up its lock. They block nobody; they keep an unlinked inode alive.
  void AddRef(ClientId client, InodeId ino);
  void DropRef(ClientId client, InodeId ino);
  std::vector<InodeId> DropRefs(ClientId client);  // session end: the inodes it referenced
  bool IsReferenced(InodeId ino) const { return refs_.count(ino) != 0; }
  bool References(ClientId client, InodeId ino) const;

  LockMode HeldBy(ClientId client, InodeId ino) const;
  bool IsHeld(InodeId ino) const;
  bool Contended(InodeId ino, int64_t now_ms) const;
  size_t resource_count() const { return resources_.size(); }
  // Locks `client` holds; all clients' locks (O(clients)).
  size_t CountHeldBy(ClientId client) const {
    auto it = by_client_.find(client);
    return it == by_client_.end() ? 0 : it->second.size();
  }
  size_t CountHeld() const {
    size_t n = 0;
    for (auto& [client, inos] : by_client_) n += inos.size();
    return n;
  }

 private:
  struct Holder {
    LockMode mode = LockMode::kNone;
    bool recalling = false;
    LockMode recall_keep = LockMode::kNone;  // while recalling
    int64_t recall_ms = 0;                   // when the outstanding recall was sent
  };
  struct RecallClock {
    InodeId ino;
    ClientId holder;
    int64_t sent_ms;
  };
  // Per inode: holders (never kNone; an empty map is erased).
  std::unordered_map<InodeId, std::unordered_map<ClientId, Holder>> resources_;
  std::unordered_map<ClientId, std::unordered_set<InodeId>> by_client_;
  int64_t contention_ms_;
  std::unordered_map<InodeId, int64_t> recalled_ms_;  // last recall; pruned when large
  // Inodes in the order their resource was made (stale entries are skipped,
  // and the queue is rebuilt when mostly stale): the trim order.
  std::deque<InodeId> age_;
  std::unordered_set<InodeId> trimming_;  // recalled by TrimTo, not yet given back
  // Outstanding recalls in the order they were sent (answered ones are
  // skipped when they reach the front).
  std::deque<RecallClock> recall_clocks_;
  std::unordered_map<InodeId, std::unordered_set<ClientId>> refs_;
};

}  // namespace cohfs
