// SpaceGrants: free device space the server has promised to clients for the
// data they write behind (DESIGN §7, docs/wire-protocol.md "Space grants"; as
// Lustre's grants). A client acknowledges a write from memory only within
// its grant, so the server must be able to store it whenever it arrives.
//
// Invariant: total() <= the device's free bytes (allocatable or waiting for
// a sync). It holds because
// - TopUp grants only from free space nobody holds (and at most half of it
//   per reply, so grants shrink as the device fills and never take the last
//   of it from writers without a grant);
// - every allocation leaves total() minus the allocating write's own grant
//   free (the Dispatcher sets Allocator::set_reserved_bytes before each
//   request);
// - a granted write takes its `grantBytes` out of the grant (Consume), which
//   is at least what it allocates (the client charges every block it spans
//   and one more, for an inline file turning into extents).
// A session's grant goes back when it ends (Drop).
// Thread: the storage executor, as all of Dispatcher.
#pragma once

#include <cstdint>
#include <unordered_map>

#include "common/ids.h"

namespace cohfs {

class SpaceGrants {
 public:
  // `max_grant_bytes`: no client holds more, whatever it asks for.
  explicit SpaceGrants(uint64_t max_grant_bytes) : max_grant_bytes_(max_grant_bytes) {}

  uint64_t of(ClientId client) const;
  uint64_t total() const { return total_; }
  // What an allocation for `client` must leave free: everybody's grant but
  // `own_bytes` of its own (the part a granted write uses).
  uint64_t ReservedAgainst(ClientId client, uint64_t own_bytes) const;
  // A granted write was handled (whatever its outcome): takes up to `bytes`
  // out of the client's grant; returns what was taken (less only when the
  // client claimed more than it held, a client bug).
  uint64_t Consume(ClientId client, uint64_t bytes);
  // Grows the client's grant towards `want_bytes` (capped) from `free_bytes`
  // of free device space; returns the bytes added (whole blocks, maybe 0).
  uint64_t TopUp(ClientId client, uint64_t want_bytes, uint64_t free_bytes);
  // After a server restart: the client's written-behind data still counts on
  // `bytes` of grant; gives back as much of it as is free and not granted.
  uint64_t Restore(ClientId client, uint64_t bytes, uint64_t free_bytes);
  // The session ended: its grant is free space again.
  void Drop(ClientId client);

 private:
  uint64_t max_grant_bytes_;
  uint64_t total_ = 0;  // sum of granted_
  std::unordered_map<ClientId, uint64_t> granted_;
};

}  // namespace cohfs
