#include "storage/items.h"

#include <cstring>

namespace cohfs {
namespace {

constexpr uint8_t kVersion = 1;

class Writer {
 public:
  Writer() { out_.push_back(static_cast<char>(kVersion)); }
  template <typename T>
  void Int(T v) {
    for (size_t i = 0; i < sizeof(T); i++) {
      out_.push_back(static_cast<char>(static_cast<uint64_t>(v) >> (8 * i)));
    }
  }
  void Bytes(std::string_view s) {
    Int<uint32_t>(static_cast<uint32_t>(s.size()));
    out_.append(s);
  }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

class Reader {
 public:
  explicit Reader(std::string_view b) : b_(b) {
    if (b_.empty() || static_cast<uint8_t>(b_[0]) != kVersion) ok_ = false;
    pos_ = 1;
  }
  template <typename T>
  T Int() {
    if (!ok_ || b_.size() - pos_ < sizeof(T)) {
      ok_ = false;
      return 0;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < sizeof(T); i++) v |= uint64_t(uint8_t(b_[pos_ + i])) << (8 * i);
    pos_ += sizeof(T);
    return static_cast<T>(v);
  }
  std::string Bytes() {
    uint32_t n = Int<uint32_t>();
    if (!ok_ || b_.size() - pos_ < n) {
      ok_ = false;
      return {};
    }
    std::string s(b_.substr(pos_, n));
    pos_ += n;
    return s;
  }
  // Bounds a claimed element count by the bytes left (each element >= min_bytes).
  bool CountFits(uint64_t n, size_t min_bytes) {
    if (!ok_ || n > (b_.size() - pos_) / min_bytes) ok_ = false;
    return ok_;
  }
  Status Finish(const char* what) const {
    if (!ok_ || pos_ != b_.size()) return Status::Error(EIO, std::string("malformed ") + what);
    return Status::Ok();
  }

 private:
  std::string_view b_;
  size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace

std::string EncodeInode(const InodeItem& v) {
  Writer w;
  w.Int(v.mode);
  w.Int(v.uid);
  w.Int(v.gid);
  w.Int(v.nlink);
  w.Int(v.size);
  w.Int(v.allocated_bytes);
  w.Int(v.atime_ns);
  w.Int(v.mtime_ns);
  w.Int(v.ctime_ns);
  w.Int(v.generation);
  w.Int(v.flags);
  w.Int(v.rdev);
  w.Int(v.parent);
  w.Int(v.next_dir_seq);
  return w.Take();
}

Status DecodeInode(std::string_view b, InodeItem* v) {
  Reader r(b);
  v->mode = r.Int<uint32_t>();
  v->uid = r.Int<uint32_t>();
  v->gid = r.Int<uint32_t>();
  v->nlink = r.Int<uint32_t>();
  v->size = r.Int<uint64_t>();
  v->allocated_bytes = r.Int<uint64_t>();
  v->atime_ns = r.Int<int64_t>();
  v->mtime_ns = r.Int<int64_t>();
  v->ctime_ns = r.Int<int64_t>();
  v->generation = r.Int<uint64_t>();
  v->flags = r.Int<uint32_t>();
  v->rdev = r.Int<uint64_t>();
  v->parent = r.Int<uint64_t>();
  v->next_dir_seq = r.Int<uint64_t>();
  return r.Finish("INODE");
}

std::string EncodeDirIndex(const DirIndexItem& v) {
  Writer w;
  w.Bytes(v.name);
  w.Int(v.child);
  w.Int(v.file_type);
  return w.Take();
}

Status DecodeDirIndex(std::string_view b, DirIndexItem* v) {
  Reader r(b);
  v->name = r.Bytes();
  v->child = r.Int<uint64_t>();
  v->file_type = r.Int<uint8_t>();
  return r.Finish("DIR_INDEX");
}

std::string EncodeDirName(const DirNameItem& v) {
  Writer w;
  w.Int<uint32_t>(static_cast<uint32_t>(v.entries.size()));
  for (auto& [name, seq] : v.entries) {
    w.Bytes(name);
    w.Int(seq);
  }
  return w.Take();
}

Status DecodeDirName(std::string_view b, DirNameItem* v) {
  Reader r(b);
  uint32_t n = r.Int<uint32_t>();
  v->entries.clear();
  if (r.CountFits(n, 12)) {
    for (uint32_t i = 0; i < n; i++) {
      std::string name = r.Bytes();
      uint64_t seq = r.Int<uint64_t>();
      v->entries.emplace_back(std::move(name), seq);
    }
  }
  return r.Finish("DIR_NAME");
}

std::string EncodeExtent(const ExtentItem& v) {
  Writer w;
  w.Int(v.device_offset);
  w.Int(v.length);
  w.Int(v.flags);
  w.Int<uint32_t>(static_cast<uint32_t>(v.crcs.size()));
  for (uint32_t c : v.crcs) w.Int(c);
  return w.Take();
}

Status DecodeExtent(std::string_view b, ExtentItem* v) {
  Reader r(b);
  v->device_offset = r.Int<uint64_t>();
  v->length = r.Int<uint64_t>();
  v->flags = r.Int<uint32_t>();
  uint32_t n = r.Int<uint32_t>();
  v->crcs.clear();
  if (r.CountFits(n, 4)) {
    v->crcs.resize(n);
    for (uint32_t i = 0; i < n; i++) v->crcs[i] = r.Int<uint32_t>();
  }
  return r.Finish("EXTENT");
}

std::string EncodeXattr(const XattrItem& v) {
  Writer w;
  w.Int<uint32_t>(static_cast<uint32_t>(v.entries.size()));
  for (auto& [name, value] : v.entries) {
    w.Bytes(name);
    w.Bytes(value);
  }
  return w.Take();
}

Status DecodeXattr(std::string_view b, XattrItem* v) {
  Reader r(b);
  uint32_t n = r.Int<uint32_t>();
  v->entries.clear();
  if (r.CountFits(n, 8)) {
    for (uint32_t i = 0; i < n; i++) {
      std::string name = r.Bytes();
      std::string value = r.Bytes();
      v->entries.emplace_back(std::move(name), std::move(value));
    }
  }
  return r.Finish("XATTR");
}

namespace {

// Items whose value is one integer after the version byte.
template <typename T>
std::string EncodeOneInt(T v) {
  Writer w;
  w.Int(v);
  return w.Take();
}

template <typename T>
Status DecodeOneInt(std::string_view b, T* v, const char* what) {
  Reader r(b);
  *v = r.Int<T>();
  return r.Finish(what);
}

}  // namespace

std::string EncodeFree(const FreeItem& v) { return EncodeOneInt(v.length); }
Status DecodeFree(std::string_view b, FreeItem* v) { return DecodeOneInt(b, &v->length, "FREE"); }
std::string EncodeInodeRef(const InodeRefItem& v) { return EncodeOneInt(v.names); }
Status DecodeInodeRef(std::string_view b, InodeRefItem* v) {
  return DecodeOneInt(b, &v->names, "INODE_REF");
}

std::string EncodeSession(const SessionItem& v) {
  Writer w;
  w.Int(v.key);
  w.Bytes(v.client_name);
  w.Int<uint32_t>(static_cast<uint32_t>(v.inode_ranges.size()));
  for (auto& [first, count] : v.inode_ranges) {
    w.Int(first);
    w.Int(count);
  }
  return w.Take();
}

Status DecodeSession(std::string_view b, SessionItem* v) {
  Reader r(b);
  v->key = r.Int<uint64_t>();
  v->client_name = r.Bytes();
  uint32_t n = r.Int<uint32_t>();
  v->inode_ranges.clear();
  if (r.CountFits(n, 16)) {
    for (uint32_t i = 0; i < n; i++) {
      uint64_t first = r.Int<uint64_t>();
      v->inode_ranges.emplace_back(first, r.Int<uint64_t>());
    }
  }
  return r.Finish("SESSION");
}

std::string EncodeReplay(const ReplayItem& v) {
  Writer w;
  w.Int<uint8_t>(v.complete ? 1 : 0);
  w.Int(v.progress);
  w.Bytes(v.reply);
  return w.Take();
}

Status DecodeReplay(std::string_view b, ReplayItem* v) {
  Reader r(b);
  uint8_t complete = r.Int<uint8_t>();
  v->complete = complete == 1;
  v->progress = r.Int<uint32_t>();
  v->reply = r.Bytes();
  if (complete > 1) return Status::Error(EIO, "bad REPLAY item");
  return r.Finish("REPLAY");
}

std::string EncodeSuper(const SuperItem& v) {
  Writer w;
  w.Int(v.format_version);
  w.Bytes(std::string_view(reinterpret_cast<const char*>(v.uuid.data()), v.uuid.size()));
  w.Int(v.device_bytes);
  w.Int(v.data_start);
  w.Int(v.next_inode);
  w.Int(v.generation);
  return w.Take();
}

Status DecodeSuper(std::string_view b, SuperItem* v) {
  Reader r(b);
  v->format_version = r.Int<uint32_t>();
  std::string uuid = r.Bytes();
  v->device_bytes = r.Int<uint64_t>();
  v->data_start = r.Int<uint64_t>();
  v->next_inode = r.Int<uint64_t>();
  v->generation = r.Int<uint64_t>();
  RETURN_IF_ERROR(r.Finish("SUPER"));
  if (uuid.size() != v->uuid.size()) return Status::Error(EIO, "malformed SUPER uuid");
  std::memcpy(v->uuid.data(), uuid.data(), uuid.size());
  return Status::Ok();
}

}  // namespace cohfs
