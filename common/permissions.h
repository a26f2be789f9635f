// POSIX permission and attribute-change rules (Linux generic_permission,
// setattr_prepare and friends), shared by the server, which enforces them on
// every operation, and the client, which applies a change to an inode it owns
// locally before the server sees it (DESIGN §6) and must reach the same result.
//
// The inode is any type with `mode`, `uid`, `gid` and the three `*_ns` times
// (storage's InodeItem on the server, Attr on the client).
#pragma once

#include <sys/stat.h>

#include <algorithm>
#include <cstdint>

#include "common/fs_types.h"
#include "common/status.h"

namespace cohfs {

inline constexpr int kMayRead = 4;   // R_OK
inline constexpr int kMayWrite = 2;  // W_OK
inline constexpr int kMayExec = 1;   // X_OK

inline bool IsRoot(const Caller& c) { return c.uid == 0; }

inline bool InGroup(const Caller& c, uint32_t gid) {
  return c.gid == gid || std::find(c.groups.begin(), c.groups.end(), gid) != c.groups.end();
}

// Owner of the inode, or root (inode_owner_or_capable).
template <typename Inode>
bool OwnerOrRoot(const Caller& c, const Inode& i) {
  return IsRoot(c) || c.uid == i.uid;
}

// rwx of `mask` against the owner, group or other bits (exactly one class
// applies). Root passes, except that exec on a non-directory needs some x bit.
// EACCES.
template <typename Inode>
Status Permission(const Caller& c, const Inode& i, int mask) {
  if (IsRoot(c)) {
    if ((mask & kMayExec) && !S_ISDIR(i.mode) && !(i.mode & 0111)) return Status::Error(EACCES);
    return Status::Ok();
  }
  uint32_t bits;
  if (c.uid == i.uid) {
    bits = (i.mode >> 6) & 7;
  } else if (InGroup(c, i.gid)) {
    bits = (i.mode >> 3) & 7;
  } else {
    bits = i.mode & 7;
  }
  uint32_t want = static_cast<uint32_t>(mask) & 7;
  if ((bits & want) != want) return Status::Error(EACCES);
  return Status::Ok();
}

// A read or write of a file's data. The server keeps no open state (as NFS
// does not), so it checks each request as nfsd_permission does: the owner may
// always read and write its own file (it may write through an fd it opened
// before a chmod took the bit away, or that created the file 0444), and x alone
// lets a file be read (exec and mmap of an execute-only binary read it). EACCES.
template <typename Inode>
Status DataPermission(const Caller& c, const Inode& i, int mask) {
  if (OwnerOrRoot(c, i)) return Status::Ok();
  if (mask == kMayRead && Permission(c, i, kMayExec).ok()) return Status::Ok();
  return Permission(c, i, mask);
}

// A hard link to another user's inode (may_linkat with fs.protected_hardlinks,
// on by default): only a regular, not set-id file the caller may read and write. EPERM.
template <typename Inode>
Status LinkPermission(const Caller& c, const Inode& i) {
  if (OwnerOrRoot(c, i)) return Status::Ok();
  const bool setgid_exec = (i.mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP);
  if (!S_ISREG(i.mode) || (i.mode & S_ISUID) || setgid_exec) return Status::Error(EPERM);
  if (!Permission(c, i, kMayRead | kMayWrite).ok()) return Status::Error(EPERM);
  return Status::Ok();
}

// Sticky directories: only the entry's owner, the directory's owner or root
// may remove or rename an entry. EPERM.
template <typename Inode>
Status StickyCheck(const Caller& c, const Inode& dir, const Inode& child) {
  if ((dir.mode & S_ISVTX) && !IsRoot(c) && c.uid != dir.uid && c.uid != child.uid) {
    return Status::Error(EPERM);
  }
  return Status::Ok();
}

// setattr_should_drop_sgid: whether S_ISGID goes on write, truncate or chown.
template <typename Inode>
bool ShouldDropSgid(const Caller& c, const Inode& i) {
  if (!(i.mode & S_ISGID)) return false;
  if (i.mode & S_IXGRP) return true;
  return !IsRoot(c) && !InGroup(c, i.gid);
}

// A write or truncate by a non-root caller clears S_ISUID, and S_ISGID when it
// is a real setgid (group exec) or the caller is not in the file's group
// (setattr_should_drop_suidgid, regular files only).
template <typename Inode>
void KillPrivilegesOnWrite(const Caller& c, Inode& i) {
  if (IsRoot(c) || !S_ISREG(i.mode)) return;
  bool drop_sgid = ShouldDropSgid(c, i);
  i.mode &= ~S_ISUID;
  if (drop_sgid) i.mode &= ~S_ISGID;
}

// chown/chgrp of a non-directory clears S_ISUID even for root, and S_ISGID as
// above (chown_common).
template <typename Inode>
void KillPrivilegesOnChown(const Caller& c, Inode& i) {
  if (S_ISDIR(i.mode)) return;
  bool drop_sgid = ShouldDropSgid(c, i);
  i.mode &= ~S_ISUID;
  if (drop_sgid) i.mode &= ~S_ISGID;
}

// setattr_prepare for everything but the size: who may change owner, group,
// mode and times. EPERM or EACCES.
template <typename Inode>
Status CheckAttrChange(const Caller& c, const Inode& i, const SetAttrRequest& req) {
  const uint32_t m = req.mask;
  const bool root = IsRoot(c);
  const bool owner = OwnerOrRoot(c, i);
  // chown_ok / chgrp_ok: root, or the owner keeping the uid and choosing one of its groups.
  if ((m & kSetUid) && !root && (c.uid != i.uid || req.uid != i.uid)) {
    return Status::Error(EPERM);
  }
  if ((m & kSetGid) && !root && !(c.uid == i.uid && (req.gid == i.gid || InGroup(c, req.gid)))) {
    return Status::Error(EPERM);
  }
  // A non-owner may only drop S_ISUID/S_ISGID: the kernel's own kill-privileges
  // change after a write (ATTR_FORCE), which FUSE forwards as a chmod.
  const uint32_t kill_bits = S_ISUID | S_ISGID;
  bool only_kills = (req.mode & 07777 & ~kill_bits) == (i.mode & 07777 & ~kill_bits) &&
                    (req.mode & kill_bits & ~i.mode) == 0;
  if ((m & kSetMode) && !owner && !only_kills) return Status::Error(EPERM);
  if (m & (kSetAtime | kSetMtime)) {
    if (!owner) return Status::Error(EPERM);  // explicit times: owner only
  } else if ((m & (kSetAtimeNow | kSetMtimeNow)) && !owner) {
    RETURN_IF_ERROR(Permission(c, i, kMayWrite));  // touch: owner or writer
  }
  return Status::Ok();
}

// Applies a checked change (all but the size) at time `now`; ctime moves too.
template <typename Inode>
void ApplyAttrChange(const Caller& c, Inode& i, const SetAttrRequest& req, int64_t now) {
  const uint32_t m = req.mask;
  if (m & (kSetUid | kSetGid)) {
    KillPrivilegesOnChown(c, i);
    if (m & kSetUid) i.uid = req.uid;
    if (m & kSetGid) i.gid = req.gid;
  }
  if (m & kSetMode) {
    uint32_t mode = req.mode & 07777;
    if (!IsRoot(c) && !InGroup(c, i.gid)) mode &= ~S_ISGID;
    i.mode = (i.mode & S_IFMT) | mode;
  }
  if (m & kSetAtime) i.atime_ns = req.atime_ns;
  if (m & kSetAtimeNow) i.atime_ns = now;
  if (m & kSetMtime) i.mtime_ns = req.mtime_ns;
  if (m & kSetMtimeNow) i.mtime_ns = now;
  i.ctime_ns = (m & kSetCtime) ? req.ctime_ns : now;
}

// Owner, group and set-id bits of a new inode of `type` made by `c` in `dir`
// (inode_init_owner + mode_strip_sgid); `i.mode` holds type and permissions.
template <typename Dir, typename Inode>
void InitNewOwner(const Caller& c, const Dir& dir, uint32_t type, Inode& i) {
  i.uid = c.uid;
  i.gid = c.gid;
  if (!(dir.mode & S_ISGID)) return;
  i.gid = dir.gid;
  if (type == S_IFDIR) {
    i.mode |= S_ISGID;
  } else if ((i.mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP) && !IsRoot(c) &&
             !InGroup(c, dir.gid)) {
    i.mode &= ~S_ISGID;
  }
}

}  // namespace cohfs
