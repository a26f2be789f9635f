// Item keys: (objectid u64, type u8, offset u64), encoded big-endian so that
// RocksDB's bytewise order is the natural order (docs/disk-format.md).
//
// All items of one inode are adjacent: INODE first, then its small items, then
// directory entries or extents, so one iterator range is one "leaf".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace cohfs {

enum class ItemType : uint8_t {
  kInode = 1,      // objectid=ino, offset=0
  kInline = 2,     // objectid=ino, offset=0: whole content of a small file
  kSymlink = 3,    // objectid=ino, offset=0: target
  kXattr = 4,      // objectid=ino, offset=NameHash(name): list of (name, value)
  kDirName = 5,    // objectid=dir, offset=NameHash(name): list of (name, sequence)
  kDirIndex = 6,   // objectid=dir, offset=sequence: name, child, file type
  kExtent = 7,     // objectid=ino, offset=file offset (block aligned)
  kOrphan = 8,     // objectid=0, offset=ino: inode with nlink 0 still referenced by a client
  kFree = 9,       // objectid=0, offset=device offset: length
  kSuper = 10,     // objectid=0, offset=0
  kSession = 11,   // objectid=0, offset=session id: a client session that outlives restarts
  kReplay = 12,    // objectid=0, offset=ReplayOffset(session, request): a reply to repeat
  kInodeRef = 13,  // objectid=ino (not a directory), offset=dir: how many of its names dir holds
};

// Replay items of one session are adjacent: the session id in the top 24 bits.
inline constexpr uint64_t kReplaySeqBits = 40;
inline constexpr uint64_t kMaxSessionId = (1ull << (64 - kReplaySeqBits)) - 1;
inline uint64_t ReplayOffset(uint64_t session, uint64_t request) {
  return session << kReplaySeqBits | (request & ((1ull << kReplaySeqBits) - 1));
}

struct ItemKey {
  uint64_t objectid = 0;
  ItemType type = ItemType::kInode;
  uint64_t offset = 0;

  bool operator==(const ItemKey&) const = default;
};

inline constexpr size_t kEncodedKeyBytes = 17;

std::string EncodeKey(const ItemKey& key);
// Fails with EIO on anything that is not exactly one encoded key.
Status DecodeKey(std::string_view bytes, ItemKey* key);
// Stable 63-bit hash of a name (FNV-1a folded), for DIR_NAME and XATTR offsets.
uint64_t NameHash(std::string_view name);

}  // namespace cohfs
