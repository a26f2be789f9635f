// Reach: a request names inodes by number, and numbers are easy to guess, so
// the server checks that the caller could have named the inode by a path (as
// NFS's subtree_check does for file handles): search permission on every
// directory from the root down to one that names it. Directories go up through
// their one `parent`, other inodes through their INODE_REF items (any one
// searchable path is enough, as for hard links on Linux). Nothing is kept per
// session, so the answer is the same after a server restart or a reconnect,
// and for every caller a client speaks for. Root (CAP_DAC_READ_SEARCH)
// searches every directory and skips the walk.
#include <sys/stat.h>

#include "common/permissions.h"
#include "server/file_system.h"
#include "server/fs_tx.h"

namespace cohfs {

Status FileSystem::Searchable(Tx& tx, const Caller& c, InodeId dir) {
  for (int depth = 0; depth < kMaxDirDepth; depth++) {
    ASSIGN_OR_RETURN(InodeItem * d, tx.Dir(dir));
    RETURN_IF_ERROR(Permission(c, *d, kMayExec));
    if (dir == kRootInode) return Status::Ok();
    if (d->nlink == 0) return Status::Error(ENOENT);  // removed: no path through it
    dir = InodeId(d->parent);
  }
  return Status::Error(EIO, "directory parent chain loops");
}

Status FileSystem::Reach(const Caller& c, InodeId ino, bool held) {
  if (IsRoot(c)) return Status::Ok();
  Tx tx(*this);
  ASSIGN_OR_RETURN(InodeItem * i, tx.Inode(ino));
  if (ino == kRootInode) return Status::Ok();
  if (i->nlink == 0) return held ? Status::Ok() : Status::Error(ENOENT);
  if (S_ISDIR(i->mode)) return Searchable(tx, c, InodeId(i->parent));
  ASSIGN_OR_RETURN(std::vector<InodeId> parents, tx.Parents(ino));
  Status st = Status::Error(EIO, "linked inode without INODE_REF");
  for (InodeId dir : parents) {
    st = Searchable(tx, c, dir);
    if (st.ok()) break;
  }
  return st;
}

}  // namespace cohfs
