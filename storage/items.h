// Item values: a fixed little-endian layout per type, each starting with a
// version byte. Decoders treat bytes as untrusted and fail with EIO.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace cohfs {

struct InodeItem {
  uint32_t mode = 0;  // S_IFMT bits + permissions
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t nlink = 0;
  uint64_t size = 0;             // bytes
  uint64_t allocated_bytes = 0;  // device bytes in extents (st_blocks * 512)
  int64_t atime_ns = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  uint64_t generation = 0;
  uint32_t flags = 0;
  uint64_t rdev = 0;
  uint64_t parent = 0;        // directories only: the one parent (root: itself)
  uint64_t next_dir_seq = 3;  // directories only: next DIR_INDEX sequence (1, 2 are . and ..)
};

struct DirIndexItem {
  std::string name;
  uint64_t child = 0;
  uint8_t file_type = 0;  // DT_* value
};

// Names whose NameHash collide share one DIR_NAME item.
struct DirNameItem {
  std::vector<std::pair<std::string, uint64_t>> entries;  // (name, DIR_INDEX sequence)
};

struct ExtentItem {
  static constexpr uint32_t kUnwritten = 1;  // allocated by fallocate: reads as zeros

  uint64_t device_offset = 0;  // bytes, block aligned
  uint64_t length = 0;         // bytes, whole blocks
  uint32_t flags = 0;
  std::vector<uint32_t> crcs;  // one crc32c per 4 KiB block (empty when kUnwritten)
};

// Xattrs whose NameHash collide share one XATTR item.
struct XattrItem {
  std::vector<std::pair<std::string, std::string>> entries;  // (name, value)
};

struct FreeItem {
  uint64_t length = 0;  // bytes, block aligned
};

// The way back from a non-directory to the directories naming it (directories
// have `parent`): the server checks search permission along it.
struct InodeRefItem {
  uint32_t names = 0;  // entries of this directory that name the inode (> 0)
};

struct SuperItem {
  uint32_t format_version = 0;
  std::array<uint8_t, 16> uuid{};
  uint64_t device_bytes = 0;
  uint64_t data_start = 0;  // first device byte usable for extents
  uint64_t next_inode = 0;  // next inode number never handed out
  uint64_t generation = 0;  // bumped at every mount of the server
};

// A client session (server/sessions.h): what resuming it needs after a restart.
struct SessionItem {
  uint64_t key = 0;  // the secret the client resumes with
  std::string client_name;
  std::vector<std::pair<uint64_t, uint64_t>> inode_ranges;  // (first, count)
};

// A reply the server may have to repeat (at-most-once replay). `complete`:
// the whole reply; otherwise the request was applied up to `progress` (a
// commit's groups) and `reply` holds what was known then.
struct ReplayItem {
  bool complete = false;
  uint32_t progress = 0;
  std::string reply;  // an encoded Reply message (flat words)
};

std::string EncodeInode(const InodeItem& v);
Status DecodeInode(std::string_view b, InodeItem* v);
std::string EncodeDirIndex(const DirIndexItem& v);
Status DecodeDirIndex(std::string_view b, DirIndexItem* v);
std::string EncodeDirName(const DirNameItem& v);
Status DecodeDirName(std::string_view b, DirNameItem* v);
std::string EncodeExtent(const ExtentItem& v);
Status DecodeExtent(std::string_view b, ExtentItem* v);
std::string EncodeXattr(const XattrItem& v);
Status DecodeXattr(std::string_view b, XattrItem* v);
std::string EncodeFree(const FreeItem& v);
Status DecodeFree(std::string_view b, FreeItem* v);
std::string EncodeInodeRef(const InodeRefItem& v);
Status DecodeInodeRef(std::string_view b, InodeRefItem* v);
std::string EncodeSession(const SessionItem& v);
Status DecodeSession(std::string_view b, SessionItem* v);
std::string EncodeReplay(const ReplayItem& v);
Status DecodeReplay(std::string_view b, ReplayItem* v);
std::string EncodeSuper(const SuperItem& v);
Status DecodeSuper(std::string_view b, SuperItem* v);
// INLINE, SYMLINK and ORPHAN values are raw bytes (ORPHAN: empty).

}  // namespace cohfs
