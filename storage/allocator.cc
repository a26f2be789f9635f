#include "storage/allocator.h"

#include <algorithm>
#include <utility>

#include "common/limits.h"
#include "storage/items.h"

namespace cohfs {
namespace {

using RangeMap = std::map<uint64_t, uint64_t>;
// Reports each persisted change: put (offset, length) or delete (offset, 0).
using Edit = std::function<void(uint64_t offset, uint64_t length, bool put)>;

void NoEdit(uint64_t, uint64_t, bool) {}

// Adds [off, off+len) to a coalesced map, merging with touching neighbours.
void InsertCoalesce(RangeMap& m, uint64_t off, uint64_t len, const Edit& edit) {
  auto next = m.lower_bound(off);
  CHECK_MSG(next == m.end() || next->first >= off + len, "free range overlaps free space");
  if (next != m.begin()) {
    auto prev = std::prev(next);
    CHECK_MSG(prev->first + prev->second <= off, "free range overlaps free space");
    if (prev->first + prev->second == off) {
      off = prev->first;
      len += prev->second;
      edit(prev->first, 0, false);
      m.erase(prev);
    }
  }
  if (next != m.end() && next->first == off + len) {
    len += next->second;
    edit(next->first, 0, false);
    m.erase(next);
  }
  m[off] = len;
  edit(off, len, true);
}

// Removes [off, off+len), which must lie inside one entry of the map.
void RemoveRange(RangeMap& m, uint64_t off, uint64_t len, const Edit& edit) {
  auto it = m.upper_bound(off);
  CHECK_MSG(it != m.begin(), "range is not free");
  --it;
  uint64_t start = it->first, end = it->first + it->second;
  CHECK_MSG(start <= off && off + len <= end, "range is not free");
  m.erase(it);
  edit(start, 0, false);
  if (start < off) {
    m[start] = off - start;
    edit(start, off - start, true);
  }
  if (off + len < end) {
    m[off + len] = end - (off + len);
    edit(off + len, end - (off + len), true);
  }
}

bool Contains(const RangeMap& m, uint64_t off, uint64_t len) {
  auto it = m.upper_bound(off);
  if (it == m.begin()) return false;
  --it;
  return it->first <= off && off + len <= it->first + it->second;
}

Edit TxnEdit(Txn& txn) {
  return [&txn](uint64_t offset, uint64_t length, bool put) {
    ItemKey k{0, ItemType::kFree, offset};
    if (put) {
      txn.Put(k, EncodeFree(FreeItem{length}));
    } else {
      txn.Delete(k);
    }
  };
}

uint64_t Sum(const RangeMap& m) {
  uint64_t s = 0;
  for (auto& [o, l] : m) s += l;
  return s;
}

}  // namespace

Result<Allocator> Allocator::Load(ItemStore& store) {
  Allocator a;
  auto it = store.NewIterator();
  for (it->Seek(ItemKey{0, ItemType::kFree, 0}); it->Valid(); it->Next()) {
    ItemKey k = it->key();
    if (k.objectid != 0 || k.type != ItemType::kFree) break;
    FreeItem f;
    RETURN_IF_ERROR(DecodeFree(it->value(), &f));
    if (f.length == 0 || k.offset % kBlockBytes || f.length % kBlockBytes ||
        f.length > UINT64_MAX - k.offset) {
      return Status::Error(EIO, "malformed FREE item at " + std::to_string(k.offset));
    }
    // Items come in key order: each must start at or after the previous end.
    if (!a.persisted_.empty()) {
      auto& [prev_off, prev_len] = *a.persisted_.rbegin();
      if (prev_off + prev_len > k.offset) {
        return Status::Error(EIO, "FREE items overlap at " + std::to_string(k.offset));
      }
    }
    a.allocatable_[k.offset] = f.length;
    a.persisted_[k.offset] = f.length;
  }
  RETURN_IF_ERROR(it->status());
  return a;
}

void Allocator::InitFree(Txn& txn, DeviceRange data_area) {
  txn.Put(ItemKey{0, ItemType::kFree, data_area.offset}, EncodeFree(FreeItem{data_area.length}));
}

Result<std::vector<DeviceRange>> Allocator::Allocate(uint64_t bytes, Txn& txn) {
  bytes = (bytes + kBlockBytes - 1) / kBlockBytes * kBlockBytes;
  if (bytes == 0) return std::vector<DeviceRange>();
  if (unreserved_bytes() < bytes) {
    return Status::Error(ENOSPC, "device full (free space not granted to clients: " +
                                     std::to_string(unreserved_bytes()) + " bytes)");
  }
  if (allocatable_bytes() < bytes) return Status::Error(ENOSPC, "device full");
  std::vector<DeviceRange> out;
  // First fit for the whole request; else the largest pieces first (fewest
  // extents), returned in address order.
  for (auto& [o, l] : allocatable_) {
    if (l >= bytes) {
      out.push_back({o, bytes});
      break;
    }
  }
  if (out.empty()) {
    std::vector<std::pair<uint64_t, uint64_t>> by_size(allocatable_.begin(), allocatable_.end());
    std::sort(by_size.begin(), by_size.end(),
              [](const auto& x, const auto& y) { return x.second > y.second; });
    uint64_t need = bytes;
    for (auto& [o, l] : by_size) {
      uint64_t take = std::min(l, need);
      out.push_back({o, take});
      need -= take;
      if (need == 0) break;
    }
    std::sort(out.begin(), out.end(),
              [](const DeviceRange& x, const DeviceRange& y) { return x.offset < y.offset; });
  }
  Edit edit = TxnEdit(txn);
  for (const DeviceRange& r : out) {
    RemoveRange(allocatable_, r.offset, r.length, NoEdit);
    RemoveRange(persisted_, r.offset, r.length, edit);
    txn.OnAbort([this, r] {
      InsertCoalesce(allocatable_, r.offset, r.length, NoEdit);
      InsertCoalesce(persisted_, r.offset, r.length, NoEdit);
    });
  }
  return out;
}

void Allocator::Free(DeviceRange r, Txn& txn) {
  CHECK(r.offset % kBlockBytes == 0 && r.length % kBlockBytes == 0 && r.length > 0);
  InsertCoalesce(pending_, r.offset, r.length, NoEdit);
  InsertCoalesce(persisted_, r.offset, r.length, TxnEdit(txn));
  txn.OnAbort([this, r] {
    // Still in use after all. A ReleasePending since the Free may have moved
    // the range to allocatable (callers should not let that happen).
    RangeMap& holder = Contains(pending_, r.offset, r.length) ? pending_ : allocatable_;
    RemoveRange(holder, r.offset, r.length, NoEdit);
    RemoveRange(persisted_, r.offset, r.length, NoEdit);
  });
}

void Allocator::ReleasePending() {
  for (auto& [o, l] : pending_) InsertCoalesce(allocatable_, o, l, NoEdit);
  pending_.clear();
}

uint64_t Allocator::free_bytes() const { return Sum(persisted_); }
uint64_t Allocator::allocatable_bytes() const { return Sum(allocatable_); }

uint64_t Allocator::unreserved_bytes() const {
  uint64_t free = free_bytes();
  return free > reserved_bytes_ ? free - reserved_bytes_ : 0;
}

}  // namespace cohfs
