// Internal to FileSystem's .cc files: the transaction wrapper every method uses
// and small helpers. Not part of the server's public interface.
//
// Invariants kept by FileSystem (and checked by fsck, storage/fsck.h):
// - a name is a DIR_INDEX (dir, seq) plus an entry in DIR_NAME (dir, hash);
// - files: nlink == number of names; directories: 2 + subdirectories, and
//   `parent` is the one directory naming them; nlink 0 <=> an ORPHAN item;
// - a non-directory has an INODE_REF (child, dir) counting dir's names of it;
// - a regular file is INLINE (no extents, size <= kInlineMaxBytes) or has
//   EXTENT items; bytes past EOF inside the last block read as zero;
// - allocated_bytes == the sum of the inode's extent lengths.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/fs_types.h"
#include "common/limits.h"
#include "server/file_system.h"
#include "storage/items.h"
#include "storage/keys.h"

namespace cohfs {

int64_t NowNs();                              // CLOCK_REALTIME
inline constexpr int kMaxDirDepth = 1 << 20;  // bound on walking `parent` fields
inline uint64_t RoundUpBlock(uint64_t v) {
  return (v + kBlockBytes - 1) / kBlockBytes * kBlockBytes;
}
inline uint64_t RoundDownBlock(uint64_t v) { return v / kBlockBytes * kBlockBytes; }
inline uint8_t DtOf(uint32_t mode) { return static_cast<uint8_t>((mode & S_IFMT) >> 12); }
inline ItemKey InodeKey(InodeId ino) { return ItemKey{ino.value, ItemType::kInode, 0}; }
inline ItemKey OrphanKey(InodeId ino) { return ItemKey{0, ItemType::kOrphan, ino.value}; }
inline ItemKey InlineKey(InodeId ino) { return ItemKey{ino.value, ItemType::kInline, 0}; }
inline ItemKey ExtentKey(InodeId ino, uint64_t file_offset) {
  return ItemKey{ino.value, ItemType::kExtent, file_offset};
}
Attr ToAttr(InodeId ino, const InodeItem& i);

using ExtentList = std::vector<std::pair<uint64_t, ExtentItem>>;  // (file offset, extent)

// One transaction with a cache of the inodes it touched: aliases (the same
// directory as source and target of a rename) share one copy, and every
// changed inode is written back once at Commit. Dropped without Commit, the
// Txn's abort hooks give back any space it allocated or freed.
// Inside an open FileSystem::Group the Tx borrows the group's Txn: Commit
// writes the cached inodes back into it and leaves the store commit to the
// group; dropped without Commit after writing to it, the Tx breaks the group.
class FileSystem::Tx {
 public:
  explicit Tx(FileSystem& fs);
  ~Tx();
  Tx(const Tx&) = delete;
  Tx& operator=(const Tx&) = delete;
  Txn& txn() { return *txn_; }

  // ENOENT when there is no such inode.
  Result<InodeItem*> Inode(InodeId ino);
  // As Inode, ENOTDIR when it is not a directory.
  Result<InodeItem*> Dir(InodeId ino);
  InodeItem* NewInode(InodeId ino, const InodeItem& item);
  // The inode's items are being deleted: do not write it back.
  void ForgetInode(InodeId ino);

  // (sequence, child) of `name` in `dir`, if present.
  Result<std::optional<std::pair<uint64_t, InodeId>>> Find(InodeId dir, std::string_view name);
  Status AddName(InodeId dir, std::string_view name, InodeId child, uint32_t child_mode);
  Status RemoveName(InodeId dir, std::string_view name, uint64_t seq);
  // The directories naming a non-directory (its INODE_REF items).
  Result<std::vector<InodeId>> Parents(InodeId ino);
  Result<bool> DirEmpty(InodeId dir);
  // Drops one link (a directory loses all); an inode left with none becomes an orphan.
  void DropLink(InodeId ino, InodeItem& i, int64_t now);

  // Extent items of `ino` that overlap [start, end), in file order.
  Result<ExtentList> Extents(InodeId ino, uint64_t start, uint64_t end);
  // Whether any written (not unwritten) extent overlaps [start, end).
  Result<bool> HasWrittenData(InodeId ino, uint64_t start, uint64_t end);
  // Frees device space in this transaction (pending until durable).
  void Free(DeviceRange range);
  // Whether this transaction (or the group it joined) freed space.
  bool freed_space() const { return freed_space_ || (group_ && group_->freed_space); }

  Status Commit();

 private:
  // Adds `delta` to the names `dir` holds of the non-directory `child`.
  Status AddRef(InodeId child, InodeId dir, int delta);
  struct Cached {
    InodeItem item;
    std::string original;  // encoded as read; empty for a new inode
  };
  Volume& v_;
  const std::function<void(Txn&)>& commit_hook_;
  OpenGroup* group_;          // the group joined, or null
  std::unique_ptr<Txn> own_;  // without a group
  Txn* txn_;                  // own_ or the group's
  size_t ops_at_start_;
  std::map<uint64_t, Cached> inodes_;
  bool freed_space_ = false;
  bool committed_ = false;
};

}  // namespace cohfs
