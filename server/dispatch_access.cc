// Who a request acts for, and whether it may name the inodes it names
// (FileSystem::Reach, server/reach.cc). The rights on each object are checked
// by FileSystem itself (common/permissions.h).
#include "common/permissions.h"
#include "server/dispatch.h"
#include "server/lock_needs.h"

namespace cohfs {

Caller Dispatcher::CallerOf(wire::Caller::Reader caller) const {
  return Squashed(FromWire(caller), config_.squash);
}

// An inode removed from the namespace (nlink 0) is reachable only by a client
// that still holds it: one whose kernel has it open (a reference) or locked.
Status Dispatcher::CheckReach(const Session& s, const Caller& c, wire::Request::Reader req) {
  if (IsRoot(c)) return Status::Ok();  // searches every directory: no walk
  for (InodeId ino : NamedInodesOf(fs_, req)) {
    bool held = locks_.HeldBy(s.client, ino) != LockMode::kNone || locks_.References(s.client, ino);
    RETURN_IF_ERROR(fs_.Reach(c, ino, held));
  }
  return Status::Ok();
}

}  // namespace cohfs
