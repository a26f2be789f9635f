#include "storage/block_device.h"

#include <fcntl.h>
#include <liburing.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

#include "common/limits.h"
#include "common/log.h"

namespace cohfs {

AlignedBuffer::AlignedBuffer(size_t bytes) {
  size_ = (bytes + kBlockBytes - 1) / kBlockBytes * kBlockBytes;
  if (size_ == 0) size_ = kBlockBytes;
  void* p = nullptr;
  CHECK(posix_memalign(&p, kBlockBytes, size_) == 0);
  std::memset(p, 0, size_);
  data_.reset(static_cast<char*>(p));
}

void AlignedBuffer::Deleter::operator()(char* p) const { std::free(p); }

namespace {

bool Aligned(uint64_t v) { return v % kBlockBytes == 0; }

constexpr unsigned kRingEntries = 8;   // one operation in flight at a time
constexpr int kMaxAgainRetries = 100;  // cqe->res == -EAGAIN: resubmit, but not forever

class UringBlockDevice : public BlockDevice {
 public:
  UringBlockDevice(int fd, uint64_t size, bool is_block, bool read_only)
      : fd_(fd), size_(size), is_block_(is_block), read_only_(read_only) {}
  ~UringBlockDevice() override {
    io_uring_queue_exit(&ring_);
    close(fd_);
  }
  Status Init() {
    int rc = io_uring_queue_init(kRingEntries, &ring_, 0);
    if (rc < 0) return Status::Error(-rc, "io_uring_queue_init");
    return Status::Ok();
  }

  uint64_t size_bytes() const override { return size_; }
  bool is_block_device() const override { return is_block_; }

  Status Read(uint64_t offset, void* buf, size_t len) override {
    io_stats_.reads.fetch_add(1, std::memory_order_relaxed);
    io_stats_.read_bytes.fetch_add(len, std::memory_order_relaxed);
    return Transfer(false, offset, static_cast<char*>(buf), len, false);
  }
  Status Write(uint64_t offset, const void* buf, size_t len, bool durable) override {
    if (read_only_ || failed_) return Status::Error(EIO, "device is read-only");
    io_stats_.writes.fetch_add(1, std::memory_order_relaxed);
    io_stats_.written_bytes.fetch_add(len, std::memory_order_relaxed);
    Status st =
        Transfer(true, offset, const_cast<char*>(static_cast<const char*>(buf)), len, durable);
    if (!st.ok()) Fail(st);
    return st;
  }
  Status Flush() override {
    if (read_only_) return Status::Ok();
    if (failed_) return Status::Error(EIO, "device is read-only");
    io_stats_.flushes.fetch_add(1, std::memory_order_relaxed);
    int res;
    {
      std::lock_guard<std::mutex> l(mu_);
      io_uring_sqe* sqe = GetSqe();
      io_uring_prep_fsync(sqe, fd_, IORING_FSYNC_DATASYNC);
      res = SubmitAndWait();
    }
    if (res < 0) {
      Status st = Status::Error(-res, "device flush");
      Fail(st);
      return st;
    }
    return Status::Ok();
  }

  Status Discard(uint64_t offset, uint64_t len) override {
    CHECK(Aligned(offset) && Aligned(len) && offset <= size_ && len <= size_ - offset);
    if (read_only_ || failed_) return Status::Error(EIO, "device is read-only");
    int rc;
    if (is_block_) {
      uint64_t range[2] = {offset, len};
      rc = ioctl(fd_, BLKDISCARD, range);
    } else {
      rc = fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                     static_cast<off_t>(len));
    }
    if (rc != 0) return Status::Error(errno, is_block_ ? "BLKDISCARD" : "punch hole");
    io_stats_.discarded_bytes.fetch_add(len, std::memory_order_relaxed);
    return Status::Ok();
  }

 private:
  void Fail(const Status& st) {
    if (!failed_.exchange(true)) {
      LOG(Error) << "device write failed, device is now read-only: " << st.ToString();
    }
  }

  io_uring_sqe* GetSqe() {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    CHECK_MSG(sqe != nullptr, "one operation at a time never fills the ring");
    return sqe;
  }

  // After a failed submit or wait the SQE may still be queued or in flight:
  // start over with a fresh ring (closing the old one cancels it) so a later
  // operation never submits or reaps it. Returns `rc`.
  int ResetRing(int rc) {
    io_uring_queue_exit(&ring_);
    int init = io_uring_queue_init(kRingEntries, &ring_, 0);
    CHECK_MSG(init == 0, "io_uring_queue_init after a failed submit");
    return rc;
  }

  // Submits the one prepared SQE and returns its cqe->res (negative errno).
  // Interrupted submits and waits are retried: the SQE is submitted exactly once
  // and its completion consumed exactly once.
  int SubmitAndWait() {
    int rc;
    do {
      rc = io_uring_submit(&ring_);
    } while (rc == -EINTR);
    if (rc < 0) return ResetRing(rc);
    CHECK(rc == 1);
    io_uring_cqe* cqe = nullptr;
    do {
      rc = io_uring_wait_cqe(&ring_, &cqe);
    } while (rc == -EINTR);
    if (rc < 0) return ResetRing(rc);
    int res = cqe->res;
    io_uring_cqe_seen(&ring_, cqe);
    return res;
  }

  // One read or write, resubmitting the rest after a short transfer.
  Status Transfer(bool write, uint64_t offset, char* buf, size_t len, bool durable) {
    CHECK(Aligned(offset) && Aligned(len) && Aligned(reinterpret_cast<uintptr_t>(buf)));
    if (offset > size_ || len > size_ - offset) {
      return Status::Error(EIO, "I/O beyond the end of the device");
    }
    std::lock_guard<std::mutex> l(mu_);
    size_t done = 0;
    int again = 0;
    while (done < len) {
      io_uring_sqe* sqe = GetSqe();
      unsigned n = static_cast<unsigned>(std::min<size_t>(len - done, 1u << 30));
      if (write) {
        io_uring_prep_write(sqe, fd_, buf + done, n, offset + done);
        if (durable) sqe->rw_flags = RWF_DSYNC;
      } else {
        io_uring_prep_read(sqe, fd_, buf + done, n, offset + done);
      }
      int res = SubmitAndWait();
      if ((res == -EINTR || res == -EAGAIN) && ++again <= kMaxAgainRetries) continue;
      if (res < 0) {
        return Status::Error(-res, std::string(write ? "device write" : "device read") + " at " +
                                       std::to_string(offset + done));
      }
      if (res == 0) return Status::Error(EIO, "device returned 0 bytes");
      done += static_cast<size_t>(res);
    }
    return Status::Ok();
  }

  int fd_;
  uint64_t size_;
  bool is_block_;
  bool read_only_;
  std::atomic<bool> failed_{false};  // set once, never cleared
  std::mutex mu_;                    // guards ring_ (rank: leaf)
  io_uring ring_{};
};

// flock(fd, op) retried until `patience` runs out; errno set when false.
bool LockWithin(int fd, int op, std::chrono::milliseconds patience) {
  auto deadline = std::chrono::steady_clock::now() + patience;
  while (flock(fd, op | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK || std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

}  // namespace

Result<std::unique_ptr<BlockDevice>> BlockDevice::Open(const std::string& path, bool read_only) {
  int flags = (read_only ? O_RDONLY : O_RDWR) | O_DIRECT | O_CLOEXEC;
  // A block device opened for writing is opened exclusively: EBUSY when it is
  // mounted or another server (or format) has it, instead of two writers.
  struct stat pre;
  if (!read_only && stat(path.c_str(), &pre) == 0 && S_ISBLK(pre.st_mode)) flags |= O_EXCL;
  int fd = open(path.c_str(), flags);
  if (fd < 0) return Status::Error(errno, "open " + path + ": " + std::strerror(errno));
  // One writer, or any number of readers (fsck), per device or image: a
  // second server, and format (--force too), are refused while a server runs.
  // flock belongs to this open file: it goes when the process dies, kill -9
  // too, but a killed server's io_uring lets go of the file a moment after the
  // process is reaped, so a holder gets two seconds to disappear.
  if (!LockWithin(fd, read_only ? LOCK_SH : LOCK_EX, std::chrono::seconds(2))) {
    int err = errno;
    close(fd);
    if (err == EWOULDBLOCK) {
      return Status::Error(EBUSY, path + " is in use by another cohfs process (" +
                                      (read_only ? "a running server or format"
                                                 : "a running server, format or fsck") +
                                      "); stop it first");
    }
    return Status::Error(err, "flock " + path + ": " + std::strerror(err));
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int err = errno;
    close(fd);
    return Status::Error(err, "stat " + path);
  }
  uint64_t size = 0;
  bool is_block = S_ISBLK(st.st_mode);
  if (is_block) {
    if (ioctl(fd, BLKGETSIZE64, &size) != 0) {
      int err = errno;
      close(fd);
      return Status::Error(err, "BLKGETSIZE64 " + path);
    }
  } else if (S_ISREG(st.st_mode)) {
    size = static_cast<uint64_t>(st.st_size);
  } else {
    close(fd);
    return Status::Error(EINVAL, path + " is neither a block device nor a regular file");
  }
  size -= size % kBlockBytes;
  auto dev = std::make_unique<UringBlockDevice>(fd, size, is_block, read_only);
  RETURN_IF_ERROR(dev->Init());
  return std::unique_ptr<BlockDevice>(std::move(dev));
}

}  // namespace cohfs
