// FuseInitIo: the session's reads and writes of /dev/fuse, passed through
// unchanged but for the INIT reply. Debian's libfuse 3.14 never tells the
// kernel FUSE_PARALLEL_DIROPS or FUSE_HANDLE_KILLPRIV_V2, even when the file
// system wants them (fixed in libfuse 3.17); this io notes which flags the
// kernel's INIT offers and ORs the wanted ones it offered into the reply.
// With FUSE over io_uring prepared (set_uring), it also asks for that in the
// INIT reply, starts the rings once the reply is written, and sends replies
// to requests that came from a ring back to their entry instead of /dev/fuse.
// Any libfuse worker thread; lock-free.
#pragma once

#include <linux/fuse.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace cohfs {

class FuseUring;

class FuseInitIo {
 public:
  // `wanted`: FUSE_* INIT flags (flags2 shifted up by 32) to add when offered;
  // `added` (borrowed, e.g. a ClientStats counter) gets those added.
  FuseInitIo(uint64_t wanted, std::atomic<uint64_t>& added) : wanted_(wanted), added_(added) {}

  // The fuse_custom_io callbacks, on the session's fd.
  ssize_t Read(int fd, void* buf, size_t len);
  ssize_t Writev(int fd, const iovec* iov, int count);

  // Before the session loop: rings ready to start (borrowed; outlives the loop).
  void set_uring(FuseUring* uring) { uring_ = uring; }

  // The two steps, apart from the fd (unit tests): a request read from the
  // kernel; and, for a reply of `count` parts, whether it is the successful
  // answer to INIT, in which case *out holds its fuse_init_out with the
  // flags added.
  void NoteRequest(const void* buf, size_t len);
  bool PatchInitReply(const iovec* iov, int count, fuse_init_out* out);

 private:
  ssize_t WriteInitReply(int fd, const iovec* iov, const fuse_init_out& out);

  const uint64_t wanted_;
  std::atomic<FuseUring*> uring_{nullptr};
  std::atomic<uint64_t> init_unique_{0};  // the INIT request's id; 0 before it and after its reply
  std::atomic<uint64_t> offered_{0};      // the kernel's INIT flags
  std::atomic<uint64_t>& added_;  // the flags added to the INIT reply (0 until it is written)
};

}  // namespace cohfs
