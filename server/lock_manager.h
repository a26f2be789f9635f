// LockManager: which client holds which inode in which mode (DESIGN §5).
//
// Compatible requests are granted at once. A conflicting request is not granted
// and the holders that would have to be recalled are reported; recalls
// themselves are the coherency protocol's job, built on this table.
// Knows nothing of storage or sessions' sockets.
// Thread: the server's storage executor only.
#pragma once

#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/fs_types.h"
#include "common/ids.h"

namespace cohfs {

class LockManager {
 public:
  // Grants `wanted` (or keeps a stronger mode already held) when compatible
  // with every other holder; returns the mode the client now holds. On
  // conflict returns the mode held before and lists the conflicting holders.
  LockMode Acquire(ClientId client, InodeId ino, LockMode wanted,
                   std::vector<ClientId>* conflicts = nullptr);
  void Release(ClientId client, InodeId ino);
  // Drops every lock of a client (session end); returns the inodes it held.
  std::vector<InodeId> ReleaseAll(ClientId client);

  LockMode HeldBy(ClientId client, InodeId ino) const;
  bool IsHeld(InodeId ino) const;
  size_t resource_count() const { return resources_.size(); }

 private:
  // Per inode: holders and their modes (never kNone; an empty map is erased).
  std::unordered_map<InodeId, std::unordered_map<ClientId, LockMode>> resources_;
  std::unordered_map<ClientId, std::unordered_set<InodeId>> by_client_;
};

}  // namespace cohfs
