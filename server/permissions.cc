#include "server/permissions.h"

#include <sys/stat.h>

#include <algorithm>

namespace cohfs {
namespace {

// setattr_should_drop_sgid: whether S_ISGID goes on write, truncate or chown.
bool ShouldDropSgid(const Caller& c, const InodeItem& i) {
  if (!(i.mode & S_ISGID)) return false;
  if (i.mode & S_IXGRP) return true;
  return !IsRoot(c) && !InGroup(c, i.gid);
}

}  // namespace

bool IsRoot(const Caller& c) { return c.uid == 0; }

bool InGroup(const Caller& c, uint32_t gid) {
  return c.gid == gid || std::find(c.groups.begin(), c.groups.end(), gid) != c.groups.end();
}

bool OwnerOrRoot(const Caller& c, const InodeItem& i) { return IsRoot(c) || c.uid == i.uid; }

Status Permission(const Caller& c, const InodeItem& i, int mask) {
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

Status StickyCheck(const Caller& c, const InodeItem& dir, const InodeItem& child) {
  if ((dir.mode & S_ISVTX) && !IsRoot(c) && c.uid != dir.uid && c.uid != child.uid) {
    return Status::Error(EPERM);
  }
  return Status::Ok();
}

void KillPrivilegesOnWrite(const Caller& c, InodeItem& i) {
  if (IsRoot(c) || !S_ISREG(i.mode)) return;
  bool drop_sgid = ShouldDropSgid(c, i);
  i.mode &= ~S_ISUID;
  if (drop_sgid) i.mode &= ~S_ISGID;
}

void KillPrivilegesOnChown(const Caller& c, InodeItem& i) {
  if (S_ISDIR(i.mode)) return;
  bool drop_sgid = ShouldDropSgid(c, i);
  i.mode &= ~S_ISUID;
  if (drop_sgid) i.mode &= ~S_ISGID;
}

}  // namespace cohfs
