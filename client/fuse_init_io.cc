#include "client/fuse_init_io.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>

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
  const uint64_t add = wanted_ & offered_.load() & ~has;
  if (add == 0) return false;
  out->flags |= static_cast<uint32_t>(add);
  if (add >> 32) {
    out->flags |= FUSE_INIT_EXT;
    out->flags2 |= static_cast<uint32_t>(add >> 32);
  }
  added_ = add;
  return true;
}

ssize_t FuseInitIo::Writev(int fd, const iovec* iov, int count) {
  fuse_init_out patched;
  if (!PatchInitReply(iov, count, &patched)) return writev(fd, iov, count);
  iovec parts[2] = {iov[0], {&patched, sizeof(patched)}};
  return writev(fd, parts, 2);
}

}  // namespace cohfs
