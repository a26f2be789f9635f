// Volume: one formatted device plus its metadata store; what the server owns.
//
// Device layout: block 0 is the device superblock (magic, format version, uuid,
// size, crc); extents start at data_start (1 MiB). Metadata items live in
// RocksDB in `meta_dir` (docs/disk-format.md).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/ids.h"
#include "common/status.h"
#include "storage/allocator.h"
#include "storage/block_device.h"
#include "storage/extent_io.h"
#include "storage/item_store.h"
#include "storage/items.h"

namespace cohfs {

inline constexpr uint32_t kFormatVersion = 2;  // 2: INODE_REF items
inline constexpr uint64_t kDataStartBytes = 1u << 20;

struct VolumeOptions {
  std::string device;    // block device or regular image file
  std::string meta_dir;  // empty: the default (DefaultMetaDir)
  bool read_only = false;
};

// Progress of a pass over the device: bytes done of total (the caller's thread).
using ProgressFn = std::function<void(uint64_t done_bytes, uint64_t total_bytes)>;

struct FormatOptions {
  std::string device;
  std::string meta_dir;  // empty: the default
  bool force = false;    // overwrite an existing cohfs
  // Discard the data area first (as mkfs does): old data is gone from the
  // device (a thin or image file gets its space back). Skipped where the
  // device cannot (EOPNOTSUPP).
  bool discard = true;
  ProgressFn progress;  // null: none
};

// Next to an image file: "<image>.meta"; for a block device:
// /var/lib/cohfs/<uuid> (the uuid read from the device superblock).
std::string DefaultMetaDir(const std::string& device, const std::array<uint8_t, 16>& uuid,
                           bool is_block_device);
std::string UuidToString(const std::array<uint8_t, 16>& uuid);

class Volume {
 public:
  // Writes the device superblock and a new store holding SUPER, the root
  // directory (inode 1, mode 0755, uid/gid 0) and one FREE item. EEXIST when the
  // device already holds cohfs and !force.
  static Status Format(const FormatOptions& options);
  // EINVAL when the device is not cohfs, EPROTO on another format version, or
  // when the store's uuid differs from the device's.
  static Result<std::unique_ptr<Volume>> Open(const VolumeOptions& options);

  ItemStore& items() { return *items_; }
  BlockDevice& device() { return *device_; }
  Allocator& allocator() { return *allocator_; }
  ExtentIo& extents() { return *extents_; }
  const SuperItem& super() const { return super_; }
  SuperItem& mutable_super() { return super_; }  // caller persists via Txn
  const std::string& meta_dir() const { return meta_dir_; }

 private:
  Volume() = default;
  std::unique_ptr<BlockDevice> device_;
  std::unique_ptr<ItemStore> items_;
  std::unique_ptr<Allocator> allocator_;
  std::unique_ptr<ExtentIo> extents_;
  SuperItem super_;
  std::string meta_dir_;
};

}  // namespace cohfs
