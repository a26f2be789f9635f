// WritebackLog: changes this client made to inodes it holds EXCLUSIVE,
// applied to its cache and answered without the server (DESIGN §6), kept in
// order until they ship as one Commit ahead of the next request.
//
// Every change gets a sequence number. A request sent after the log was
// drained up to N reaches the server after those changes; its reply describes
// inodes as of change N. The cache uses this to keep a local change that a
// reply predates (ObjectCache::PutAttr).
//
// A change the server refuses is reported, once, by the next flush of that
// inode (close, fsync; as a deferred write error is, and as NFS reports one).
// The change list is not thread-safe: FuseOps guards it with the mutex that
// orders sends. The failure records have their own mutex (rank: leaf), as the
// network thread records them.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/fs_types.h"
#include "common/ids.h"
#include "common/status.h"

namespace cohfs {

class WritebackLog {
 public:
  // One change: an attribute change of `ino`, or the creation of regular
  // file `ino` named `name` in `parent`.
  struct Op {
    enum class Kind { kSetAttr, kCreate } kind = Kind::kSetAttr;
    InodeId ino;
    Caller caller;
    int64_t now_ns = 0;  // when the change happened here
    SetAttrRequest setattr;  // kSetAttr (its now_ns == now_ns)
    InodeId parent;          // kCreate
    std::string name;        // kCreate
    uint32_t mode = 0;       // kCreate: S_IFREG | permissions
  };

  // Appends a change; returns its sequence number (1, 2, ...).
  uint64_t Append(Op op);
  // Numbers a local change that travels outside the log (data written
  // behind, whose reply must not be undone by older replies).
  uint64_t NoteLocalChange() { return ++last_seq_; }
  // Takes every pending change, oldest first.
  std::vector<Op> Drain();
  bool empty() const { return ops_.empty(); }
  size_t size() const { return ops_.size(); }
  // The newest sequence number handed out (0: none yet).
  uint64_t last_seq() const { return last_seq_; }
  // When the oldest pending change was made.
  int64_t oldest_ns() const { return oldest_ns_; }

  // The server refused a change of `ino` (the first error is kept).
  void RecordFailure(InodeId ino, const Status& st);
  // Returns and clears the refused change's error, if any.
  Status TakeFailure(InodeId ino);

 private:
  std::vector<Op> ops_;
  uint64_t last_seq_ = 0;
  int64_t oldest_ns_ = 0;
  std::mutex failures_mu_;
  std::unordered_map<InodeId, Status> failures_;
};

}  // namespace cohfs
