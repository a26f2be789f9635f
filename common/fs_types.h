// Plain file-system value types shared by client, protocol and server: one word
// per concept from FUSE to disk. No behaviour lives here.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/ids.h"

namespace cohfs {

// Who asks: from the FUSE request context, checked again by the server.
struct Caller {
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> groups;  // supplementary groups
  uint32_t pid = 0;
};

struct Attr {
  InodeId ino;
  uint64_t generation = 0;
  uint32_t mode = 0;
  uint32_t nlink = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t rdev = 0;
  uint64_t size = 0;
  uint64_t blocks = 0;  // 512-byte units
  int64_t atime_ns = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  uint32_t flags = 0;  // kInodeHasXattrs, ...
};

// Inode flags (InodeItem::flags, Attr::flags). Bit 0 is ours; the chattr(1)
// flags cohfs keeps (common/inode_flags.h) sit at their FS_*_FL positions.
inline constexpr uint32_t kInodeHasXattrs = 1;  // lets a client answer ENODATA without asking

// Which SetAttr fields apply, as FUSE_SET_ATTR_* but our own bits.
enum SetAttrMask : uint32_t {
  kSetMode = 1 << 0,
  kSetUid = 1 << 1,
  kSetGid = 1 << 2,
  kSetSize = 1 << 3,
  kSetAtime = 1 << 4,     // to atime_ns
  kSetMtime = 1 << 5,     // to mtime_ns
  kSetAtimeNow = 1 << 6,  // UTIME_NOW
  kSetMtimeNow = 1 << 7,
  kSetCtime = 1 << 8,     // to ctime_ns (FUSE may send it)
};

struct SetAttrRequest {
  uint32_t mask = 0;  // SetAttrMask bits
  uint32_t mode = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t size = 0;
  int64_t atime_ns = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  bool has_open_handle = false;  // ftruncate: no write-permission check on the path
  int64_t now_ns = 0;  // clock for UTIME_NOW and ctime: the client's for a change it made
                       // locally (DESIGN §6); 0: the server's
};

struct DirEntry {
  std::string name;
  uint64_t cookie = 0;  // readdir offset that resumes after this entry
  Attr attr;
};

struct FsStat {
  uint64_t block_bytes = 4096;
  uint64_t total_blocks = 0;
  uint64_t free_blocks = 0;
  uint64_t total_inodes = 0;
  uint64_t free_inodes = 0;
  uint32_t max_name_bytes = 255;
};

// Lock modes per inode and client (DESIGN §5): NONE < SHARED < EXCLUSIVE.
enum class LockMode : uint8_t { kNone = 0, kShared = 1, kExclusive = 2 };

// rename(2) flags, values as in <linux/fs.h>.
inline constexpr uint32_t kRenameNoReplace = 1;
inline constexpr uint32_t kRenameExchange = 2;
inline constexpr uint32_t kRenameWhiteout = 4;  // leaves a 0/0 character device (overlayfs)

}  // namespace cohfs
