// The chattr(1) flags (FS_IOC_GETFLAGS / FS_IOC_SETFLAGS) cohfs keeps in an
// inode's flags, and the rules IMMUTABLE and APPEND impose, as ext4 applies
// them. The server enforces them; the client uses the same rules to decide
// what it may still do locally. Templates over any inode-like type with
// `flags` and `uid` (InodeItem on the server, Attr on the client).
//
// FUSE never sets S_IMMUTABLE / S_APPEND on its inodes, so the kernel's own
// checks (may_open, may_delete, notify_change, generic_write_checks) do not
// run for cohfs: everything below is ours to enforce.
#pragma once

#include <fcntl.h>
#include <linux/fs.h>

#include <cerrno>
#include <cstdint>

#include "common/fs_types.h"
#include "common/status.h"

namespace cohfs {

// Stored and shown by lsattr; IMMUTABLE and APPEND are also enforced, the rest
// are kept bits (as on ext4 with no effect of ours: no dump tool reads NODUMP
// here, atime stays relatime with NOATIME). Any other flag: EOPNOTSUPP.
inline constexpr uint32_t kFsFlagsKept =
    FS_SYNC_FL | FS_IMMUTABLE_FL | FS_APPEND_FL | FS_NODUMP_FL | FS_NOATIME_FL | FS_DIRSYNC_FL;
inline constexpr uint32_t kFsFlagsGuarded = FS_IMMUTABLE_FL | FS_APPEND_FL;  // CAP_LINUX_IMMUTABLE
static_assert((kFsFlagsKept & kInodeHasXattrs) == 0, "chattr flags share no bit with ours");

inline uint32_t FsFlags(uint32_t inode_flags) { return inode_flags & kFsFlagsKept; }
inline bool Immutable(uint32_t inode_flags) { return inode_flags & FS_IMMUTABLE_FL; }
inline bool AppendOnly(uint32_t inode_flags) { return inode_flags & FS_APPEND_FL; }
inline bool Guarded(uint32_t inode_flags) { return inode_flags & kFsFlagsGuarded; }

// FS_IOC_SETFLAGS: the owner (or root) may change the kept flags, only root
// (our stand-in for CAP_LINUX_IMMUTABLE) IMMUTABLE and APPEND.
template <typename Inode>
Status CheckSetFlags(const Caller& c, const Inode& i, uint32_t want) {
  if (want & ~kFsFlagsKept) return Status::Error(EOPNOTSUPP);
  if (c.uid != 0 && c.uid != i.uid) return Status::Error(EPERM);
  if (((FsFlags(i.flags) ^ want) & kFsFlagsGuarded) && c.uid != 0) return Status::Error(EPERM);
  return Status::Ok();
}

// Anything that changes the inode itself or removes or adds a name of it
// (unlink, rename, link, setxattr, fallocate but KEEP_SIZE on APPEND): EPERM.
template <typename Inode>
Status CheckNotGuarded(const Inode& i) {
  return Guarded(i.flags) ? Status::Error(EPERM) : Status::Ok();
}

// A directory's entries: an immutable one takes no new or removed name, an
// append-only one takes new names only (may_delete: IS_APPEND(dir)).
template <typename Inode>
Status CheckDirChange(const Inode& dir, bool removes) {
  if (Immutable(dir.flags) || (removes && AppendOnly(dir.flags))) return Status::Error(EPERM);
  return Status::Ok();
}

// A data write at `offset`: none to an immutable file, only at the end of an
// append-only one (generic_write_checks).
template <typename Inode>
Status CheckWriteAt(const Inode& i, uint64_t offset, uint64_t size) {
  if (Immutable(i.flags)) return Status::Error(EPERM);
  if (AppendOnly(i.flags) && offset != size) return Status::Error(EPERM);
  return Status::Ok();
}

// open(2): writing an immutable file, or an append-only one without O_APPEND
// or with O_TRUNC (may_open).
template <typename Inode>
Status CheckOpenFlags(const Inode& i, int open_flags) {
  bool writes = (open_flags & O_ACCMODE) != O_RDONLY || (open_flags & O_TRUNC);
  if (Immutable(i.flags) && writes) return Status::Error(EPERM);
  if (AppendOnly(i.flags) && writes && (!(open_flags & O_APPEND) || (open_flags & O_TRUNC))) {
    return Status::Error(EPERM);
  }
  return Status::Ok();
}

// setattr: nothing on an immutable inode; on an append-only one only the
// *Now times (notify_change refuses mode, owner, explicit times, and size).
template <typename Inode>
Status CheckSetAttrFlags(const Inode& i, uint32_t mask) {
  if (Immutable(i.flags) && mask != 0) return Status::Error(EPERM);
  if (AppendOnly(i.flags) && (mask & ~(kSetAtimeNow | kSetMtimeNow | kSetCtime))) {
    return Status::Error(EPERM);
  }
  return Status::Ok();
}

}  // namespace cohfs
