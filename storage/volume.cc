#include "storage/volume.h"

#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

#include <cstring>
#include <filesystem>

#include "common/crc32c.h"
#include "common/limits.h"
#include "common/log.h"

namespace cohfs {
namespace {

constexpr char kMagic[8] = {'C', 'O', 'H', 'F', 'S', 'D', 'E', 'V'};
constexpr uint64_t kMinDeviceBytes = 16ull << 20;
constexpr size_t kCrcOffset = kBlockBytes - 4;

struct DeviceSuper {
  uint32_t format_version = 0;
  std::array<uint8_t, 16> uuid{};
  uint64_t device_bytes = 0;
  uint64_t data_start = 0;
};

void EncodeDeviceSuper(const DeviceSuper& s, char* block) {
  std::memset(block, 0, kBlockBytes);
  std::memcpy(block, kMagic, 8);
  std::memcpy(block + 8, &s.format_version, 4);
  std::memcpy(block + 12, s.uuid.data(), 16);
  std::memcpy(block + 28, &s.device_bytes, 8);
  std::memcpy(block + 36, &s.data_start, 8);
  uint32_t crc = Crc32c(0, block, kCrcOffset);
  std::memcpy(block + kCrcOffset, &crc, 4);
}

// EINVAL: not cohfs at all; EIO: cohfs magic but a bad checksum.
Status DecodeDeviceSuper(const char* block, DeviceSuper* s) {
  if (std::memcmp(block, kMagic, 8) != 0) return Status::Error(EINVAL, "not a cohfs device");
  uint32_t crc;
  std::memcpy(&crc, block + kCrcOffset, 4);
  if (crc != Crc32c(0, block, kCrcOffset))
    return Status::Error(EIO, "superblock checksum mismatch");
  std::memcpy(&s->format_version, block + 8, 4);
  std::memcpy(s->uuid.data(), block + 12, 16);
  std::memcpy(&s->device_bytes, block + 28, 8);
  std::memcpy(&s->data_start, block + 36, 8);
  return Status::Ok();
}

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

Result<DeviceSuper> ReadDeviceSuper(BlockDevice& dev) {
  AlignedBuffer block(kBlockBytes);
  RETURN_IF_ERROR(dev.Read(0, block.data(), kBlockBytes));
  DeviceSuper s;
  RETURN_IF_ERROR(DecodeDeviceSuper(block.data(), &s));
  return s;
}

std::string ResolveMetaDir(const std::string& given, const std::string& device,
                           const DeviceSuper& s, const BlockDevice& dev) {
  return given.empty() ? DefaultMetaDir(device, s.uuid, dev.is_block_device()) : given;
}

// Empties a metadata directory for `format --force`, but only when it holds a
// RocksDB store (or nothing): a mistyped --meta must never wipe unrelated files.
Status RemoveStore(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(dir, ec)) return Status::Ok();
  bool is_store = fs::exists(fs::path(dir) / "CURRENT", ec);
  if (!is_store && !fs::is_empty(dir, ec)) {
    return Status::Error(ENOTEMPTY,
                         dir + " is not empty and holds no metadata store; not removing it");
  }
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    fs::remove_all(e.path(), ec);
    if (ec) return Status::Error(ec.value(), "remove " + e.path().string() + ": " + ec.message());
  }
  if (ec) return Status::Error(ec.value(), "list " + dir + ": " + ec.message());
  return Status::Ok();
}

}  // namespace

std::string UuidToString(const std::array<uint8_t, 16>& u) {
  char buf[40];
  std::snprintf(buf, sizeof(buf),
                "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1],
                u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14],
                u[15]);
  return buf;
}

std::string DefaultMetaDir(const std::string& device, const std::array<uint8_t, 16>& uuid,
                           bool is_block_device) {
  if (is_block_device) return "/var/lib/cohfs/" + UuidToString(uuid);
  return device + ".meta";
}

// In 1 GiB steps so that a large device shows progress.
static Status DiscardDataArea(BlockDevice& dev, const ProgressFn& progress) {
  constexpr uint64_t kStepBytes = 1ull << 30;
  uint64_t total = dev.size_bytes() - kDataStartBytes;
  for (uint64_t done = 0; done < total;) {
    uint64_t n = std::min(kStepBytes, total - done);
    Status st = dev.Discard(kDataStartBytes + done, n);
    if (st.errno_value() == EOPNOTSUPP) return Status::Ok();  // nothing to gain: go on
    RETURN_IF_ERROR(st);
    done += n;
    if (progress) progress(done, total);
  }
  return Status::Ok();
}

Status Volume::Format(const FormatOptions& options) {
  ASSIGN_OR_RETURN(std::unique_ptr<BlockDevice> dev, BlockDevice::Open(options.device, false));
  if (dev->size_bytes() < kMinDeviceBytes) {
    return Status::Error(EINVAL, "device is smaller than 16 MiB");
  }
  auto existing = ReadDeviceSuper(*dev);
  if (existing.ok() && !options.force) {
    return Status::Error(EEXIST, "device already holds a cohfs file system (uuid " +
                                     UuidToString(existing->uuid) + ")");
  }
  if (!existing.ok() && existing.errno_value() != EINVAL && !options.force) {
    // cohfs magic with a bad checksum (or an unreadable block 0): maybe a damaged
    // file system someone wants to recover. Only force overwrites it.
    return Status::Error(EEXIST, "block 0 looks like a damaged cohfs superblock (" +
                                     existing.status().ToString() + ")");
  }
  if (options.discard) RETURN_IF_ERROR(DiscardDataArea(*dev, options.progress));
  DeviceSuper s;
  s.format_version = kFormatVersion;
  if (getrandom(s.uuid.data(), s.uuid.size(), 0) != static_cast<ssize_t>(s.uuid.size())) {
    return Status::Error(errno, "getrandom");
  }
  s.uuid[6] = (s.uuid[6] & 0x0f) | 0x40;  // RFC 4122 version 4
  s.uuid[8] = (s.uuid[8] & 0x3f) | 0x80;
  s.device_bytes = dev->size_bytes();
  s.data_start = kDataStartBytes;

  std::string meta = ResolveMetaDir(options.meta_dir, options.device, s, *dev);
  if (options.force) {
    // The old store belongs to the file system being overwritten.
    if (existing.ok()) {
      RETURN_IF_ERROR(
          RemoveStore(ResolveMetaDir(options.meta_dir, options.device, *existing, *dev)));
    }
    RETURN_IF_ERROR(RemoveStore(meta));
  }
  std::error_code ec;
  std::filesystem::create_directories(meta, ec);
  if (ec) return Status::Error(ec.value(), "create " + meta + ": " + ec.message());

  ItemStoreOptions so;
  so.dir = meta;
  so.create = true;
  ASSIGN_OR_RETURN(std::unique_ptr<ItemStore> store, ItemStore::Open(so));
  auto txn = store->BeginTxn();
  SuperItem super;
  super.format_version = kFormatVersion;
  super.uuid = s.uuid;
  super.device_bytes = s.device_bytes;
  super.data_start = s.data_start;
  super.next_inode = kRootInode.value + 1;
  super.generation = 0;
  txn->Put(ItemKey{0, ItemType::kSuper, 0}, EncodeSuper(super));
  InodeItem root;
  root.mode = S_IFDIR | 0755;
  root.nlink = 2;
  root.parent = kRootInode.value;
  root.atime_ns = root.mtime_ns = root.ctime_ns = NowNs();
  txn->Put(ItemKey{kRootInode.value, ItemType::kInode, 0}, EncodeInode(root));
  Allocator::InitFree(*txn, DeviceRange{s.data_start, s.device_bytes - s.data_start});
  RETURN_IF_ERROR(store->Commit(*txn, /*sync=*/true));

  // The device superblock goes last: a device is cohfs only once its store exists.
  AlignedBuffer block(kBlockBytes);
  EncodeDeviceSuper(s, block.data());
  RETURN_IF_ERROR(dev->Write(0, block.data(), kBlockBytes, /*durable=*/true));
  return dev->Flush();
}

Result<std::unique_ptr<Volume>> Volume::Open(const VolumeOptions& options) {
  std::unique_ptr<Volume> v(new Volume());
  ASSIGN_OR_RETURN(v->device_, BlockDevice::Open(options.device, options.read_only));
  ASSIGN_OR_RETURN(DeviceSuper s, ReadDeviceSuper(*v->device_));
  if (s.format_version != kFormatVersion) {
    return Status::Error(EPROTO, "device has format version " + std::to_string(s.format_version) +
                                     ", this build reads " + std::to_string(kFormatVersion));
  }
  if (s.device_bytes > v->device_->size_bytes()) {
    return Status::Error(EINVAL, "device is smaller than when it was formatted");
  }
  if (s.data_start % kBlockBytes != 0 || s.data_start < kBlockBytes ||
      s.data_start >= s.device_bytes) {
    return Status::Error(EINVAL, "device superblock has a bad data start");
  }
  v->meta_dir_ = ResolveMetaDir(options.meta_dir, options.device, s, *v->device_);
  ItemStoreOptions so;
  so.dir = v->meta_dir_;
  so.read_only = options.read_only;
  ASSIGN_OR_RETURN(v->items_, ItemStore::Open(so));
  ASSIGN_OR_RETURN(std::optional<std::string> raw, v->items_->Get(ItemKey{0, ItemType::kSuper, 0}));
  if (!raw) return Status::Error(EIO, "metadata store has no SUPER item");
  RETURN_IF_ERROR(DecodeSuper(*raw, &v->super_));
  if (v->super_.format_version != kFormatVersion) {
    return Status::Error(
        EPROTO, "metadata store has format version " + std::to_string(v->super_.format_version));
  }
  if (v->super_.uuid != s.uuid) {
    return Status::Error(EINVAL, "metadata in " + v->meta_dir_ + " belongs to another device");
  }
  ASSIGN_OR_RETURN(Allocator a, Allocator::Load(*v->items_));
  v->allocator_ = std::make_unique<Allocator>(std::move(a));
  v->extents_ = std::make_unique<ExtentIo>(*v->device_, *v->allocator_);
  if (!options.read_only) {
    v->super_.generation++;
    auto txn = v->items_->BeginTxn();
    txn->Put(ItemKey{0, ItemType::kSuper, 0}, EncodeSuper(v->super_));
    RETURN_IF_ERROR(v->items_->Commit(*txn, /*sync=*/true));
  }
  return v;
}

}  // namespace cohfs
