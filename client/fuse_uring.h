// FuseUring: FUSE requests over io_uring (kernel fs/fuse/dev_uring.c), for
// libfuse 3.14, which knows nothing of it.
//
// The kernel has one queue per possible CPU and sends a request to the queue
// of the CPU its caller runs on; it uses the rings only once every queue has
// a free entry, and until then (and for FORGET, INTERRUPT and notifications,
// always) /dev/fuse. Here each queue gets `threads_per_queue` threads, each
// with its own io_uring and one entry, so an entry is free exactly when its
// thread is: a request that blocks (a round trip) holds one thread, as in
// libfuse's worker pool.
//
// A thread turns its entry's request into the buffer /dev/fuse would have
// given (header, first argument and payload made contiguous in place) and
// hands it to fuse_session_process_buf; the reply comes back through the
// session's writev (FuseInitIo), which offers it to Reply() first: a reply
// whose unique belongs to an entry is copied into that entry, and its thread
// commits it and fetches the next request in one COMMIT_AND_FETCH (after the
// op returns, or before the op's next write to /dev/fuse: CommitOwnReply).
//
// Only a ring's own thread submits to it: the kernel ties an entry's command
// to the task that submitted it (and cancels it when that task exits).
// Threads: Prepare/Start/Stop from the mount's threads; Reply from any.
#pragma once

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <sys/uio.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "client/stats.h"

namespace cohfs {

class FuseUring {
 public:
  // `se` and `stats` are borrowed and outlive this; `fuse_fd` is the session's.
  FuseUring(fuse_session* se, int fuse_fd, ClientStats& stats, unsigned threads_per_queue);
  ~FuseUring();  // Stop()
  FuseUring(const FuseUring&) = delete;
  FuseUring& operator=(const FuseUring&) = delete;

  // Before the session loop: starts the threads, each creates its io_uring.
  // False (with the reason logged) if any cannot; then the mount uses /dev/fuse.
  bool Prepare();
  // The INIT reply with FUSE_OVER_IO_URING was written: register the entries,
  // each large enough for what that reply allows (max_write, max_pages).
  void Start(const fuse_init_out& init);
  // Ends the threads (idempotent). The kernel may still have requests in
  // flight to the rings; the mount is going away.
  void Stop();

  // Any thread: if iov[0]'s unique is a request a ring entry holds, copies
  // the reply into it and returns true; else false (it goes to /dev/fuse).
  bool Reply(const iovec* iov, int count);

  // On a ring thread whose entry holds a reply not yet committed: commit it
  // now. Through /dev/fuse a reply is delivered when fuse_reply_* returns, and
  // an op may rely on that (a read that replies, then invalidates the pages
  // its reply unlocks); call this before such a thread writes /dev/fuse.
  void CommitOwnReply();

  // Possible CPUs (/sys/devices/system/cpu/possible): the kernel's queue count.
  static unsigned PossibleCpus();

  struct Worker;  // a thread, its io_uring and its one entry (fuse_uring.cc)

 private:
  void Run(Worker* w);
  bool Setup(Worker* w);
  bool Register(Worker* w);
  void Serve(Worker* w);
  bool Process(Worker* w);
  void ReplyError(uint64_t unique, int err);
  bool Commit(Worker* w);
  void EntryFailed(Worker* w, int err);
  bool AwaitGo();

  static thread_local Worker* current_;  // on a ring thread, its own entry

  fuse_session* const se_;
  const int fuse_fd_;
  ClientStats& stats_;
  const unsigned threads_per_queue_;
  size_t payload_bytes_ = 0;  // written before go_, read by the threads after
  std::mutex mu_;             // guards the three below (rank: leaf)
  std::condition_variable cv_;
  int prepared_ = 0;  // threads whose ring exists (-1 once one failed)
  bool go_ = false;
  std::atomic<bool> stop_{false};
  std::vector<std::unique_ptr<Worker>> workers_;
};

}  // namespace cohfs
