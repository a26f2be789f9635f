// FileLocks: POSIX record locks (fcntl, OFD) and flock(2) locks, arbitrated
// by the server for every client (DESIGN §5), so a lock taken through one
// mount excludes a conflicting one through any other.
//
// An owner is (client, the kernel's lock owner id): one per process for
// fcntl locks, one per open file for flock and OFD locks. Ranges are
// inclusive; kToEnd covers the rest of the file. POSIX semantics: a lock
// replaces the owner's overlapping ranges (splitting them), unlocking a part
// splits a range, read locks share, write locks exclude. flock locks and
// record locks live in separate spaces and never conflict with each other,
// as on Linux. Thread: the storage executor.
#pragma once

#include <cstdint>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/ids.h"

namespace cohfs {

struct FileLock {
  static constexpr uint64_t kToEnd = UINT64_MAX;
  enum class Type : uint8_t { kRead, kWrite, kUnlock };
  ClientId client;
  uint64_t owner = 0;
  bool flock = false;
  Type type = Type::kRead;
  uint64_t start = 0;
  uint64_t end = kToEnd;  // inclusive
  uint32_t pid = 0;       // for F_GETLK's answer
};

class FileLocks {
 public:
  // The first lock of another owner that conflicts with `want`, if any.
  std::optional<FileLock> Test(InodeId ino, const FileLock& want) const;
  // Takes or drops `want` (type kUnlock drops). False on a conflict (nothing changes).
  bool Set(InodeId ino, const FileLock& want);
  // Drops every lock of a client (session end).
  void ReleaseClient(ClientId client);
  // Every lock `client` holds, with its inode (reclaimed after a restart).
  std::vector<std::pair<InodeId, FileLock>> Held(ClientId client) const;
  // Whether `owner` of `client` holds a record (not flock) lock on `ino`.
  bool HoldsRecordLock(InodeId ino, ClientId client, uint64_t owner) const;
  size_t count(InodeId ino) const;

 private:
  std::unordered_map<InodeId, std::vector<FileLock>> locks_;
};

}  // namespace cohfs
