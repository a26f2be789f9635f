// Fsck reads every item once into maps (offline: memory is proportional to
// the metadata), then checks names, inodes and space against each other.
// Problems are plain sentences naming inodes and device offsets; at most
// kMaxProblems are kept, then a count of the rest.
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
  uint64_t names = 0;         // DIR_INDEX entries naming it
  uint64_t subdirs = 0;       // for directories: child directories
  uint64_t entries = 0;       // for directories: DIR_INDEX entries in it
  uint64_t named_parent = 0;  // for directories: the directory whose entry names it
};

uint8_t DtOf(uint32_t mode) { return static_cast<uint8_t>((mode & S_IFMT) >> 12); }

struct Range {
  uint64_t offset = 0;
  uint64_t length = 0;
  std::string what;  // for problem reports
};

class Checker {
 public:
  Checker(Volume& v, bool verify, const ProgressFn& progress)
      : v_(v), verify_(verify), progress_(progress) {
    const SuperItem& s = v.super();
    uint64_t area = s.device_bytes > s.data_start ? s.device_bytes - s.data_start : 0;
    uint64_t free = v.allocator().free_bytes();
    allocated_bytes_ = area > free ? area - free : 0;
  }

  Result<FsckReport> Run() {
    RETURN_IF_ERROR(Scan());
    if (progress_ && verify_) progress_(verified_bytes_, verified_bytes_);  // every extent read
    CheckNames();
    CheckInodes();
    CheckRefs();
    CheckSpace();
    if (dropped_ > 0) {
      report_.problems.push_back("... and " + std::to_string(dropped_) + " more problems");
    }
    return std::move(report_);
  }

 private:
  template <typename... A>
  void Problem(A&&... parts) {
    std::string s;
    ((s += ToStr(parts)), ...);
    if (report_.problems.size() < kMaxProblems) {
      report_.problems.push_back(std::move(s));
    } else {
      dropped_++;
    }
  }
  static std::string ToStr(const std::string& s) { return s; }
  static std::string ToStr(const char* s) { return s; }
  template <typename T>
  static std::string ToStr(T v) {
    return std::to_string(v);
  }

  Status Scan() {
    auto it = v_.items().NewIterator();
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      ItemKey k;
      Status st = it->DecodedKey(&k);
      if (!st.ok()) {
        Problem("undecodable key ", Hex(it->raw_key()), ": ", st.ToString());
        continue;
      }
      st = CheckKeyShape(k);
      if (st.ok()) st = ScanItem(k, it->value());
      if (!st.ok()) {
        Problem("item (", k.objectid, ", ", TypeName(k.type), ", ", k.offset, "): ", st.ToString());
      }
    }
    RETURN_IF_ERROR(it->status());
    if (!have_super_) Problem("no SUPER item");
    return Status::Ok();
  }

  static std::string Hex(std::string_view b) {
    static const char kDigits[] = "0123456789abcdef";
    std::string s;
    for (char c : b) {
      s += kDigits[static_cast<uint8_t>(c) >> 4];
      s += kDigits[static_cast<uint8_t>(c) & 15];
    }
    return s;
  }

  static const char* TypeName(ItemType t) {
    switch (t) {
      case ItemType::kInode:
        return "INODE";
      case ItemType::kInline:
        return "INLINE";
      case ItemType::kSymlink:
        return "SYMLINK";
      case ItemType::kXattr:
        return "XATTR";
      case ItemType::kDirName:
        return "DIR_NAME";
      case ItemType::kDirIndex:
        return "DIR_INDEX";
      case ItemType::kExtent:
        return "EXTENT";
      case ItemType::kOrphan:
        return "ORPHAN";
      case ItemType::kFree:
        return "FREE";
      case ItemType::kSuper:
        return "SUPER";
      case ItemType::kSession:
        return "SESSION";
      case ItemType::kReplay:
        return "REPLAY";
      case ItemType::kInodeRef:
        return "INODE_REF";
    }
    return "?";
  }

  // Where each type may live: per-inode items never under objectid 0; the
  // global ones only there; single items of an inode at offset 0.
  static Status CheckKeyShape(const ItemKey& k) {
    bool global = k.type == ItemType::kOrphan || k.type == ItemType::kFree ||
                  k.type == ItemType::kSuper || k.type == ItemType::kSession ||
                  k.type == ItemType::kReplay;
    if (global != (k.objectid == 0)) return Status::Error(EIO, "item under the wrong objectid");
    bool single = k.type == ItemType::kInode || k.type == ItemType::kInline ||
                  k.type == ItemType::kSymlink || k.type == ItemType::kSuper;
    if (single && k.offset != 0) return Status::Error(EIO, "item at a nonzero offset");
    return Status::Ok();
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
          if (NameHash(name) != k.offset)
            Problem("xattr ", name, " of ", k.objectid, " under wrong hash");
        }
        return Status::Ok();
      }
      case ItemType::kDirName: {
        DirNameItem d;
        RETURN_IF_ERROR(DecodeDirName(val, &d));
        for (auto& [name, seq] : d.entries) {
          if (NameHash(name) != k.offset)
            Problem("DIR_NAME ", name, " in ", k.objectid, " under wrong hash");
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
        have_super_ = true;
        return DecodeSuper(val, &super_);
      case ItemType::kSession: {
        SessionItem session;
        return DecodeSession(val, &session);
      }
      case ItemType::kReplay: {
        ReplayItem replay;
        return DecodeReplay(val, &replay);
      }
      case ItemType::kInodeRef: {
        InodeRefItem ref;
        RETURN_IF_ERROR(DecodeInodeRef(val, &ref));
        refs_[{k.objectid, k.offset}].stored = ref.names;
        return Status::Ok();
      }
    }
    return Status::Error(EIO, "unknown item type");
  }

  void CheckNames() {
    for (auto& [key, d] : dir_index_) {
      auto [dir, seq] = key;
      auto di = inodes_.find(dir);
      if (di == inodes_.end() || !S_ISDIR(di->second.inode.mode)) {
        Problem("DIR_INDEX ", seq, " ('", d.name, "') in ", dir, ", which is not a directory");
        continue;
      }
      di->second.entries++;
      if (seq >= di->second.inode.next_dir_seq)
        Problem("DIR_INDEX ", seq, " in ", dir, " beyond next_dir_seq");
      auto n = dir_names_.find({dir, d.name});
      if (n == dir_names_.end() || n->second != seq) {
        Problem("entry '", d.name, "' in ", dir, " has no matching DIR_NAME");
      }
      auto ci = inodes_.find(d.child);
      if (ci == inodes_.end()) {
        Problem("entry '", d.name, "' in ", dir, " names missing inode ", d.child);
        continue;
      }
      if (DtOf(ci->second.inode.mode) != d.file_type)
        Problem("entry '", d.name, "' in ", dir, " has the wrong file type");
      ci->second.names++;
      if (S_ISDIR(ci->second.inode.mode)) {
        di->second.subdirs++;
        ci->second.named_parent = dir;
      } else {
        refs_[{d.child, dir}].counted++;
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
    auto root = inodes_.find(kRootInode.value);
    if (root == inodes_.end() || !S_ISDIR(root->second.inode.mode)) {
      Problem("no root directory (inode ", kRootInode.value, ")");
    }
    for (auto& [ino, f] : inodes_) {
      const InodeItem& i = f.inode;
      report_.inodes++;
      if (ino == 0) Problem("inode number 0");
      if (ino >= super_.next_inode) Problem("inode ", ino, " at or beyond SUPER.next_inode");
      bool orphan = orphans_.count(ino) > 0;
      if (S_ISDIR(i.mode)) {
        report_.directories++;
        uint64_t expect = i.nlink == 0 ? 0 : 2 + f.subdirs;
        if (i.nlink != expect)
          Problem("directory ", ino, " has nlink ", i.nlink, ", expected ", expect);
        if (i.size != f.entries) {
          Problem("directory ", ino, " has size ", i.size, " but ", f.entries, " entries");
        }
        if (i.nlink == 0 && f.names + f.subdirs > 0) {
          Problem("directory ", ino, " has nlink 0 but ", f.names, " names and ", f.subdirs,
                  " subdirectories");
        }
        if (ino == kRootInode.value) {
          if (i.parent != ino) Problem("root's parent is ", i.parent);
          if (f.names != 0) Problem("root is named by ", f.names, " directory entries");
        } else if (i.nlink > 0 && (f.names != 1 || f.named_parent != i.parent)) {
          Problem("directory ", ino, " has ", f.names, " names and parent ", i.parent,
                  " (named in ", f.named_parent, ")");
        }
      } else if (i.nlink != f.names) {
        Problem("inode ", ino, " has nlink ", i.nlink, " but ", f.names, " names");
      }
      if ((i.nlink == 0) != orphan)
        Problem("inode ", ino, " nlink ", i.nlink, (orphan ? " with" : " without"),
                " an ORPHAN item");
      uint64_t ext_bytes = 0;
      auto e = extents_.find(ino);
      if (e != extents_.end()) {
        if (!S_ISREG(i.mode)) Problem("non-file inode ", ino, " has extents");
        uint64_t end = 0;
        for (auto& [off, ex] : e->second) {
          if (off % kBlockBytes) Problem("extent of ", ino, " at unaligned file offset ", off);
          if (off < end) Problem("extents of ", ino, " overlap at file offset ", off);
          end = std::max(end, off + ex.length);
          ext_bytes += ex.length;
          CheckExtent(ino, off, ex);
        }
      }
      if (ext_bytes != i.allocated_bytes)
        Problem("inode ", ino, " allocated_bytes ", i.allocated_bytes, " but extents hold ",
                ext_bytes);
      auto in = inline_.find(ino);
      if (in != inline_.end()) {
        if (!S_ISREG(i.mode) || i.size > kInlineMaxBytes || e != extents_.end())
          Problem("inode ", ino, " has an invalid INLINE item");
        if (in->second > i.size) Problem("inline data of ", ino, " longer than its size");
      }
      if (S_ISLNK(i.mode) != (symlinks_.count(ino) > 0))
        Problem("inode ", ino, " symlink item mismatch");
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

  // INODE_REF (child, dir) holds exactly the number of dir's entries naming a
  // non-directory child; no other INODE_REF exists.
  void CheckRefs() {
    for (auto& [key, r] : refs_) {
      if (r.stored != r.counted) {
        Problem("inode ", key.first, " has INODE_REF ", r.stored, " for directory ", key.second,
                " but ", r.counted, " names there");
      }
    }
  }

  void CheckExtent(uint64_t ino, uint64_t off, const ExtentItem& ex) {
    report_.extents++;
    report_.data_bytes += ex.length;
    if (ex.device_offset % kBlockBytes || ex.length % kBlockBytes || ex.length == 0) {
      Problem("extent of ", ino, " at ", off, " is not block aligned");
      return;
    }
    if (ex.device_offset < super_.data_start || ex.length > super_.device_bytes ||
        ex.device_offset > super_.device_bytes - ex.length) {
      Problem("extent of ", ino, " at ", off, " lies outside the data area");
      return;
    }
    used_.push_back(
        {ex.device_offset, ex.length,
         "extent of inode " + std::to_string(ino) + " at file offset " + std::to_string(off)});
    if (!(ex.flags & ExtentItem::kUnwritten) && ex.crcs.size() != ex.length / kBlockBytes) {
      Problem("extent of ", ino, " at ", off, " has ", ex.crcs.size(), " checksums");
      return;
    }
    if (verify_) {
      Status st = v_.extents().Verify(ex);
      if (!st.ok()) Problem("extent of inode ", ino, " at file offset ", off, ": ", st.ToString());
      verified_bytes_ += ex.length;
      if (progress_) progress_(verified_bytes_, std::max(allocated_bytes_, verified_bytes_));
    }
  }

  // Used and free ranges, sorted by device offset, must tile the data area.
  void CheckSpace() {
    std::vector<Range> all = used_;
    for (auto& [o, l] : free_) {
      report_.free_bytes += l;
      if (o % kBlockBytes || l % kBlockBytes || l == 0) {
        Problem("FREE range at ", o, " (", l, " bytes) is not block aligned");
        continue;
      }
      if (o < super_.data_start || l > super_.device_bytes || o > super_.device_bytes - l) {
        Problem("FREE range at ", o, " (", l, " bytes) lies outside the data area");
      }
      all.push_back({o, l, "FREE range at " + std::to_string(o)});
    }
    std::sort(all.begin(), all.end(),
              [](const Range& a, const Range& b) { return a.offset < b.offset; });
    uint64_t pos = super_.data_start;
    const Range* last = nullptr;
    for (const Range& r : all) {
      if (r.offset < pos && last != nullptr) {
        Problem(r.what, " overlaps ", last->what, " at device offset ", r.offset);
      }
      if (r.offset > pos) {
        Problem("device range [", pos, ", ", r.offset, ") is neither used nor free (leaked)");
      }
      if (r.offset + r.length > pos) {
        pos = r.offset + r.length;
        last = &r;
      }
    }
    if (pos < super_.device_bytes) {
      Problem("device range [", pos, ", ", super_.device_bytes,
              ") is neither used nor free (leaked)");
    }
    if (pos > super_.device_bytes) Problem("space accounted beyond the device end");
  }

  Volume& v_;
  bool verify_;
  const ProgressFn& progress_;
  uint64_t allocated_bytes_ = 0;  // the data area less free space: what checksums cover
  uint64_t verified_bytes_ = 0;
  bool have_super_ = false;
  static constexpr size_t kMaxProblems = 1000;
  FsckReport report_;
  uint64_t dropped_ = 0;
  SuperItem super_;
  std::map<uint64_t, InodeFacts> inodes_;
  std::map<std::pair<uint64_t, uint64_t>, DirIndexItem> dir_index_;
  std::map<std::pair<uint64_t, std::string>, uint64_t> dir_names_;
  std::unordered_map<uint64_t, std::map<uint64_t, ExtentItem>> extents_;
  std::unordered_map<uint64_t, size_t> inline_;
  std::set<uint64_t> symlinks_, other_items_, orphans_;
  std::map<uint64_t, uint64_t> free_;
  struct RefCount {
    uint64_t stored = 0;   // the INODE_REF item's count (0: none)
    uint64_t counted = 0;  // DIR_INDEX entries of that directory naming the inode
  };
  std::map<std::pair<uint64_t, uint64_t>, RefCount> refs_;  // (child, dir)
  std::vector<Range> used_;
};

}  // namespace

Result<FsckReport> Fsck(Volume& volume, bool verify_checksums, const ProgressFn& progress) {
  Checker c(volume, verify_checksums, progress);
  return c.Run();
}

}  // namespace cohfs
