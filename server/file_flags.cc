// FileSystem's chattr flags (FS_IOC_SETFLAGS) and RENAME_WHITEOUT's whiteouts.
// The rules themselves are common/inode_flags.h, shared with the client.
#include <sys/stat.h>

#include "common/inode_flags.h"
#include "common/permissions.h"
#include "server/file_system.h"
#include "server/fs_tx.h"

namespace cohfs {

Result<Attr> FileSystem::SetFlags(const Caller& c, InodeId ino, uint32_t fs_flags) {
  RETURN_IF_ERROR(CheckWritable());
  Tx tx(*this);
  ASSIGN_OR_RETURN(InodeItem * i, tx.Inode(ino));
  RETURN_IF_ERROR(CheckSetFlags(c, *i, fs_flags));
  i->flags = (i->flags & ~kFsFlagsKept) | fs_flags;
  i->ctime_ns = NowNs();
  RETURN_IF_ERROR(tx.Commit());
  return ToAttr(ino, *i);
}

Status FileSystem::CheckRenameFlags(const InodeItem& from_dir, const InodeItem& moved,
                                    const InodeItem& to_dir, const InodeItem* victim) {
  RETURN_IF_ERROR(CheckDirChange(from_dir, /*removes=*/true));
  RETURN_IF_ERROR(CheckDirChange(to_dir, /*removes=*/victim != nullptr));
  RETURN_IF_ERROR(CheckNotGuarded(moved));
  return victim ? CheckNotGuarded(*victim) : Status::Ok();
}

// The whiteout's number is the server's own (the client named none): the
// next one in SUPER, persisted in this transaction. A dropped transaction
// leaves the number unused, which is harmless (numbers are never reused).
Status FileSystem::AddWhiteout(Tx& tx, const Caller& c, InodeId dir, InodeItem& dir_item,
                               std::string_view name, int64_t now) {
  SuperItem& s = volume_.mutable_super();
  InodeId ino(s.next_inode);
  s.next_inode++;
  tx.txn().Put(ItemKey{0, ItemType::kSuper, 0}, EncodeSuper(s));
  InodeItem w;
  w.mode = S_IFCHR;  // WHITEOUT_MODE 0, WHITEOUT_DEV 0
  InitNewOwner(c, dir_item, S_IFCHR, w);
  w.nlink = 1;
  w.atime_ns = w.mtime_ns = w.ctime_ns = now;
  w.generation = s.generation;
  tx.NewInode(ino, w);
  return tx.AddName(dir, name, ino, w.mode);
}

}  // namespace cohfs
