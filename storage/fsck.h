// Fsck: verifies every invariant of an (unserved) volume, offline.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "storage/volume.h"

namespace cohfs {

struct FsckReport {
  std::vector<std::string> problems;
  uint64_t inodes = 0;
  uint64_t directories = 0;
  uint64_t extents = 0;
  uint64_t data_bytes = 0;
  uint64_t free_bytes = 0;
  bool ok() const { return problems.empty(); }
};

// Checks: every key and value decodes; DIR_INDEX and DIR_NAME agree and point
// at existing inodes of the right type; link counts (files: names; directories:
// 2 + subdirectories) and `parent` fields; nlink 0 exactly when ORPHAN; no items
// of missing inodes; extents block aligned, inside the data area, not
// overlapping each other or free space; free + used space == the data area;
// allocated_bytes; inode numbers below SUPER.next_inode; INLINE only for small
// regular files without extents; with verify_checksums, every data block.
// `progress` (may be null): bytes of extents checksummed of those allocated.
Result<FsckReport> Fsck(Volume& volume, bool verify_checksums, const ProgressFn& progress = {});

}  // namespace cohfs
