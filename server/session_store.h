// SessionStore: the sessions and replies that outlive a server restart
// (DESIGN §7), as items in the store (docs/disk-format.md):
// - SESSION (0, session id): the session's key, client name and inode
//   ranges; offset 0 holds the next session id. Written at hello, deleted when
//   the session ends (goodbye, lease run out, not reclaimed after a restart).
// - REPLAY (0, session << 40 | request): the reply to a request that changed
//   something, so that a resent request is answered, not applied twice. Its
//   first form is written in the same WriteBatch as the change (the commit
//   hook, FileSystem::set_commit_hook), so a change is never in the store
//   without it; deleted once the client says it has the reply (repliedBelow).
// Thread: the storage executor.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "common/status.h"
#include "storage/item_store.h"
#include "storage/items.h"

namespace cohfs {

class SessionStore {
 public:
  explicit SessionStore(ItemStore& items) : items_(items) {}

  struct Stored {
    uint64_t id = 0;
    SessionItem item;
    std::set<uint64_t> replays;  // request ids with a REPLAY item
  };
  // Every stored session (at start: the clients expected to come back).
  Result<std::vector<Stored>> LoadAll();
  // A new session id (never handed out before on this file system).
  Result<uint64_t> NewId();
  Status Put(uint64_t id, const SessionItem& item);
  // Deletes the session and its replies.
  Status Drop(uint64_t id, const std::set<uint64_t>& replays);

  Result<std::optional<ReplayItem>> GetReplay(uint64_t id, uint64_t request);
  void PutReplay(Txn& txn, uint64_t id, uint64_t request, const ReplayItem& item);
  // Writes `item` and deletes the replies below `replied_below` (from `replays`).
  Status Record(uint64_t id, uint64_t request, const ReplayItem& item,
                std::set<uint64_t>* replays, uint64_t replied_below);

 private:
  ItemStore& items_;
};

}  // namespace cohfs
