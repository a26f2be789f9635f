// FileSystem's data path: Read, Write, SetAttr (truncate), Fallocate, Lseek,
// Open (O_TRUNC). Data is copy-on-write: new blocks go to new extents written
// durably before the EXTENT items that name them are committed, and the
// replaced space is freed in the same transaction.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "common/inode_flags.h"
#include "common/limits.h"
#include "common/log.h"
#include "common/permissions.h"
#include "server/file_system.h"
#include "server/fs_tx.h"

namespace cohfs {
namespace {

constexpr int64_t kRelatimeNs = 24LL * 3600 * 1000000000;

bool ShouldUpdateAtime(const InodeItem& i, int64_t now) {
  return i.atime_ns <= i.mtime_ns || i.atime_ns <= i.ctime_ns || now - i.atime_ns > kRelatimeNs;
}

}  // namespace

// ---------------------------------------------------------------- helpers

Result<std::vector<ExtentItem>> FileSystem::WriteExtents(Tx& tx, std::span<const char> data) {
  std::vector<ExtentItem> out;
  for (size_t pos = 0; pos < data.size(); pos += kMaxExtentBytes) {
    auto piece = data.subspan(pos, std::min<size_t>(kMaxExtentBytes, data.size() - pos));
    auto written = volume_.extents().WriteNew(piece, tx.txn());
    if (!written.ok() && written.errno_value() == ENOSPC && !tx.freed_space() &&
        volume_.allocator().free_bytes() > volume_.allocator().allocatable_bytes() &&
        volume_.allocator().unreserved_bytes() >= RoundUpBlock(piece.size())) {
      // Space freed by earlier commits waits for durability: make it durable
      // and retry. Not when this transaction freed space itself: releasing
      // that early would let it be overwritten while its old items still count.
      RETURN_IF_ERROR(Sync());
      written = volume_.extents().WriteNew(piece, tx.txn());
    }
    if (!written.ok()) return written.status();
    for (auto& e : *written) out.push_back(std::move(e));
  }
  return out;
}

Status FileSystem::ReadRange(Tx& tx, InodeId ino, const InodeItem& inode, uint64_t offset,
                             std::span<char> out) {
  std::memset(out.data(), 0, out.size());
  uint64_t end = offset + out.size();
  if (inode.allocated_bytes == 0) {
    ASSIGN_OR_RETURN(std::optional<std::string> data, tx.txn().Get(InlineKey(ino)));
    if (data && offset < data->size()) {
      size_t n = std::min<uint64_t>(data->size() - offset, out.size());
      std::memcpy(out.data(), data->data() + offset, n);
    }
    return Status::Ok();
  }
  ASSIGN_OR_RETURN(ExtentList extents, tx.Extents(ino, offset, end));
  for (auto& [off, e] : extents) {
    uint64_t from = std::max(off, offset), to = std::min(off + e.length, end);
    RETURN_IF_ERROR(volume_.extents().Read(
        e, from - off, std::span<char>(out.data() + (from - offset), to - from)));
  }
  return Status::Ok();
}

Status FileSystem::PunchRange(Tx& tx, InodeId ino, InodeItem& inode, uint64_t start, uint64_t end) {
  CHECK(start % kBlockBytes == 0 && end % kBlockBytes == 0);
  ASSIGN_OR_RETURN(ExtentList extents, tx.Extents(ino, start, end));
  for (auto& [off, e] : extents) {
    uint64_t e_end = off + e.length;
    tx.txn().Delete(ExtentKey(ino, off));
    if (off < start) {
      tx.txn().Put(ExtentKey(ino, off), EncodeExtent(SliceExtent(e, 0, start - off)));
    }
    if (e_end > end) {
      tx.txn().Put(ExtentKey(ino, end), EncodeExtent(SliceExtent(e, end - off, e_end - end)));
    }
    uint64_t from = std::max(off, start), to = std::min(e_end, end);
    tx.Free(DeviceRange{e.device_offset + (from - off), to - from});
    CHECK(inode.allocated_bytes >= to - from);
    inode.allocated_bytes -= to - from;
  }
  return Status::Ok();
}

// Moves inline content into an extent so the file can grow past one block or
// take extents; drops an empty INLINE item.
Status FileSystem::ConvertInline(Tx& tx, InodeId ino, InodeItem& inode) {
  ASSIGN_OR_RETURN(std::optional<std::string> data, tx.txn().Get(InlineKey(ino)));
  if (!data) return Status::Ok();
  tx.txn().Delete(InlineKey(ino));
  data->resize(std::min<uint64_t>(data->size(), inode.size));
  if (data->empty()) return Status::Ok();
  ASSIGN_OR_RETURN(auto extents,
                   WriteExtents(tx, std::span<const char>(data->data(), data->size())));
  uint64_t off = 0;
  for (auto& e : extents) {
    tx.txn().Put(ExtentKey(ino, off), EncodeExtent(e));
    off += e.length;
    inode.allocated_bytes += e.length;
  }
  return Status::Ok();
}

Status FileSystem::WriteRange(Tx& tx, InodeId ino, InodeItem& inode, uint64_t offset,
                              std::span<const char> data) {
  uint64_t end = offset + data.size();
  uint64_t new_size = std::max(inode.size, end);
  if (inode.allocated_bytes == 0 && new_size <= kInlineMaxBytes) {
    ASSIGN_OR_RETURN(std::optional<std::string> old, tx.txn().Get(InlineKey(ino)));
    std::string content = old.value_or(std::string());
    content.resize(std::min<uint64_t>(content.size(), inode.size));
    if (content.size() < end) content.resize(end, '\0');
    std::memcpy(content.data() + offset, data.data(), data.size());
    tx.txn().Put(InlineKey(ino), content);
    inode.size = new_size;
    return Status::Ok();
  }
  RETURN_IF_ERROR(ConvertInline(tx, ino, inode));
  // Copy-on-write of the whole blocks the write touches: the old bytes of
  // partial head and tail blocks are read first, then the blocks go to new space.
  uint64_t blk_start = RoundDownBlock(offset), blk_end = RoundUpBlock(end);
  std::string buf(blk_end - blk_start, '\0');
  if (offset > blk_start) {
    RETURN_IF_ERROR(ReadRange(tx, ino, inode, blk_start, std::span<char>(buf.data(), kBlockBytes)));
  }
  bool tail_in_head = blk_end - blk_start == kBlockBytes && offset > blk_start;
  if (end < blk_end && !tail_in_head) {
    RETURN_IF_ERROR(ReadRange(tx, ino, inode, blk_end - kBlockBytes,
                              std::span<char>(buf.data() + buf.size() - kBlockBytes, kBlockBytes)));
  }
  std::memcpy(buf.data() + (offset - blk_start), data.data(), data.size());
  // Bytes past EOF within the last block must read as zeros if the file grows.
  if (blk_end > new_size) std::memset(buf.data() + (new_size - blk_start), 0, blk_end - new_size);
  ASSIGN_OR_RETURN(auto extents, WriteExtents(tx, std::span<const char>(buf.data(), buf.size())));
  RETURN_IF_ERROR(PunchRange(tx, ino, inode, blk_start, blk_end));
  uint64_t off = blk_start;
  for (auto& e : extents) {
    tx.txn().Put(ExtentKey(ino, off), EncodeExtent(e));
    off += e.length;
    inode.allocated_bytes += e.length;
  }
  inode.size = new_size;
  return Status::Ok();
}

Status FileSystem::ZeroRange(Tx& tx, InodeId ino, InodeItem& inode, uint64_t start, uint64_t end) {
  if (inode.allocated_bytes == 0) {
    // Inline or entirely a hole: zero inside the inline data only.
    ASSIGN_OR_RETURN(std::optional<std::string> data, tx.txn().Get(InlineKey(ino)));
    if (data && start < data->size()) {
      std::memset(data->data() + start, 0, std::min<uint64_t>(end, data->size()) - start);
      tx.txn().Put(InlineKey(ino), *data);
    }
    return Status::Ok();
  }
  // Zeroes [from, to) inside one block, copying the block only if it holds data.
  auto zero_partial = [&](uint64_t from, uint64_t to) -> Status {
    to = std::min(to, inode.size);
    if (from >= to) return Status::Ok();
    ASSIGN_OR_RETURN(bool data, tx.HasWrittenData(ino, RoundDownBlock(from),
                                                  RoundDownBlock(from) + kBlockBytes));
    if (!data) return Status::Ok();
    std::string zeros(to - from, '\0');
    return WriteRange(tx, ino, inode, from, std::span<const char>(zeros.data(), zeros.size()));
  };
  uint64_t inner_start = RoundUpBlock(start), inner_end = RoundDownBlock(end);
  if (inner_start >= inner_end) {
    // No whole block inside: at most two partial ones.
    if (RoundDownBlock(start) == RoundDownBlock(end - 1)) return zero_partial(start, end);
    RETURN_IF_ERROR(zero_partial(start, inner_start));
    return zero_partial(inner_end, end);
  }
  if (start < inner_start) RETURN_IF_ERROR(zero_partial(start, inner_start));
  if (inner_end < end) RETURN_IF_ERROR(zero_partial(inner_end, end));
  return PunchRange(tx, ino, inode, inner_start, inner_end);
}

Status FileSystem::Preallocate(Tx& tx, InodeId ino, InodeItem& inode, uint64_t start,
                               uint64_t end) {
  RETURN_IF_ERROR(ConvertInline(tx, ino, inode));  // INLINE and extents never mix
  uint64_t pos = RoundDownBlock(start), stop = RoundUpBlock(end);
  ASSIGN_OR_RETURN(ExtentList extents, tx.Extents(ino, pos, stop));
  auto fill = [&](uint64_t from, uint64_t to) -> Status {
    while (from < to) {
      uint64_t n = std::min<uint64_t>(to - from, kMaxExtentBytes);
      auto allocated = volume_.allocator().Allocate(n, tx.txn());
      if (!allocated.ok() && allocated.errno_value() == ENOSPC && !tx.freed_space() &&
          volume_.allocator().free_bytes() > volume_.allocator().allocatable_bytes() &&
          volume_.allocator().unreserved_bytes() >= RoundUpBlock(n)) {
        RETURN_IF_ERROR(Sync());  // as in WriteExtents
        allocated = volume_.allocator().Allocate(n, tx.txn());
      }
      ASSIGN_OR_RETURN(std::vector<DeviceRange> ranges, std::move(allocated));
      for (const DeviceRange& r : ranges) {
        ExtentItem e;
        e.device_offset = r.offset;
        e.length = r.length;
        e.flags = ExtentItem::kUnwritten;
        tx.txn().Put(ExtentKey(ino, from), EncodeExtent(e));
        inode.allocated_bytes += r.length;
        from += r.length;
      }
    }
    return Status::Ok();
  };
  for (auto& [off, e] : extents) {
    if (off > pos) RETURN_IF_ERROR(fill(pos, std::min(off, stop)));
    pos = std::max(pos, off + e.length);
  }
  if (pos < stop) RETURN_IF_ERROR(fill(pos, stop));
  return Status::Ok();
}

Status FileSystem::Truncate(Tx& tx, InodeId ino, InodeItem& inode, uint64_t size) {
  if (size > kMaxFileBytes) return Status::Error(EFBIG);
  if (size >= inode.size) {
    if (inode.allocated_bytes == 0 && size > kInlineMaxBytes) {
      RETURN_IF_ERROR(ConvertInline(tx, ino, inode));
    }
    inode.size = size;  // growing leaves a hole
    return Status::Ok();
  }
  if (inode.allocated_bytes == 0) {
    ASSIGN_OR_RETURN(std::optional<std::string> data, tx.txn().Get(InlineKey(ino)));
    if (data && size == 0) {
      tx.txn().Delete(InlineKey(ino));
    } else if (data && data->size() > size) {
      data->resize(size);
      tx.txn().Put(InlineKey(ino), *data);
    }
    inode.size = size;
    return Status::Ok();
  }
  // Zero the tail of a partial last block (copy-on-write), then drop every
  // extent past it, fallocate KEEP_SIZE ones included.
  uint64_t keep = RoundUpBlock(size);
  if (size % kBlockBytes != 0) {
    uint64_t start = RoundDownBlock(size);
    ASSIGN_OR_RETURN(bool data, tx.HasWrittenData(ino, start, start + kBlockBytes));
    if (data) {
      std::string head(size - start, '\0');
      RETURN_IF_ERROR(ReadRange(tx, ino, inode, start, std::span<char>(head.data(), head.size())));
      inode.size = size;  // so that WriteRange zeroes the rest of the block
      RETURN_IF_ERROR(
          WriteRange(tx, ino, inode, start, std::span<const char>(head.data(), head.size())));
    }
  }
  ASSIGN_OR_RETURN(ExtentList beyond, tx.Extents(ino, keep, UINT64_MAX));
  if (!beyond.empty()) {
    uint64_t last = beyond.back().first + beyond.back().second.length;
    RETURN_IF_ERROR(PunchRange(tx, ino, inode, keep, last));
  }
  inode.size = size;
  return Status::Ok();
}

// ---------------------------------------------------------------- operations

Result<std::string> FileSystem::Read(const Caller& c, InodeId ino, uint64_t offset, uint32_t len,
                                     bool note_atime) {
  Tx tx(*this);
  ASSIGN_OR_RETURN(InodeItem * i, tx.Inode(ino));
  if (S_ISDIR(i->mode)) return Status::Error(EISDIR);
  if (!S_ISREG(i->mode)) return Status::Error(EINVAL);
  RETURN_IF_ERROR(DataPermission(c, *i, kMayRead));
  std::string out;
  if (offset < i->size) {
    out.resize(std::min<uint64_t>(len, i->size - offset));
    RETURN_IF_ERROR(ReadRange(tx, ino, *i, offset, std::span<char>(out.data(), out.size())));
  }
  int64_t now = NowNs();
  if (note_atime && ShouldUpdateAtime(*i, now) && !volume_.items().read_only()) {
    i->atime_ns = now;  // relatime; not synced, and a failure does not fail the read
    Status st = tx.Commit();
    if (!st.ok()) LOG(Warn) << "atime update of " << ino.value << ": " << st.ToString();
  }
  return out;
}

// Unwritten extents count as holes, as on ext4. An inline file is all data.
Result<uint64_t> FileSystem::Lseek(InodeId ino, uint64_t offset, int whence) {
  if (whence != SEEK_DATA && whence != SEEK_HOLE) return Status::Error(EINVAL);
  Tx tx(*this);
  ASSIGN_OR_RETURN(InodeItem * i, tx.Inode(ino));
  if (S_ISDIR(i->mode)) return Status::Error(EISDIR);
  if (offset >= i->size) return Status::Error(ENXIO);
  if (i->allocated_bytes == 0) {
    ASSIGN_OR_RETURN(std::optional<std::string> inline_data, tx.txn().Get(InlineKey(ino)));
    bool data = inline_data.has_value() && !inline_data->empty();
    if (whence == SEEK_DATA) return data ? Result<uint64_t>(offset) : Status::Error(ENXIO);
    return data ? i->size : offset;
  }
  uint64_t pos = offset;
  uint64_t scan = RoundDownBlock(offset);
  // Walk extents a bounded batch at a time (a large file has many).
  while (scan < i->size) {
    uint64_t scan_end = std::min<uint64_t>(i->size, scan + 1024ull * kMaxExtentBytes);
    scan_end = RoundUpBlock(scan_end);
    ASSIGN_OR_RETURN(ExtentList extents, tx.Extents(ino, scan, scan_end));
    for (auto& [off, e] : extents) {
      bool data = !(e.flags & ExtentItem::kUnwritten);
      uint64_t end = off + e.length;
      if (end <= pos) continue;
      if (whence == SEEK_DATA) {
        if (data) return std::min(std::max(off, pos), i->size);
      } else {
        if (off > pos || !data) return std::min(pos, i->size);  // a gap or an unwritten range
        pos = end;
      }
    }
    if (whence == SEEK_HOLE && pos < scan_end) return std::min(pos, i->size);
    scan = scan_end;
  }
  if (whence == SEEK_DATA) return Status::Error(ENXIO);
  return std::min(pos, i->size);
}

Status FileSystem::Open(const Caller& c, InodeId ino, int flags) {
  Tx tx(*this);
  ASSIGN_OR_RETURN(InodeItem * i, tx.Inode(ino));
  int acc = flags & O_ACCMODE;
  int mask = acc == O_RDONLY ? kMayRead : acc == O_WRONLY ? kMayWrite : kMayRead | kMayWrite;
  if (flags & O_TRUNC) mask |= kMayWrite;
  if (S_ISDIR(i->mode) && (mask & kMayWrite)) return Status::Error(EISDIR);
  if (i->nlink == 0 && !S_ISREG(i->mode)) return Status::Error(ENOENT);
  RETURN_IF_ERROR(Permission(c, *i, mask));
  RETURN_IF_ERROR(CheckOpenFlags(*i, flags));  // may_open
  if ((flags & O_TRUNC) && S_ISREG(i->mode)) {
    // FUSE's atomic O_TRUNC: the kernel leaves the truncation to open.
    RETURN_IF_ERROR(CheckWritable());
    RETURN_IF_ERROR(Truncate(tx, ino, *i, 0));
    i->mtime_ns = i->ctime_ns = NowNs();
    KillPrivilegesOnWrite(c, *i);
    return tx.Commit();
  }
  return Status::Ok();
}

Result<Attr> FileSystem::Write(const Caller& c, InodeId ino, uint64_t offset,
                               std::span<const char> data, int64_t mtime_ns) {
  Tx tx(*this);
  ASSIGN_OR_RETURN(InodeItem * i, tx.Inode(ino));
  if (S_ISDIR(i->mode)) return Status::Error(EISDIR);
  if (!S_ISREG(i->mode)) return Status::Error(EINVAL);
  RETURN_IF_ERROR(DataPermission(c, *i, kMayWrite));
  RETURN_IF_ERROR(CheckWriteAt(*i, offset, i->size));
  if (offset > kMaxFileBytes || data.size() > kMaxFileBytes - offset) return Status::Error(EFBIG);
  if (data.empty()) return ToAttr(ino, *i);
  RETURN_IF_ERROR(CheckWritable());
  RETURN_IF_ERROR(WriteRange(tx, ino, *i, offset, data));
  i->mtime_ns = mtime_ns != 0 ? mtime_ns : NowNs();
  i->ctime_ns = std::max(i->ctime_ns, i->mtime_ns);
  KillPrivilegesOnWrite(c, *i);
  RETURN_IF_ERROR(tx.Commit());
  return ToAttr(ino, *i);
}

// All checks first (setattr_prepare: size, then common/permissions.h), then changes.
Result<Attr> FileSystem::SetAttr(const Caller& c, InodeId ino, const SetAttrRequest& req) {
  RETURN_IF_ERROR(CheckWritable());
  Tx tx(*this);
  ASSIGN_OR_RETURN(InodeItem * i, tx.Inode(ino));
  if (req.mask & kSetSize) {
    if (S_ISDIR(i->mode)) return Status::Error(EISDIR);
    if (!S_ISREG(i->mode)) return Status::Error(EINVAL);
    if (req.size > kMaxFileBytes) return Status::Error(EFBIG);
    // ftruncate: the server cannot see the fd, so it checks as for a write.
    RETURN_IF_ERROR(req.has_open_handle ? DataPermission(c, *i, kMayWrite)
                                        : Permission(c, *i, kMayWrite));
  }
  RETURN_IF_ERROR(CheckAttrChange(c, *i, req));
  RETURN_IF_ERROR(CheckSetAttrFlags(*i, req.mask));

  // A change a client made locally carries the time it happened there.
  int64_t now = req.now_ns != 0 ? req.now_ns : NowNs();
  if (req.mask & kSetSize) {
    uint64_t old_size = i->size;
    RETURN_IF_ERROR(Truncate(tx, ino, *i, req.size));
    if (req.size != old_size) i->mtime_ns = now;
    KillPrivilegesOnWrite(c, *i);
  }
  ApplyAttrChange(c, *i, req, now);
  RETURN_IF_ERROR(tx.Commit());
  return ToAttr(ino, *i);
}

Result<Attr> FileSystem::Fallocate(const Caller& c, InodeId ino, int mode, uint64_t offset,
                                   uint64_t length) {
  constexpr int kPunch = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
  const bool zero_range = (mode & ~FALLOC_FL_KEEP_SIZE) == FALLOC_FL_ZERO_RANGE;
  if (mode & (FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE)) {
    return ShiftRange(c, ino, mode, offset, length);
  }
  if (mode != 0 && mode != FALLOC_FL_KEEP_SIZE && mode != kPunch && !zero_range) {
    return Status::Error(EOPNOTSUPP);
  }
  if (length == 0) return Status::Error(EINVAL);
  if (offset > kMaxFileBytes || length > kMaxFileBytes - offset) return Status::Error(EFBIG);
  RETURN_IF_ERROR(CheckWritable());
  Tx tx(*this);
  ASSIGN_OR_RETURN(InodeItem * i, tx.Inode(ino));
  if (S_ISDIR(i->mode)) return Status::Error(EISDIR);
  if (!S_ISREG(i->mode)) return Status::Error(ENODEV);
  RETURN_IF_ERROR(DataPermission(c, *i, kMayWrite));  // an fd open for writing
  if (Immutable(i->flags) || (AppendOnly(i->flags) && (mode & ~FALLOC_FL_KEEP_SIZE))) {
    return Status::Error(EPERM);  // vfs_fallocate
  }
  const uint64_t end = offset + length;
  const bool keep_size = mode & FALLOC_FL_KEEP_SIZE;
  if (mode == kPunch || zero_range) RETURN_IF_ERROR(ZeroRange(tx, ino, *i, offset, end));
  if (mode != kPunch) {
    // A file that stays inline needs no blocks reserved.
    uint64_t new_size = keep_size ? i->size : std::max(i->size, end);
    bool stays_inline =
        i->allocated_bytes == 0 && new_size <= kInlineMaxBytes && end <= kInlineMaxBytes;
    if (!stays_inline) RETURN_IF_ERROR(Preallocate(tx, ino, *i, offset, end));
  }
  int64_t now = NowNs();
  i->ctime_ns = now;
  if (!keep_size && end > i->size) {
    i->size = end;
    i->mtime_ns = now;
  }
  if (mode == kPunch || zero_range) {
    i->mtime_ns = now;  // file_modified
    KillPrivilegesOnWrite(c, *i);
  }
  RETURN_IF_ERROR(tx.Commit());
  return ToAttr(ino, *i);
}

}  // namespace cohfs
