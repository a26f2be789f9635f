// WritebackLog: changes this client made to inodes it holds EXCLUSIVE,
// applied to its cache and answered without the server (DESIGN §6), kept in
// order until they ship as one Commit ahead of the next request.
//
// Every change gets a sequence number. A request sent after the log was
// drained up to N reaches the server after those changes; its reply describes
// inodes as of change N. The cache uses this to keep a local change that a
// reply predates (ObjectCache::PutAttr).
//
// A change the server refuses is reported as a deferred write error is
// (ErrorSeq: each open file's next fsync, and the next write or close).
// Not thread-safe: FsClient guards it with the mutex that orders sends.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/fs_types.h"
#include "common/ids.h"
#include "common/limits.h"
#include "common/status.h"

namespace cohfs {

class WritebackLog {
 public:
  // One change made locally under EXCLUSIVE locks (DESIGN §5), as the server
  // will apply it from a commit.
  struct Op {
    enum class Kind {
      kSetAttr, kCreate, kLink, kUnlink, kRmdir, kRename, kSetXattr, kRemoveXattr
    } kind = Kind::kSetAttr;
    InodeId ino;  // the inode the change is about (the new one for kCreate)
    Caller caller;
    int64_t now_ns = 0;       // when the change happened here
    SetAttrRequest setattr;   // kSetAttr (its now_ns == now_ns)
    InodeId parent;           // kCreate, kUnlink, kRmdir, kRename: the directory
    std::string name;         // ... and the name in it
    uint32_t mode = 0;        // kCreate: type | permissions
    uint64_t rdev = 0;        // kCreate: device nodes
    std::string target;       // kCreate of a symlink; kSetXattr: the value
    std::string xattr;        // kSetXattr, kRemoveXattr: the attribute's name
    InodeId new_parent;       // kLink, kRename
    std::string new_name;     // kLink, kRename
    uint32_t flags = 0;       // kRename: kRenameNoReplace / kRenameExchange; kSetXattr
    bool with_next = false;   // this change and the next are applied together or not at all
    // Every inode whose cached state the change touched (to re-learn on refusal).
    std::vector<InodeId> touched;
  };

  // Appends a change; returns its sequence number (1, 2, ...). A change of
  // an inode the previous pending change created joins that change's group
  // (a create and its first attributes: one WriteBatch on the server).
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

 private:
  static constexpr size_t kMaxGroupOps = 32;
  static_assert(kMaxGroupOps <= kMaxCommitGroupOps, "the server refuses longer groups");
  std::vector<Op> ops_;
  InodeId group_ino_;      // the inode the open group created (none: no group open)
  size_t group_size_ = 0;  // changes in the open group
  uint64_t last_seq_ = 0;
  int64_t oldest_ns_ = 0;
};

}  // namespace cohfs
