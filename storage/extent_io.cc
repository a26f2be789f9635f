#include "storage/extent_io.h"

#include <cstring>

#include "common/crc32c.h"
#include "common/limits.h"
#include "common/log.h"

namespace cohfs {

ExtentIo::ExtentIo(BlockDevice& device, Allocator& allocator)
    : device_(device), allocator_(allocator) {}

Result<std::vector<ExtentItem>> ExtentIo::WriteNew(std::span<const char> data, Txn& txn) {
  CHECK(data.size() <= kMaxExtentBytes);
  ASSIGN_OR_RETURN(std::vector<DeviceRange> ranges, allocator_.Allocate(data.size(), txn));
  std::vector<ExtentItem> out;
  size_t pos = 0;
  for (const DeviceRange& r : ranges) {
    AlignedBuffer buf(r.length);
    size_t n = std::min<size_t>(r.length, data.size() - pos);
    std::memcpy(buf.data(), data.data() + pos, n);
    ExtentItem e;
    e.device_offset = r.offset;
    e.length = r.length;
    for (uint64_t b = 0; b < r.length; b += kBlockBytes) {
      e.crcs.push_back(Crc32c(0, buf.data() + b, kBlockBytes));
    }
    // Durable before the caller may commit an item pointing at it.
    RETURN_IF_ERROR(device_.Write(r.offset, buf.data(), r.length, /*durable=*/true));
    out.push_back(std::move(e));
    pos += n;
  }
  return out;
}

Status ExtentIo::Read(const ExtentItem& e, uint64_t offset_in_extent, std::span<char> out) {
  CHECK(offset_in_extent + out.size() <= e.length);
  if (out.empty()) return Status::Ok();
  if (e.flags & ExtentItem::kUnwritten) {
    std::memset(out.data(), 0, out.size());
    return Status::Ok();
  }
  uint64_t first = offset_in_extent / kBlockBytes;
  uint64_t last = (offset_in_extent + out.size() - 1) / kBlockBytes;
  if (e.crcs.size() * uint64_t(kBlockBytes) != e.length) {
    return Status::Error(EIO, "extent has the wrong number of checksums");
  }
  uint64_t len = (last - first + 1) * kBlockBytes;
  AlignedBuffer buf(len);
  RETURN_IF_ERROR(device_.Read(e.device_offset + first * kBlockBytes, buf.data(), len));
  for (uint64_t b = first; b <= last; b++) {
    uint32_t crc = Crc32c(0, buf.data() + (b - first) * kBlockBytes, kBlockBytes);
    if (crc != e.crcs[b]) {
      uint64_t where = e.device_offset + b * kBlockBytes;
      LOG(Error) << "checksum mismatch in data block at device offset " << where << " (crc " << crc
                 << ", expected " << e.crcs[b] << ")";
      return Status::Error(EIO, "checksum mismatch at device offset " + std::to_string(where));
    }
  }
  std::memcpy(out.data(), buf.data() + (offset_in_extent - first * kBlockBytes), out.size());
  return Status::Ok();
}

Status ExtentIo::Verify(const ExtentItem& e) {
  for (uint64_t off = 0; off < e.length; off += kMaxExtentBytes) {
    std::string tmp(std::min<uint64_t>(kMaxExtentBytes, e.length - off), '\0');
    RETURN_IF_ERROR(Read(e, off, std::span<char>(tmp.data(), tmp.size())));
  }
  return Status::Ok();
}

void ExtentIo::Free(const ExtentItem& e, Txn& txn) {
  allocator_.Free(DeviceRange{e.device_offset, e.length}, txn);
}

ExtentItem SliceExtent(const ExtentItem& e, uint64_t from, uint64_t length) {
  CHECK(from % kBlockBytes == 0 && length % kBlockBytes == 0 && from + length <= e.length);
  ExtentItem s;
  s.device_offset = e.device_offset + from;
  s.length = length;
  s.flags = e.flags;
  if (!(e.flags & ExtentItem::kUnwritten)) {
    s.crcs.assign(e.crcs.begin() + from / kBlockBytes,
                  e.crcs.begin() + (from + length) / kBlockBytes);
  }
  return s;
}

}  // namespace cohfs
