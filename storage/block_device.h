// BlockDevice: a block device or image file opened O_DIRECT; every read, write
// and flush goes through this object's own io_uring.
//
// Offsets, lengths and buffer addresses are multiples of kBlockBytes (CHECKed).
// Thread-safe (an internal mutex guards the ring). A failed write or flush makes
// the device read-only: EIO from then on, never a retried fsync.
#pragma once

#include <atomic>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"

namespace cohfs {

// A heap buffer aligned to kBlockBytes, for O_DIRECT.
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t bytes);  // zero-filled; bytes rounded up to blocks
  char* data() { return data_.get(); }
  const char* data() const { return data_.get(); }
  size_t size() const { return size_; }

 private:
  struct Deleter {
    void operator()(char* p) const;
  };
  std::unique_ptr<char, Deleter> data_;
  size_t size_ = 0;
};

// Counted by the device on whichever thread does the I/O; read by a metrics
// scrape from another (relaxed atomics).
struct DeviceIoStats {
  std::atomic<uint64_t> reads{0};
  std::atomic<uint64_t> writes{0};
  std::atomic<uint64_t> read_bytes{0};
  std::atomic<uint64_t> written_bytes{0};
  std::atomic<uint64_t> flushes{0};
  std::atomic<uint64_t> discarded_bytes{0};
};

class BlockDevice {
 public:
  virtual ~BlockDevice() = default;
  static Result<std::unique_ptr<BlockDevice>> Open(const std::string& path, bool read_only);

  virtual uint64_t size_bytes() const = 0;  // rounded down to whole blocks
  virtual bool is_block_device() const = 0;
  virtual Status Read(uint64_t offset, void* buf, size_t len) = 0;
  // durable=true: the write is on stable storage when this returns (RWF_DSYNC).
  virtual Status Write(uint64_t offset, const void* buf, size_t len, bool durable) = 0;
  virtual Status Flush() = 0;  // fdatasync through io_uring
  // Tells the device [offset, offset + len) holds nothing (BLKDISCARD; a hole
  // punched in an image file). EOPNOTSUPP where it cannot.
  virtual Status Discard(uint64_t offset, uint64_t len) = 0;
  const DeviceIoStats& io_stats() const { return io_stats_; }

 protected:
  DeviceIoStats io_stats_;
};

}  // namespace cohfs
