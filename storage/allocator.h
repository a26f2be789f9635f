// Allocator: free device space, kept in memory and persisted as FREE items.
//
// Invariant after every committed Txn: the FREE items in the store are exactly
// the coalesced union of `allocatable` and `pending` ranges.
// Freed space is `pending` until the commit that freed it is durable
// (ReleasePending after ItemStore::SyncWal): reusing it earlier could let a
// crash expose new data through an old, still-durable EXTENT item.
// Changes are recorded in the caller's Txn; if the Txn is dropped uncommitted,
// its abort hooks restore the in-memory state.
// Reserved space (the server's space grants to clients) is free space that
// Allocate leaves alone: an allocation succeeds only if free_bytes() stays at
// least reserved_bytes() after it.
// Thread: the storage executor only.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <vector>

#include "common/status.h"
#include "storage/item_store.h"

namespace cohfs {

struct DeviceRange {
  uint64_t offset = 0;  // bytes, block aligned
  uint64_t length = 0;  // bytes, block aligned
  bool operator==(const DeviceRange&) const = default;
};

class Allocator {
 public:
  // Rebuilds the in-memory maps from the FREE items (all allocatable).
  static Result<Allocator> Load(ItemStore& store);
  // For format: one FREE item covering the whole data area.
  static void InitFree(Txn& txn, DeviceRange data_area);

  // Allocates `bytes` (rounded up to blocks) as one or more ranges, preferring
  // one contiguous range. ENOSPC when not enough allocatable space, or when
  // the allocation would eat into the reserved space.
  Result<std::vector<DeviceRange>> Allocate(uint64_t bytes, Txn& txn);
  // Frees a range (it becomes allocatable after ReleasePending).
  void Free(DeviceRange range, Txn& txn);
  // Called after SyncWal: everything freed so far may now be reused. Not while
  // a Txn that freed space is still open: its frees would become reusable
  // before they are even committed.
  void ReleasePending();

  uint64_t free_bytes() const;  // allocatable + pending
  uint64_t allocatable_bytes() const;
  // Space allocations must leave free (set before each request by the server).
  void set_reserved_bytes(uint64_t bytes) { reserved_bytes_ = bytes; }
  uint64_t reserved_bytes() const { return reserved_bytes_; }
  // free_bytes() beyond the reservation (0 when the reservation covers it all).
  uint64_t unreserved_bytes() const;

 private:
  std::map<uint64_t, uint64_t> allocatable_;  // offset -> length, coalesced
  std::map<uint64_t, uint64_t> pending_;      // offset -> length
  std::map<uint64_t, uint64_t> persisted_;    // mirror of FREE items, coalesced
  uint64_t reserved_bytes_ = 0;
};

}  // namespace cohfs
