#include "protocol/channel_key.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace cohfs {

ChannelKey::~ChannelKey() { sodium_memzero(bytes.data(), bytes.size()); }

Status WriteNewKeyFile(const std::string& path, bool force) {
  CHECK(sodium_init() >= 0);
  ChannelKey key;
  randombytes_buf(key.bytes.data(), key.bytes.size());
  char hex[2 * kChannelKeyBytes + 2];
  sodium_bin2hex(hex, sizeof(hex), key.bytes.data(), key.bytes.size());
  size_t len = 2 * kChannelKeyBytes;
  hex[len++] = '\n';
  int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (force ? O_TRUNC : O_EXCL);
  int fd = open(path.c_str(), flags, 0600);
  if (fd < 0) return Status::Error(errno, path);
  // An existing file replaced with --force keeps its inode: make it 0600 first.
  Status st = fchmod(fd, 0600) == 0 ? Status::Ok() : Status::Error(errno, "chmod " + path);
  if (st.ok() && write(fd, hex, len) != static_cast<ssize_t>(len)) {
    st = Status::Error(errno ? errno : EIO, "write " + path);
  }
  if (st.ok() && fsync(fd) != 0) st = Status::Error(errno, "fsync " + path);
  sodium_memzero(hex, sizeof(hex));
  close(fd);
  return st;
}

Result<ChannelKey> ReadKeyFile(const std::string& path) {
  CHECK(sodium_init() >= 0);
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::Error(errno, "key file " + path);
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    return Status::Error(e, "key file " + path);
  }
  if (st.st_mode & 077) {
    close(fd);
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", st.st_mode & 07777);
    return Status::Error(EACCES, "key file " + path + " is readable by group or others (mode " +
                                     mode + "): chmod 600 " + path);
  }
  char hex[2 * kChannelKeyBytes + 2] = {};
  ssize_t n = read(fd, hex, sizeof(hex));
  close(fd);
  ChannelKey key;
  size_t got = 0;
  bool ok = n == static_cast<ssize_t>(sizeof(hex)) - 1 && hex[2 * kChannelKeyBytes] == '\n' &&
            sodium_hex2bin(key.bytes.data(), key.bytes.size(), hex, 2 * kChannelKeyBytes, nullptr,
                           &got, nullptr) == 0 &&
            got == kChannelKeyBytes;
  sodium_memzero(hex, sizeof(hex));
  if (!ok) {
    return Status::Error(EINVAL, "key file " + path +
                                     " is not a cohfs key (64 hex digits; make one with "
                                     "cohfs keygen FILE)");
  }
  return key;
}

}  // namespace cohfs
