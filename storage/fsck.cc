#include "storage/fsck.h"

#include <sys/stat.h>

#include <algorithm>
#include <map>
#include <set>
#include <unordered_map>

#include "common/fs_types.h"
#include "common/limits.h"

namespace cohfs {
namespace {

struct InodeFacts {
  InodeItem inode;
  uint64_t names = 0;    // DIR_INDEX entries naming it
  uint64_t subdirs = 0;  // for directories: child directories
  uint64_t named_parent = 0;
  uint64_t extent_bytes = 0;
  bool has_inline = false;
  bool has_symlink = false;
  bool orphan = false;
};

uint8_t DtOf(uint32_t mode) { return static_cast<uint8_t>((mode & S_IFMT) >> 12); }

class Checker {
 public:
  Checker(Volume& v, bool verify) : v_(v), verify_(verify) {}

  Result<FsckReport> Run() {
    RETURN_IF_ERROR(Scan());
    CheckNames();
    CheckInodes();
    CheckSpace();
    return std::move(report_);
  }

 private:
  template <typename... A>
  void Problem(A&&... parts) {
    std::string s;
    ((s += ToStr(parts)), ...);
    if (report_.problems.size() < 1000) report_.problems.push_back(std::move(s));
  }
  static std::string ToStr(const std::string& s) { return s; }
  static std::string ToStr(const char* s) { return s; }
  template <typename T>
  static std::string ToStr(T v) {
    return std::to_string(v);
  }

  Status Scan() {
    auto it = v_.items().NewIterator();
    it->Seek(ItemKey{0, ItemType::kInode, 0});
    for (; it->Valid(); it->Next()) {
      ItemKey k = it->key();
      std::string_view val = it->value();
      Status st = ScanItem(k, val);
      if (!st.ok()) {
        Problem("item (", k.objectid, ", ", int(k.type), ", ", k.offset, "): ", st.ToString());
      }
    }
    return it->status();
  }

  Status ScanItem(const ItemKey& k, std::string_view val) {
    switch (k.type) {
      case ItemType::kInode: {
        InodeItem i;
        RETURN_IF_ERROR(DecodeInode(val, &i));
        inodes_[k.objectid].inode = i;
        return Status::Ok();
      }
      case ItemType::kInline:
        inline_[k.objectid] = val.size();
        return Status::Ok();
      case ItemType::kSymlink:
        symlinks_.insert(k.objectid);
        return Status::Ok();
      case ItemType::kXattr: {
        XattrItem x;
        RETURN_IF_ERROR(DecodeXattr(val, &x));
        other_items_.insert(k.objectid);
        for (auto& [name, value] : x.entries) {
          if (NameHash(name) != k.offset) Problem("xattr ", name, " of ", k.objectid, " under wrong hash");
        }
        return Status::Ok();
      }
      case ItemType::kDirName: {
        DirNameItem d;
        RETURN_IF_ERROR(DecodeDirName(val, &d));
        for (auto& [name, seq] : d.entries) {
          if (NameHash(name) != k.offset) Problem("DIR_NAME ", name, " in ", k.objectid, " under wrong hash");
          dir_names_[{k.objectid, name}] = seq;
        }
        return Status::Ok();
      }
      case ItemType::kDirIndex: {
        DirIndexItem d;
        RETURN_IF_ERROR(DecodeDirIndex(val, &d));
        dir_index_[{k.objectid, k.offset}] = d;
        return Status::Ok();
      }
      case ItemType::kExtent: {
        ExtentItem e;
        RETURN_IF_ERROR(DecodeExtent(val, &e));
        extents_[k.objectid][k.offset] = e;
        return Status::Ok();
      }
      case ItemType::kOrphan:
        orphans_.insert(k.offset);
        return Status::Ok();
      case ItemType::kFree: {
        FreeItem f;
        RETURN_IF_ERROR(DecodeFree(val, &f));
        free_[k.offset] = f.length;
        return Status::Ok();
      }
      case ItemType::kSuper:
        return DecodeSuper(val, &super_);
    }
    return Status::Error(EIO, "unknown item type");
  }

  void CheckNames() {
    for (auto& [key, d] : dir_index_) {
      auto [dir, seq] = key;
      auto di = inodes_.find(dir);
      if (di == inodes_.end() || !S_ISDIR(di->second.inode.mode)) {
        Problem("DIR_INDEX ", seq, " in ", dir, " whose directory is missing");
        continue;
      }
      if (seq >= di->second.inode.next_dir_seq) Problem("DIR_INDEX ", seq, " in ", dir, " beyond next_dir_seq");
      auto n = dir_names_.find({dir, d.name});
      if (n == dir_names_.end() || n->second != seq) {
        Problem("entry '", d.name, "' in ", dir, " has no matching DIR_NAME");
      }
      auto ci = inodes_.find(d.child);
      if (ci == inodes_.end()) {
        Problem("entry '", d.name, "' in ", dir, " names missing inode ", d.child);
        continue;
      }
      if (DtOf(ci->second.inode.mode) != d.file_type) Problem("entry '", d.name, "' in ", dir, " has the wrong file type");
      ci->second.names++;
      if (S_ISDIR(ci->second.inode.mode)) {
        di->second.subdirs++;
        ci->second.named_parent = dir;
      }
    }
    for (auto& [key, seq] : dir_names_) {
      auto idx = dir_index_.find({key.first, seq});
      if (idx == dir_index_.end() || idx->second.name != key.second) {
        Problem("DIR_NAME '", key.second, "' in ", key.first, " has no matching DIR_INDEX");
      }
    }
  }

  void CheckInodes() {
    for (auto& [ino, f] : inodes_) {
      const InodeItem& i = f.inode;
      report_.inodes++;
      if (ino >= super_.next_inode) Problem("inode ", ino, " at or beyond SUPER.next_inode");
      bool orphan = orphans_.count(ino) > 0;
      if (S_ISDIR(i.mode)) {
        report_.directories++;
        uint64_t expect = i.nlink == 0 ? 0 : 2 + f.subdirs;
        if (i.nlink != expect) Problem("directory ", ino, " has nlink ", i.nlink, ", expected ", expect);
        if (ino == kRootInode.value) {
          if (i.parent != ino) Problem("root's parent is ", i.parent);
        } else if (i.nlink > 0 && (f.names != 1 || f.named_parent != i.parent)) {
          Problem("directory ", ino, " has ", f.names, " names and parent ", i.parent, " (named in ", f.named_parent, ")");
        }
      } else if (i.nlink != f.names) {
        Problem("inode ", ino, " has nlink ", i.nlink, " but ", f.names, " names");
      }
      if ((i.nlink == 0) != orphan) Problem("inode ", ino, " nlink ", i.nlink, (orphan ? " with" : " without"), " an ORPHAN item");
      uint64_t ext_bytes = 0;
      auto e = extents_.find(ino);
      if (e != extents_.end()) {
        if (!S_ISREG(i.mode)) Problem("non-file inode ", ino, " has extents");
        uint64_t end = 0;
        for (auto& [off, ex] : e->second) {
          if (off % kBlockBytes) Problem("extent of ", ino, " at unaligned file offset ", off);
          if (off < end) Problem("extents of ", ino, " overlap at file offset ", off);
          end = off + ex.length;
          ext_bytes += ex.length;
          CheckExtent(ino, off, ex);
        }
      }
      if (ext_bytes != i.allocated_bytes) Problem("inode ", ino, " allocated_bytes ", i.allocated_bytes, " but extents hold ", ext_bytes);
      auto in = inline_.find(ino);
      if (in != inline_.end()) {
        if (!S_ISREG(i.mode) || i.size > kInlineMaxBytes || e != extents_.end()) Problem("inode ", ino, " has an invalid INLINE item");
        if (in->second > i.size) Problem("inline data of ", ino, " longer than its size");
      }
      if (S_ISLNK(i.mode) != (symlinks_.count(ino) > 0)) Problem("inode ", ino, " symlink item mismatch");
      if (other_items_.count(ino) && !(i.flags & kInodeHasXattrs)) {
        Problem("inode ", ino, " has xattrs but not the has-xattrs flag");
      }
    }
    auto missing = [&](uint64_t ino, const char* what) {
      if (!inodes_.count(ino)) Problem(what, " item of missing inode ", ino);
    };
    for (auto& [ino, n] : inline_) missing(ino, "INLINE");
    for (uint64_t ino : symlinks_) missing(ino, "SYMLINK");
    for (uint64_t ino : other_items_) missing(ino, "XATTR");
    for (auto& [ino, m] : extents_) missing(ino, "EXTENT");
    for (uint64_t ino : orphans_) missing(ino, "ORPHAN");
  }

  void CheckExtent(uint64_t ino, uint64_t off, const ExtentItem& ex) {
    report_.extents++;
    report_.data_bytes += ex.length;
    if (ex.device_offset % kBlockBytes || ex.length % kBlockBytes || ex.length == 0) {
      Problem("extent of ", ino, " at ", off, " is not block aligned");
      return;
    }
    if (ex.device_offset < super_.data_start || ex.device_offset + ex.length > super_.device_bytes) {
      Problem("extent of ", ino, " at ", off, " lies outside the data area");
    }
    used_.emplace_back(ex.device_offset, ex.length);
    if (!(ex.flags & ExtentItem::kUnwritten) && ex.crcs.size() != ex.length / kBlockBytes) {
      Problem("extent of ", ino, " at ", off, " has ", ex.crcs.size(), " checksums");
      return;
    }
    if (verify_) {
      Status st = v_.extents().Verify(ex);
      if (!st.ok()) Problem("extent of inode ", ino, " at file offset ", off, ": ", st.ToString());
    }
  }

  void CheckSpace() {
    std::vector<std::pair<uint64_t, uint64_t>> all = used_;
    for (auto& [o, l] : free_) {
      all.emplace_back(o, l);
      report_.free_bytes += l;
    }
    std::sort(all.begin(), all.end());
    uint64_t pos = super_.data_start;
    for (auto& [o, l] : all) {
      if (o < pos) Problem("device range at ", o, " is used twice (overlap)");
      if (o > pos) Problem("device range [", pos, ", ", o, ") is neither used nor free (leaked)");
      pos = std::max(pos, o + l);
    }
    if (pos < super_.device_bytes) Problem("device range [", pos, ", ", super_.device_bytes, ") is neither used nor free (leaked)");
    if (pos > super_.device_bytes) Problem("space accounted beyond the device end");
  }

  Volume& v_;
  bool verify_;
  FsckReport report_;
  SuperItem super_;
  std::map<uint64_t, InodeFacts> inodes_;
  std::map<std::pair<uint64_t, uint64_t>, DirIndexItem> dir_index_;
  std::map<std::pair<uint64_t, std::string>, uint64_t> dir_names_;
  std::unordered_map<uint64_t, std::map<uint64_t, ExtentItem>> extents_;
  std::unordered_map<uint64_t, size_t> inline_;
  std::set<uint64_t> symlinks_, other_items_, orphans_;
  std::map<uint64_t, uint64_t> free_;
  std::vector<std::pair<uint64_t, uint64_t>> used_;
};

}  // namespace

Result<FsckReport> Fsck(Volume& volume, bool verify_checksums) {
  Checker c(volume, verify_checksums);
  return c.Run();
}

}  // namespace cohfs
