// LockNeeds: which inodes a request reads and which it changes, so the server
// can recall other clients' locks on them before running it (DESIGN §5).
// Names are resolved against the current tree; the executor asks again each
// time a parked request is retried, as the tree may have changed meanwhile.
// Thread: the storage executor.
#pragma once

#include <vector>

#include "common/fs_types.h"
#include "protocol/codec.h"
#include "server/file_system.h"

namespace cohfs {

struct LockNeed {
  InodeId ino;
  LockMode mode;  // kShared: reads it; kExclusive: changes it
};

// Empty for requests that touch no other client's objects (commits apply
// only what the sender holds EXCLUSIVE; releases, syncs, session messages).
// A Cap'n Proto exception may escape: call under GuardDecode.
std::vector<LockNeed> LockNeedsOf(FileSystem& fs, wire::Request::Reader req);

// The inodes a request names by number (not through a name in a directory):
// those the caller must be able to reach (FileSystem::Reach).
std::vector<InodeId> NamedInodesOf(FileSystem& fs, wire::Request::Reader req);

}  // namespace cohfs
