// Server-side permission rules (Linux generic_permission and friends), checked
// on every operation even though the kernel's default_permissions checked first:
// a client cannot be trusted to have asked its kernel.
#pragma once

#include <cstdint>

#include "common/fs_types.h"
#include "common/status.h"
#include "storage/items.h"

namespace cohfs {

inline constexpr int kMayRead = 4;   // R_OK
inline constexpr int kMayWrite = 2;  // W_OK
inline constexpr int kMayExec = 1;   // X_OK

bool IsRoot(const Caller& c);
bool InGroup(const Caller& c, uint32_t gid);
// Owner of the inode, or root (inode_owner_or_capable).
bool OwnerOrRoot(const Caller& c, const InodeItem& i);
// rwx of `mask` against the owner, group or other bits (exactly one class
// applies). Root passes, except that exec on a non-directory needs some x bit.
// EACCES.
Status Permission(const Caller& c, const InodeItem& i, int mask);
// Sticky directories: only the entry's owner, the directory's owner or root
// may remove or rename an entry. EPERM.
Status StickyCheck(const Caller& c, const InodeItem& dir, const InodeItem& child);
// A write or truncate by a non-root caller clears S_ISUID, and S_ISGID when it
// is a real setgid (group exec) or the caller is not in the file's group
// (setattr_should_drop_suidgid, regular files only).
void KillPrivilegesOnWrite(const Caller& c, InodeItem& i);
// chown/chgrp of a non-directory clears S_ISUID even for root, and S_ISGID as
// above (chown_common).
void KillPrivilegesOnChown(const Caller& c, InodeItem& i);

}  // namespace cohfs
