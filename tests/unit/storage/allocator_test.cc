#include "storage/allocator.h"

#include <gtest/gtest.h>

#include <map>
#include <vector>

#include "common/limits.h"
#include "storage/fsck.h"
#include "storage/items.h"
#include "tests/unit/storage/test_volume.h"

namespace cohfs {
namespace {

using test::TempVolume;

constexpr uint64_t kTotal = (64ull << 20) - kDataStartBytes;  // TempVolume's data area

// The FREE items in the store, as offset -> length.
std::map<uint64_t, uint64_t> FreeItems(ItemStore& store) {
  std::map<uint64_t, uint64_t> out;
  auto it = store.NewIterator();
  for (it->Seek(ItemKey{0, ItemType::kFree, 0}); it->Valid(); it->Next()) {
    ItemKey k = it->key();
    if (k.objectid != 0 || k.type != ItemType::kFree) break;
    FreeItem f;
    EXPECT_TRUE(DecodeFree(it->value(), &f).ok());
    out[k.offset] = f.length;
  }
  return out;
}

Result<std::vector<DeviceRange>> AllocateCommitted(Volume& v, uint64_t bytes) {
  auto txn = v.items().BeginTxn();
  auto r = v.allocator().Allocate(bytes, *txn);
  if (r.ok()) RETURN_IF_ERROR(v.items().Commit(*txn, false));
  return r;
}

void FreeCommitted(Volume& v, const std::vector<DeviceRange>& ranges) {
  auto txn = v.items().BeginTxn();
  for (const DeviceRange& r : ranges) v.allocator().Free(r, *txn);
  ASSERT_TRUE(v.items().Commit(*txn, false).ok());
}

// Reserved space (clients' space grants) is free space no allocation takes;
// space freed and waiting for a sync counts as free for it.
TEST(Allocator, AllocationsLeaveTheReservedSpaceFree) {
  TempVolume tv;
  Volume& v = tv.volume();
  Allocator& a = v.allocator();
  a.set_reserved_bytes(kTotal - 4 * kBlockBytes);
  EXPECT_EQ(a.unreserved_bytes(), 4 * kBlockBytes);
  auto too_much = AllocateCommitted(v, 5 * kBlockBytes);
  EXPECT_EQ(too_much.errno_value(), ENOSPC);
  auto got = AllocateCommitted(v, 4 * kBlockBytes);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(a.unreserved_bytes(), 0u);
  EXPECT_EQ(AllocateCommitted(v, 1).errno_value(), ENOSPC);
  FreeCommitted(v, *got);  // pending until a sync, but free
  EXPECT_EQ(a.unreserved_bytes(), 4 * kBlockBytes);
  a.set_reserved_bytes(kTotal + kBlockBytes);  // more than there is: nothing to allocate
  EXPECT_EQ(a.unreserved_bytes(), 0u);
  a.set_reserved_bytes(0);
  a.ReleasePending();
  EXPECT_TRUE(AllocateCommitted(v, kTotal).ok());
}

TEST(Allocator, AllocateFreePendingAndAbort) {
  TempVolume tv;
  Volume& v = tv.volume();
  Allocator& a = v.allocator();
  EXPECT_EQ(a.free_bytes(), kTotal);
  EXPECT_EQ(a.allocatable_bytes(), kTotal);
  {
    auto txn = v.items().BeginTxn();
    auto r = a.Allocate(10000, *txn);  // rounds up to 3 blocks
    ASSERT_TRUE(r.ok());
    ASSERT_EQ(r->size(), 1u);
    EXPECT_EQ((*r)[0].length, 3 * kBlockBytes);
    EXPECT_EQ((*r)[0].offset % kBlockBytes, 0u);
    EXPECT_GE((*r)[0].offset, kDataStartBytes);
    EXPECT_EQ(a.allocatable_bytes(), kTotal - 3 * kBlockBytes);
    EXPECT_GT(txn->op_count(), 0u);  // recorded as FREE item edits
    // Dropped uncommitted: the space comes back.
  }
  EXPECT_EQ(a.allocatable_bytes(), kTotal);
  EXPECT_EQ(a.free_bytes(), kTotal);
  EXPECT_EQ(FreeItems(v.items()), (std::map<uint64_t, uint64_t>{{kDataStartBytes, kTotal}}));

  auto got = AllocateCommitted(v, 1 << 20);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(a.free_bytes(), kTotal - (1 << 20));
  FreeCommitted(v, *got);
  // Freed but not yet released: counted free, not allocatable.
  EXPECT_EQ(a.free_bytes(), kTotal);
  EXPECT_EQ(a.allocatable_bytes(), kTotal - (1 << 20));
  // And persisted as free already (the FREE items are allocatable + pending).
  EXPECT_EQ(FreeItems(v.items()), (std::map<uint64_t, uint64_t>{{kDataStartBytes, kTotal}}));
  a.ReleasePending();
  EXPECT_EQ(a.allocatable_bytes(), kTotal);
}

TEST(Allocator, AbortedFreeStaysAllocated) {
  TempVolume tv;
  Volume& v = tv.volume();
  auto got = AllocateCommitted(v, 8 * kBlockBytes);
  ASSERT_TRUE(got.ok());
  auto before = FreeItems(v.items());
  {
    auto txn = v.items().BeginTxn();
    v.allocator().Free((*got)[0], *txn);
    EXPECT_EQ(v.allocator().free_bytes(), kTotal);
  }
  EXPECT_EQ(v.allocator().free_bytes(), kTotal - 8 * kBlockBytes);
  v.allocator().ReleasePending();
  EXPECT_EQ(v.allocator().allocatable_bytes(), kTotal - 8 * kBlockBytes);
  EXPECT_EQ(FreeItems(v.items()), before);
}

TEST(Allocator, AbortedFreeAfterReleaseIsNotAllocatable) {
  TempVolume tv;
  Volume& v = tv.volume();
  auto got = AllocateCommitted(v, 4 * kBlockBytes);
  ASSERT_TRUE(got.ok());
  {
    auto txn = v.items().BeginTxn();
    v.allocator().Free((*got)[0], *txn);
    v.allocator().ReleasePending();  // misuse, but must not corrupt the maps
    EXPECT_EQ(v.allocator().allocatable_bytes(), kTotal);
  }
  EXPECT_EQ(v.allocator().allocatable_bytes(), kTotal - 4 * kBlockBytes);
  EXPECT_EQ(v.allocator().free_bytes(), kTotal - 4 * kBlockBytes);
  auto rest = AllocateCommitted(v, kTotal - 4 * kBlockBytes);
  ASSERT_TRUE(rest.ok());
  for (const DeviceRange& r : *rest) {
    bool disjoint =
        r.offset + r.length <= (*got)[0].offset || (*got)[0].offset + (*got)[0].length <= r.offset;
    EXPECT_TRUE(disjoint);
  }
}

TEST(Allocator, EnospcChangesNothing) {
  TempVolume tv;
  Volume& v = tv.volume();
  auto txn = v.items().BeginTxn();
  EXPECT_EQ(v.allocator().Allocate(kTotal + kBlockBytes, *txn).errno_value(), ENOSPC);
  EXPECT_EQ(txn->op_count(), 0u);
  EXPECT_EQ(v.allocator().allocatable_bytes(), kTotal);
  // Exactly everything fits.
  auto all = v.allocator().Allocate(kTotal, *txn);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(v.allocator().allocatable_bytes(), 0u);
  EXPECT_EQ(v.allocator().Allocate(1, *txn).errno_value(), ENOSPC);
}

TEST(Allocator, PendingSpaceIsNotAllocatableUntilReleased) {
  TempVolume tv;
  Volume& v = tv.volume();
  auto all = AllocateCommitted(v, kTotal);
  ASSERT_TRUE(all.ok());
  FreeCommitted(v, *all);
  EXPECT_EQ(v.allocator().free_bytes(), kTotal);
  {
    auto txn = v.items().BeginTxn();
    EXPECT_EQ(v.allocator().Allocate(kBlockBytes, *txn).errno_value(), ENOSPC);
  }
  v.allocator().ReleasePending();
  EXPECT_TRUE(AllocateCommitted(v, kBlockBytes).ok());
}

TEST(Allocator, FreedNeighboursCoalesce) {
  TempVolume tv;
  Volume& v = tv.volume();
  // Three adjacent 1 MiB pieces, the rest of the device allocated too.
  std::vector<DeviceRange> pieces;
  for (int i = 0; i < 3; i++) {
    auto r = AllocateCommitted(v, 1 << 20);
    ASSERT_TRUE(r.ok());
    ASSERT_EQ(r->size(), 1u);
    pieces.push_back((*r)[0]);
  }
  ASSERT_EQ(pieces[1].offset, pieces[0].offset + (1 << 20));
  auto rest = AllocateCommitted(v, kTotal - (3 << 20));
  ASSERT_TRUE(rest.ok());
  EXPECT_TRUE(FreeItems(v.items()).empty());
  // Free the outer two, then the middle: one FREE item, one 3 MiB allocatable range.
  FreeCommitted(v, {pieces[0], pieces[2]});
  EXPECT_EQ(FreeItems(v.items()).size(), 2u);
  FreeCommitted(v, {pieces[1]});
  EXPECT_EQ(FreeItems(v.items()), (std::map<uint64_t, uint64_t>{{pieces[0].offset, 3ull << 20}}));
  v.allocator().ReleasePending();
  auto big = AllocateCommitted(v, 3 << 20);
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(*big, (std::vector<DeviceRange>{{pieces[0].offset, 3ull << 20}}));
}

TEST(Allocator, FragmentedAllocationSpansRanges) {
  TempVolume tv;
  Volume& v = tv.volume();
  Allocator& a = v.allocator();
  // Fill the device with 1 MiB pieces, free every other one.
  std::vector<DeviceRange> pieces;
  while (true) {
    auto r = AllocateCommitted(v, 1 << 20);
    if (!r.ok()) break;
    for (auto& p : *r) pieces.push_back(p);
  }
  EXPECT_EQ(a.allocatable_bytes(), 0u);
  std::vector<DeviceRange> odd;
  for (size_t i = 0; i < pieces.size(); i += 2) odd.push_back(pieces[i]);
  FreeCommitted(v, odd);
  a.ReleasePending();
  auto txn2 = v.items().BeginTxn();
  auto r = a.Allocate(3 << 20, *txn2);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->size(), 3u);
  uint64_t sum = 0;
  for (auto& p : *r) sum += p.length;
  EXPECT_EQ(sum, 3u << 20);
}

TEST(Allocator, PersistedFreeItemsMatchMemoryAfterReload) {
  TempVolume tv;
  std::vector<DeviceRange> kept;
  for (int i = 0; i < 20; i++) {
    auto r = AllocateCommitted(tv.volume(), (i % 5 + 1) * kBlockBytes * 3);
    ASSERT_TRUE(r.ok());
    if (i % 3 == 0) {
      FreeCommitted(tv.volume(), *r);
    } else {
      for (auto& p : *r) kept.push_back(p);
    }
  }
  uint64_t free_before = tv.volume().allocator().free_bytes();
  auto items_before = FreeItems(tv.volume().items());
  uint64_t sum = 0;
  for (auto& [o, l] : items_before) sum += l;
  EXPECT_EQ(sum, free_before);
  tv.Reopen();
  EXPECT_EQ(tv.volume().allocator().free_bytes(), free_before);
  // After a reload everything free is allocatable (pending needs no durability wait).
  EXPECT_EQ(tv.volume().allocator().allocatable_bytes(), free_before);
  EXPECT_EQ(FreeItems(tv.volume().items()), items_before);
  uint64_t used = 0;
  for (auto& p : kept) used += p.length;
  EXPECT_EQ(free_before + used, kTotal);
}

TEST(Allocator, LoadRejectsOverlappingFreeItems) {
  TempVolume tv;
  {
    auto txn = tv.volume().items().BeginTxn();
    txn->Put(ItemKey{0, ItemType::kFree, kDataStartBytes + kBlockBytes},
             EncodeFree(FreeItem{kBlockBytes}));
    ASSERT_TRUE(tv.volume().items().Commit(*txn, true).ok());
  }
  auto a = Allocator::Load(tv.volume().items());
  EXPECT_EQ(a.errno_value(), EIO);
}

}  // namespace
}  // namespace cohfs
