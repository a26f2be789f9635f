#include "client/fuse_init_io.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "client/fuse_uring.h"
#include "client/fuse_uring_abi.h"
#include "common/log.h"

namespace cohfs {

ssize_t FuseInitIo::Read(int fd, void* buf, size_t len) {
  ssize_t n = read(fd, buf, len);
  if (n > 0) NoteRequest(buf, static_cast<size_t>(n));
  return n;
}

void FuseInitIo::NoteRequest(const void* buf, size_t len) {
  if (len < sizeof(fuse_in_header) + sizeof(fuse_init_in)) return;
  fuse_in_header h;
  std::memcpy(&h, buf, sizeof(h));
  if (h.opcode != FUSE_INIT) return;
  fuse_init_in in;
  std::memcpy(&in, static_cast<const char*>(buf) + sizeof(h), sizeof(in));
  uint64_t offered = in.flags;
  if (in.flags & FUSE_INIT_EXT) offered |= uint64_t{in.flags2} << 32;
  offered_ = offered;
  init_unique_ = h.unique;
}

bool FuseInitIo::PatchInitReply(const iovec* iov, int count, fuse_init_out* out) {
  const uint64_t unique = init_unique_.load();
  if (unique == 0 || count != 2 || iov[0].iov_len != sizeof(fuse_out_header)) return false;
  fuse_out_header h;
  std::memcpy(&h, iov[0].iov_base, sizeof(h));
  if (h.unique != unique) return false;
  init_unique_ = 0;
  // Only a full-size success reply (protocol 7.23 and later) has room for flags2.
  if (h.error != 0 || iov[1].iov_len != sizeof(fuse_init_out)) return false;
  std::memcpy(out, iov[1].iov_base, sizeof(*out));
  uint64_t has = out->flags;
  if (out->flags & FUSE_INIT_EXT) has |= uint64_t{out->flags2} << 32;
  const uint64_t wanted = wanted_ | (uring_.load() ? kFuseOverIoUring : 0);
  const uint64_t add = wanted & offered_.load() & ~has;
  if (add == 0) return true;
  out->flags |= static_cast<uint32_t>(add);
  if (add >> 32) {
    out->flags |= FUSE_INIT_EXT;
    out->flags2 |= static_cast<uint32_t>(add >> 32);
  }
  added_ = add;
  return true;
}

ssize_t FuseInitIo::Writev(int fd, const iovec* iov, int count) {
  FuseUring* uring = uring_.load();
  if (uring && uring->Reply(iov, count)) {
    fuse_out_header h;
    std::memcpy(&h, iov[0].iov_base, sizeof(h));
    return h.len;
  }
  if (uring) uring->CommitOwnReply();  // what this thread replied is out before it notifies
  fuse_init_out patched;
  if (!PatchInitReply(iov, count, &patched)) return writev(fd, iov, count);
  return WriteInitReply(fd, iov, patched);
}

// The rings may register only once the kernel has taken this reply.
ssize_t FuseInitIo::WriteInitReply(int fd, const iovec* iov, const fuse_init_out& out) {
  iovec parts[2] = {iov[0], {const_cast<fuse_init_out*>(&out), sizeof(out)}};
  ssize_t n = writev(fd, parts, 2);
  FuseUring* uring = uring_.load();
  if (!uring) return n;
  const bool on =
      n > 0 && (out.flags & FUSE_INIT_EXT) && ((uint64_t{out.flags2} << 32) & kFuseOverIoUring);
  if (on) {
    LOG(Info) << "FUSE over io_uring: on";
    uring->Start(out);
  } else {
    LOG(Info) << "FUSE over io_uring: the kernel does not offer it (fuse module parameter "
                 "enable_uring); requests go through /dev/fuse";
    uring->Stop();
    uring_ = nullptr;
  }
  return n;
}

}  // namespace cohfs
