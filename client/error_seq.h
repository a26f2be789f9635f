// ErrorSeq: deferred failures (a written-behind write or a logged change the
// server refused) and who has been told, as Linux tracks writeback errors
// with errseq_t (docs/failure.md "Deferred errors"):
// - each open file (a FUSE file handle) reports a failure once, at its next
//   fsync; a file opened after the failure reports it too if nobody has seen
//   it yet (errseq_sample), else not;
// - write() and close() (FUSE flush) of the inode report it once between
//   them, whichever comes first;
// - fsync never returns 0 while its open file has not reported a failure.
// Only the newest failure of an inode is kept (as errseq_t: a later one
// overwrites the errno). A record goes once the inode's last open file closes
// after it was reported; one nobody has seen stays for the next opener.
// Thread-safe (mu_ is a leaf).
#pragma once

#include <cstdint>
#include <mutex>
#include <unordered_map>

#include "common/ids.h"
#include "common/status.h"

namespace cohfs {

class ErrorSeq {
 public:
  // A new open file of `ino`; returns its handle (never 0).
  uint64_t Open(InodeId ino);
  void Close(uint64_t file);
  // The server refused a change of `ino`.
  void Record(InodeId ino, const Status& st);
  // fsync of open file `file`: the failure it has not reported yet, once.
  // An unknown handle (0) reports what the inode's close has not.
  Status TakeForFsync(uint64_t file, InodeId ino);
  // write() or close() of `ino`: the failure neither has reported yet, once.
  Status TakeForClose(InodeId ino);
  size_t records() const;
  size_t open_files() const;

 private:
  struct InodeErrors {
    uint64_t seq = 0;         // failures so far (0: none)
    Status status;            // the newest
    bool seen = false;        // some fsync reported the newest
    uint64_t close_seen = 0;  // the seq write/close reported last
    int open = 0;             // open files of the inode
  };
  struct File {
    InodeId ino;
    uint64_t seen = 0;  // the seq its fsync reported last (or sampled at open)
  };
  void MaybeForget(InodeId ino);

  mutable std::mutex mu_;  // guards everything below (rank: leaf)
  uint64_t next_file_ = 1;
  std::unordered_map<InodeId, InodeErrors> inodes_;
  std::unordered_map<uint64_t, File> files_;
};

}  // namespace cohfs
