// ExtentIo: file data on the device, copy-on-write, one crc32c per 4 KiB block.
//
// WriteNew allocates fresh space, writes the data durably (O_DIRECT, RWF_DSYNC),
// and only then returns the ExtentItem for the caller to commit: a crash never
// exposes a half-written block through a committed item.
// Read verifies the crc of every block it touches: a mismatch is EIO plus a log
// line naming the device offset, never wrong bytes.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/status.h"
#include "storage/allocator.h"
#include "storage/block_device.h"
#include "storage/items.h"

namespace cohfs {

class ExtentIo {
 public:
  ExtentIo(BlockDevice& device, Allocator& allocator);

  // Writes `data` into newly allocated space; the tail of the last block is
  // zero-filled. Returns one ExtentItem per allocated range (each describing
  // consecutive file bytes in order). ENOSPC, EIO.
  Result<std::vector<ExtentItem>> WriteNew(std::span<const char> data, Txn& txn);
  // Reads `len` bytes starting `offset_in_extent` bytes into the extent.
  // Unwritten extents read as zeros.
  Status Read(const ExtentItem& extent, uint64_t offset_in_extent, std::span<char> out);
  // Reads and verifies every block of the extent (fsck).
  Status Verify(const ExtentItem& extent);
  // Returns the extent's space to the allocator (pending until durable).
  void Free(const ExtentItem& extent, Txn& txn);

 private:
  BlockDevice& device_;
  Allocator& allocator_;
};

// The part of `e` from byte `from` (block aligned) for `length` bytes (block
// aligned), with its crcs: used to split extents on overwrite and truncate.
ExtentItem SliceExtent(const ExtentItem& e, uint64_t from, uint64_t length);

}  // namespace cohfs
