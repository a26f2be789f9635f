// FileSystem's fallocate FALLOC_FL_COLLAPSE_RANGE and FALLOC_FL_INSERT_RANGE:
// the file's extents past the range move by whole blocks in one transaction
// (EXTENT items are re-keyed; no data is copied, no checksum changes).
#include <linux/falloc.h>
#include <sys/stat.h>

#include "common/inode_flags.h"
#include "common/limits.h"
#include "common/log.h"
#include "common/permissions.h"
#include "server/file_system.h"
#include "server/fs_tx.h"
#include "storage/extent_io.h"

namespace cohfs {

Status FileSystem::CollapseRange(Tx& tx, InodeId ino, InodeItem& inode, uint64_t offset,
                                 uint64_t length) {
  const uint64_t end = offset + length;
  RETURN_IF_ERROR(PunchRange(tx, ino, inode, offset, end));  // splits at both edges
  ASSIGN_OR_RETURN(ExtentList tail, tx.Extents(ino, end, UINT64_MAX));
  // In file order: each extent lands where the punch, or the one moved
  // before it, left nothing.
  for (auto& [off, e] : tail) {
    CHECK(off >= end);  // the punch split any extent across `end`
    tx.txn().Delete(ExtentKey(ino, off));
    tx.txn().Put(ExtentKey(ino, off - length), EncodeExtent(e));
  }
  return Status::Ok();
}

Status FileSystem::InsertRange(Tx& tx, InodeId ino, InodeItem& inode, uint64_t offset,
                               uint64_t length) {
  RETURN_IF_ERROR(ConvertInline(tx, ino, inode));  // the file grows past one block
  ASSIGN_OR_RETURN(ExtentList across, tx.Extents(ino, offset, offset + 1));
  for (auto& [off, e] : across) {
    if (off >= offset) continue;
    tx.txn().Put(ExtentKey(ino, off), EncodeExtent(SliceExtent(e, 0, offset - off)));
    tx.txn().Put(ExtentKey(ino, offset),
                 EncodeExtent(SliceExtent(e, offset - off, off + e.length - offset)));
  }
  ASSIGN_OR_RETURN(ExtentList tail, tx.Extents(ino, offset, UINT64_MAX));
  // From the end: each extent lands past every one not moved yet.
  for (auto it = tail.rbegin(); it != tail.rend(); ++it) {
    CHECK(it->first >= offset);
    tx.txn().Delete(ExtentKey(ino, it->first));
    tx.txn().Put(ExtentKey(ino, it->first + length), EncodeExtent(it->second));
  }
  return Status::Ok();
}

// Checks as ext4_collapse_range / ext4_insert_range: whole blocks, the range
// inside the file (collapse: ending before its end; insert: starting before it).
Result<Attr> FileSystem::ShiftRange(const Caller& c, InodeId ino, int mode, uint64_t offset,
                                    uint64_t length) {
  const bool collapse = mode == FALLOC_FL_COLLAPSE_RANGE;
  if (!collapse && mode != FALLOC_FL_INSERT_RANGE) return Status::Error(EINVAL);  // exclusive
  if (length == 0 || offset % kBlockBytes != 0 || length % kBlockBytes != 0) {
    return Status::Error(EINVAL);
  }
  if (offset > kMaxFileBytes || length > kMaxFileBytes - offset) return Status::Error(EFBIG);
  RETURN_IF_ERROR(CheckWritable());
  Tx tx(*this);
  ASSIGN_OR_RETURN(InodeItem * i, tx.Inode(ino));
  if (S_ISDIR(i->mode)) return Status::Error(EISDIR);
  if (!S_ISREG(i->mode)) return Status::Error(ENODEV);
  RETURN_IF_ERROR(DataPermission(c, *i, kMayWrite));
  RETURN_IF_ERROR(CheckNotGuarded(*i));
  if (collapse && offset + length >= i->size) return Status::Error(EINVAL);
  if (!collapse && offset >= i->size) return Status::Error(EINVAL);
  if (!collapse && i->size > kMaxFileBytes - length) return Status::Error(EFBIG);
  if (collapse) {
    RETURN_IF_ERROR(CollapseRange(tx, ino, *i, offset, length));
    i->size -= length;
  } else {
    RETURN_IF_ERROR(InsertRange(tx, ino, *i, offset, length));
    i->size += length;
  }
  i->mtime_ns = i->ctime_ns = NowNs();
  KillPrivilegesOnWrite(c, *i);
  RETURN_IF_ERROR(tx.Commit());
  return ToAttr(ino, *i);
}

}  // namespace cohfs
