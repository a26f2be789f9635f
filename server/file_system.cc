#include "server/file_system.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>

#include "common/limits.h"
#include "common/log.h"

namespace cohfs {
namespace {

constexpr uint32_t kMaxLinks = 65000;
constexpr int kMayRead = 4, kMayWrite = 2, kMayExec = 1;
constexpr int64_t kRelatimeNs = 24LL * 3600 * 1000000000;

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

uint64_t RoundUp(uint64_t v) { return (v + kBlockBytes - 1) / kBlockBytes * kBlockBytes; }
uint64_t RoundDown(uint64_t v) { return v / kBlockBytes * kBlockBytes; }
uint8_t DtOf(uint32_t mode) { return static_cast<uint8_t>((mode & S_IFMT) >> 12); }

ItemKey InodeKey(InodeId ino) { return ItemKey{ino.value, ItemType::kInode, 0}; }
ItemKey OrphanKey(InodeId ino) { return ItemKey{0, ItemType::kOrphan, ino.value}; }

bool InGroup(const Caller& c, uint32_t gid) {
  return c.gid == gid || std::find(c.groups.begin(), c.groups.end(), gid) != c.groups.end();
}

Status Permission(const Caller& c, const InodeItem& i, int mask) {
  if (c.uid == 0) {
    if ((mask & kMayExec) && !S_ISDIR(i.mode) && !(i.mode & 0111)) return Status::Error(EACCES);
    return Status::Ok();
  }
  uint32_t bits = c.uid == i.uid ? (i.mode >> 6) & 7 : InGroup(c, i.gid) ? (i.mode >> 3) & 7 : i.mode & 7;
  if ((bits & static_cast<uint32_t>(mask)) != static_cast<uint32_t>(mask)) {
    return Status::Error(EACCES);
  }
  return Status::Ok();
}

// Sticky directories: only the owner of the entry or of the directory (or root) may remove it.
Status StickyCheck(const Caller& c, const InodeItem& dir, const InodeItem& child) {
  if ((dir.mode & S_ISVTX) && c.uid != 0 && c.uid != dir.uid && c.uid != child.uid) {
    return Status::Error(EPERM);
  }
  return Status::Ok();
}

Status CheckNameLength(std::string_view name) {
  if (name.empty()) return Status::Error(ENOENT);
  if (name.size() > kMaxNameBytes) return Status::Error(ENAMETOOLONG);
  return Status::Ok();
}

Attr ToAttr(InodeId ino, const InodeItem& i) {
  Attr a;
  a.ino = ino;
  a.generation = i.generation;
  a.mode = i.mode;
  a.nlink = i.nlink;
  a.uid = i.uid;
  a.gid = i.gid;
  a.rdev = i.rdev;
  a.size = i.size;
  a.blocks = i.allocated_bytes / 512;
  if (S_ISREG(i.mode) && i.allocated_bytes == 0 && i.size <= kInlineMaxBytes) {
    a.blocks = (i.size + 511) / 512;  // inline data occupies space too
  }
  a.atime_ns = i.atime_ns;
  a.mtime_ns = i.mtime_ns;
  a.ctime_ns = i.ctime_ns;
  a.flags = i.flags;
  return a;
}

void KillPrivileges(const Caller& c, InodeItem& i) {
  if (c.uid == 0) return;
  i.mode &= ~S_ISUID;
  if ((i.mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP)) i.mode &= ~S_ISGID;
}

}  // namespace

// One transaction with a cache of the inodes it touched: aliases (the same
// directory as source and target of a rename) share one copy, and every
// modified inode is written back once at Commit.
class FileSystem::Tx {
 public:
  explicit Tx(Volume& v) : v_(v), txn_(v.items().BeginTxn()) {}
  Txn& txn() { return *txn_; }

  Result<InodeItem*> Inode(InodeId ino) {
    auto it = inodes_.find(ino.value);
    if (it != inodes_.end()) return &it->second;
    ASSIGN_OR_RETURN(std::optional<std::string> raw, txn_->Get(InodeKey(ino)));
    if (!raw) return Status::Error(ENOENT);
    InodeItem item;
    RETURN_IF_ERROR(DecodeInode(*raw, &item));
    return &inodes_.emplace(ino.value, item).first->second;
  }
  Result<InodeItem*> Dir(InodeId ino) {
    ASSIGN_OR_RETURN(InodeItem * d, Inode(ino));
    if (!S_ISDIR(d->mode)) return Status::Error(ENOTDIR);
    return d;
  }
  InodeItem* NewInode(InodeId ino, const InodeItem& item) {
    return &(inodes_[ino.value] = item);
  }

  // (sequence, child) of `name` in `dir`, if present.
  Result<std::optional<std::pair<uint64_t, InodeId>>> Find(InodeId dir, std::string_view name) {
    using Found = std::optional<std::pair<uint64_t, InodeId>>;
    ASSIGN_OR_RETURN(std::optional<std::string> raw,
                     txn_->Get(ItemKey{dir.value, ItemType::kDirName, NameHash(name)}));
    if (!raw) return Found();
    DirNameItem names;
    RETURN_IF_ERROR(DecodeDirName(*raw, &names));
    for (auto& [n, seq] : names.entries) {
      if (n != name) continue;
      ASSIGN_OR_RETURN(std::optional<std::string> idx,
                       txn_->Get(ItemKey{dir.value, ItemType::kDirIndex, seq}));
      if (!idx) return Status::Error(EIO, "DIR_NAME without DIR_INDEX");
      DirIndexItem d;
      RETURN_IF_ERROR(DecodeDirIndex(*idx, &d));
      return Found(std::make_pair(seq, InodeId(d.child)));
    }
    return Found();
  }

  Status AddName(InodeId dir, std::string_view name, InodeId child, uint32_t child_mode) {
    ASSIGN_OR_RETURN(InodeItem * d, Inode(dir));
    uint64_t seq = d->next_dir_seq++;
    ItemKey nk{dir.value, ItemType::kDirName, NameHash(name)};
    ASSIGN_OR_RETURN(std::optional<std::string> raw, txn_->Get(nk));
    DirNameItem names;
    if (raw) RETURN_IF_ERROR(DecodeDirName(*raw, &names));
    names.entries.emplace_back(std::string(name), seq);
    txn_->Put(nk, EncodeDirName(names));
    DirIndexItem idx{std::string(name), child.value, DtOf(child_mode)};
    txn_->Put(ItemKey{dir.value, ItemType::kDirIndex, seq}, EncodeDirIndex(idx));
    return Status::Ok();
  }

  Status RemoveName(InodeId dir, std::string_view name, uint64_t seq) {
    ItemKey nk{dir.value, ItemType::kDirName, NameHash(name)};
    ASSIGN_OR_RETURN(std::optional<std::string> raw, txn_->Get(nk));
    if (!raw) return Status::Error(EIO, "missing DIR_NAME");
    DirNameItem names;
    RETURN_IF_ERROR(DecodeDirName(*raw, &names));
    std::erase_if(names.entries, [&](auto& e) { return e.first == name; });
    if (names.entries.empty()) {
      txn_->Delete(nk);
    } else {
      txn_->Put(nk, EncodeDirName(names));
    }
    txn_->Delete(ItemKey{dir.value, ItemType::kDirIndex, seq});
    return Status::Ok();
  }

  Result<bool> DirEmpty(InodeId dir) {
    auto it = txn_->NewIterator();
    it->Seek(ItemKey{dir.value, ItemType::kDirIndex, 0});
    if (!it->Valid()) return it->status().ok() ? Result<bool>(true) : Result<bool>(it->status());
    ItemKey k = it->key();
    return !(k.objectid == dir.value && k.type == ItemType::kDirIndex);
  }

  // Drops one link; an inode left with none becomes an orphan.
  void DropLink(InodeId ino, InodeItem& i, int64_t now) {
    if (S_ISDIR(i.mode)) {
      i.nlink = 0;
    } else if (i.nlink > 0) {
      i.nlink--;
    }
    i.ctime_ns = now;
    if (i.nlink == 0) txn_->Put(OrphanKey(ino), "");
  }

  // Extent items of `ino` that overlap [start, end), in file order.
  Result<std::vector<std::pair<uint64_t, ExtentItem>>> Extents(InodeId ino, uint64_t start,
                                                               uint64_t end) {
    std::vector<std::pair<uint64_t, ExtentItem>> out;
    auto it = txn_->NewIterator();
    uint64_t from = start > kMaxExtentBytes ? start - kMaxExtentBytes : 0;
    for (it->Seek(ItemKey{ino.value, ItemType::kExtent, from}); it->Valid(); it->Next()) {
      ItemKey k = it->key();
      if (k.objectid != ino.value || k.type != ItemType::kExtent || k.offset >= end) break;
      ExtentItem e;
      RETURN_IF_ERROR(DecodeExtent(it->value(), &e));
      if (k.offset + e.length > start) out.emplace_back(k.offset, std::move(e));
    }
    RETURN_IF_ERROR(it->status());
    return out;
  }

  Status Commit() {
    for (auto& [ino, item] : inodes_) txn_->Put(InodeKey(InodeId(ino)), EncodeInode(item));
    return v_.items().Commit(*txn_, /*sync=*/false);
  }

 private:
  Volume& v_;
  std::unique_ptr<Txn> txn_;
  std::map<uint64_t, InodeItem> inodes_;
};

FileSystem::FileSystem(Volume& volume) : volume_(volume) {}

// ---------------------------------------------------------------- reads

Result<Attr> FileSystem::Lookup(const Caller& c, InodeId parent, std::string_view name) {
  RETURN_IF_ERROR(CheckNameLength(name));
  Tx tx(volume_);
  ASSIGN_OR_RETURN(InodeItem * dir, tx.Dir(parent));
  RETURN_IF_ERROR(Permission(c, *dir, kMayExec));
  if (name == "..") return GetAttr(InodeId(dir->parent));
  ASSIGN_OR_RETURN(auto found, tx.Find(parent, name));
  if (!found) return Status::Error(ENOENT);
  ASSIGN_OR_RETURN(InodeItem * child, tx.Inode(found->second));
  return ToAttr(found->second, *child);
}

Result<Attr> FileSystem::GetAttr(InodeId ino) {
  Tx tx(volume_);
  ASSIGN_OR_RETURN(InodeItem * i, tx.Inode(ino));
  return ToAttr(ino, *i);
}

Result<std::string> FileSystem::ReadLink(InodeId ino) {
  Tx tx(volume_);
  ASSIGN_OR_RETURN(InodeItem * i, tx.Inode(ino));
  if (!S_ISLNK(i->mode)) return Status::Error(EINVAL);
  ASSIGN_OR_RETURN(std::optional<std::string> target,
                   tx.txn().Get(ItemKey{ino.value, ItemType::kSymlink, 0}));
  if (!target) return Status::Error(EIO, "symlink without target");
  return *target;
}

Result<std::vector<DirEntry>> FileSystem::ReadDir(const Caller& c, InodeId dir, uint64_t cookie,
                                                  size_t max_entries) {
  Tx tx(volume_);
  ASSIGN_OR_RETURN(InodeItem * d, tx.Dir(dir));
  RETURN_IF_ERROR(Permission(c, *d, kMayRead));
  std::vector<DirEntry> out;
  auto it = volume_.items().NewIterator();
  for (it->Seek(ItemKey{dir.value, ItemType::kDirIndex, std::max<uint64_t>(cookie, 2) + 1});
       it->Valid() && out.size() < max_entries; it->Next()) {
    ItemKey k = it->key();
    if (k.objectid != dir.value || k.type != ItemType::kDirIndex) break;
    DirIndexItem idx;
    RETURN_IF_ERROR(DecodeDirIndex(it->value(), &idx));
    ASSIGN_OR_RETURN(std::optional<std::string> raw,
                     volume_.items().Get(InodeKey(InodeId(idx.child))));
    if (!raw) return Status::Error(EIO, "entry names a missing inode");
    InodeItem child;
    RETURN_IF_ERROR(DecodeInode(*raw, &child));
    out.push_back(DirEntry{std::move(idx.name), k.offset, ToAttr(InodeId(idx.child), child)});
  }
  RETURN_IF_ERROR(it->status());
  return out;
}

Status FileSystem::ReadRange(Tx& tx, InodeId ino, const InodeItem& inode, uint64_t offset,
                             std::span<char> out) {
  std::memset(out.data(), 0, out.size());
  uint64_t end = offset + out.size();
  if (inode.allocated_bytes == 0) {
    ASSIGN_OR_RETURN(std::optional<std::string> data,
                     tx.txn().Get(ItemKey{ino.value, ItemType::kInline, 0}));
    if (data && offset < data->size()) {
      size_t n = std::min<size_t>(data->size() - offset, out.size());
      std::memcpy(out.data(), data->data() + offset, n);
    }
    return Status::Ok();
  }
  ASSIGN_OR_RETURN(auto extents, tx.Extents(ino, offset, end));
  for (auto& [off, e] : extents) {
    uint64_t from = std::max(off, offset), to = std::min(off + e.length, end);
    RETURN_IF_ERROR(volume_.extents().Read(
        e, from - off, std::span<char>(out.data() + (from - offset), to - from)));
  }
  return Status::Ok();
}

Result<std::string> FileSystem::Read(InodeId ino, uint64_t offset, uint32_t len) {
  Tx tx(volume_);
  ASSIGN_OR_RETURN(InodeItem * i, tx.Inode(ino));
  if (S_ISDIR(i->mode)) return Status::Error(EISDIR);
  if (!S_ISREG(i->mode)) return Status::Error(EINVAL);
  if (offset >= i->size) return std::string();
  std::string out(std::min<uint64_t>(len, i->size - offset), '\0');
  RETURN_IF_ERROR(ReadRange(tx, ino, *i, offset, std::span<char>(out.data(), out.size())));
  int64_t now = NowNs();
  if (i->atime_ns <= i->mtime_ns || i->atime_ns <= i->ctime_ns || now - i->atime_ns > kRelatimeNs) {
    i->atime_ns = now;  // relatime
    Status st = tx.Commit();
    if (!st.ok()) LOG(Warn) << "atime update of " << ino.value << ": " << st.ToString();
  }
  return out;
}

Result<uint64_t> FileSystem::Lseek(InodeId ino, uint64_t offset, int whence) {
  Tx tx(volume_);
  ASSIGN_OR_RETURN(InodeItem * i, tx.Inode(ino));
  if (whence != SEEK_DATA && whence != SEEK_HOLE) return Status::Error(EINVAL);
  if (offset >= i->size) return Status::Error(ENXIO);
  if (i->allocated_bytes == 0) {
    // No extents: either an inline file (all data) or one big hole.
    ASSIGN_OR_RETURN(std::optional<std::string> inline_data,
                     tx.txn().Get(ItemKey{ino.value, ItemType::kInline, 0}));
    bool data = inline_data.has_value() && i->size <= kInlineMaxBytes;
    if (whence == SEEK_DATA) return data ? Result<uint64_t>(offset) : Status::Error(ENXIO);
    return data ? i->size : offset;
  }
  ASSIGN_OR_RETURN(auto extents, tx.Extents(ino, RoundDown(offset), UINT64_MAX));
  uint64_t pos = offset;
  for (auto& [off, e] : extents) {
    bool data = !(e.flags & ExtentItem::kUnwritten);
    uint64_t end = off + e.length;
    if (end <= pos) continue;
    if (whence == SEEK_DATA) {
      if (data) return std::min(std::max(off, pos), i->size);
    } else {
      if (off > pos || !data) return std::min(pos, i->size);  // a gap or an unwritten range
      pos = end;
    }
  }
  if (whence == SEEK_DATA) return Status::Error(ENXIO);
  return std::min(pos, i->size);
}

Result<std::string> FileSystem::GetXattr(const Caller& c, InodeId ino, std::string_view name) {
  Tx tx(volume_);
  ASSIGN_OR_RETURN(InodeItem * i, tx.Inode(ino));
  if (name.starts_with("trusted.") && c.uid != 0) return Status::Error(ENODATA);
  if (name.starts_with("user.")) RETURN_IF_ERROR(Permission(c, *i, kMayRead));
  ASSIGN_OR_RETURN(std::optional<std::string> raw,
                   tx.txn().Get(ItemKey{ino.value, ItemType::kXattr, NameHash(name)}));
  if (!raw) return Status::Error(ENODATA);
  XattrItem x;
  RETURN_IF_ERROR(DecodeXattr(*raw, &x));
  for (auto& [n, v] : x.entries) {
    if (n == name) return v;
  }
  return Status::Error(ENODATA);
}

Result<std::vector<std::string>> FileSystem::ListXattr(const Caller& c, InodeId ino) {
  Tx tx(volume_);
  ASSIGN_OR_RETURN(InodeItem * i, tx.Inode(ino));
  (void)i;
  std::vector<std::string> names;
  auto it = tx.txn().NewIterator();
  for (it->Seek(ItemKey{ino.value, ItemType::kXattr, 0}); it->Valid(); it->Next()) {
    ItemKey k = it->key();
    if (k.objectid != ino.value || k.type != ItemType::kXattr) break;
    XattrItem x;
    RETURN_IF_ERROR(DecodeXattr(it->value(), &x));
    for (auto& [n, v] : x.entries) {
      if (n.starts_with("trusted.") && c.uid != 0) continue;
      names.push_back(n);
    }
  }
  RETURN_IF_ERROR(it->status());
  return names;
}

Result<FsStat> FileSystem::StatFs() {
  const SuperItem& s = volume_.super();
  FsStat st;
  st.block_bytes = kBlockBytes;
  st.total_blocks = (s.device_bytes - s.data_start) / kBlockBytes;
  st.free_blocks = volume_.allocator().free_bytes() / kBlockBytes;
  st.total_inodes = 1ull << 32;
  st.free_inodes = st.total_inodes - std::min<uint64_t>(st.total_inodes, s.next_inode);
  st.max_name_bytes = kMaxNameBytes;
  return st;
}

Status FileSystem::Open(const Caller& c, InodeId ino, int flags) {
  Tx tx(volume_);
  ASSIGN_OR_RETURN(InodeItem * i, tx.Inode(ino));
  int acc = flags & O_ACCMODE;
  int mask = acc == O_RDONLY ? kMayRead : acc == O_WRONLY ? kMayWrite : kMayRead | kMayWrite;
  if (flags & O_TRUNC) mask |= kMayWrite;
  if (S_ISDIR(i->mode) && (mask & kMayWrite)) return Status::Error(EISDIR);
  if (i->nlink == 0 && !S_ISREG(i->mode)) return Status::Error(ENOENT);
  RETURN_IF_ERROR(Permission(c, *i, mask));
  if ((flags & O_TRUNC) && S_ISREG(i->mode)) {
    // FUSE's atomic O_TRUNC: the kernel leaves the truncation to open.
    RETURN_IF_ERROR(Truncate(tx, ino, *i, 0));
    i->mtime_ns = i->ctime_ns = NowNs();
    KillPrivileges(c, *i);
    return tx.Commit();
  }
  return Status::Ok();
}

Status FileSystem::Access(const Caller& c, InodeId ino, int mask) {
  Tx tx(volume_);
  ASSIGN_OR_RETURN(InodeItem * i, tx.Inode(ino));
  if (mask == F_OK) return Status::Ok();
  return Permission(c, *i, mask & 7);
}

// ---------------------------------------------------------------- namespace

Result<Attr> FileSystem::CreateNode(const Caller& c, InodeId parent, std::string_view name,
                                    uint32_t mode, uint64_t rdev, InodeId new_ino,
                                    std::string_view symlink_target) {
  RETURN_IF_ERROR(CheckNameLength(name));
  uint32_t type = mode & S_IFMT;
  if (type == 0) type = S_IFREG;
  switch (type) {
    case S_IFREG: case S_IFDIR: case S_IFLNK: case S_IFIFO: case S_IFSOCK:
      rdev = 0;
      break;
    case S_IFCHR: case S_IFBLK:
      break;
    default:
      return Status::Error(EINVAL, "unknown file type");
  }
  if (type == S_IFLNK && symlink_target.size() > kMaxSymlinkBytes) {
    return Status::Error(ENAMETOOLONG);
  }
  if (type == S_IFLNK && symlink_target.empty()) return Status::Error(ENOENT);
  if (new_ino.value <= kRootInode.value || new_ino.value >= volume_.super().next_inode) {
    return Status::Error(EINVAL, "inode number was never handed out");
  }
  Tx tx(volume_);
  ASSIGN_OR_RETURN(InodeItem * dir, tx.Dir(parent));
  if (dir->nlink == 0) return Status::Error(ENOENT);
  RETURN_IF_ERROR(Permission(c, *dir, kMayWrite | kMayExec));
  ASSIGN_OR_RETURN(auto found, tx.Find(parent, name));
  if (found) return Status::Error(EEXIST);
  ASSIGN_OR_RETURN(std::optional<std::string> existing, tx.txn().Get(InodeKey(new_ino)));
  if (existing) return Status::Error(EEXIST, "inode number in use");

  int64_t now = NowNs();
  InodeItem i;
  i.mode = type | (mode & 07777);
  i.uid = c.uid;
  i.gid = c.gid;
  if (dir->mode & S_ISGID) {
    i.gid = dir->gid;
    if (type == S_IFDIR) i.mode |= S_ISGID;
  }
  if (type != S_IFDIR && (i.mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP) && c.uid != 0 &&
      !InGroup(c, i.gid)) {
    i.mode &= ~S_ISGID;
  }
  i.nlink = type == S_IFDIR ? 2 : 1;
  i.size = type == S_IFLNK ? symlink_target.size() : 0;
  i.rdev = rdev;
  i.atime_ns = i.mtime_ns = i.ctime_ns = now;
  i.generation = volume_.super().generation;
  if (type == S_IFDIR) {
    i.parent = parent.value;
    dir->nlink++;
  }
  dir->mtime_ns = dir->ctime_ns = now;
  tx.NewInode(new_ino, i);
  if (type == S_IFLNK) {
    tx.txn().Put(ItemKey{new_ino.value, ItemType::kSymlink, 0}, symlink_target);
  }
  RETURN_IF_ERROR(tx.AddName(parent, name, new_ino, i.mode));
  RETURN_IF_ERROR(tx.Commit());
  return ToAttr(new_ino, i);
}

Result<Attr> FileSystem::Mknod(const Caller& c, InodeId parent, std::string_view name,
                               uint32_t mode, uint64_t rdev, InodeId new_ino) {
  uint32_t type = mode & S_IFMT;
  if (type == S_IFDIR || type == S_IFLNK) return Status::Error(EINVAL);
  return CreateNode(c, parent, name, mode, rdev, new_ino, {});
}

Result<Attr> FileSystem::Mkdir(const Caller& c, InodeId parent, std::string_view name,
                               uint32_t mode, InodeId new_ino) {
  return CreateNode(c, parent, name, S_IFDIR | (mode & 07777), 0, new_ino, {});
}

Result<Attr> FileSystem::Symlink(const Caller& c, InodeId parent, std::string_view name,
                                 std::string_view target, InodeId new_ino) {
  return CreateNode(c, parent, name, S_IFLNK | 0777, 0, new_ino, target);
}

Result<Attr> FileSystem::Link(const Caller& c, InodeId ino, InodeId new_parent,
                              std::string_view new_name) {
  RETURN_IF_ERROR(CheckNameLength(new_name));
  Tx tx(volume_);
  ASSIGN_OR_RETURN(InodeItem * i, tx.Inode(ino));
  if (S_ISDIR(i->mode)) return Status::Error(EPERM);
  if (i->nlink == 0) return Status::Error(ENOENT);
  if (i->nlink >= kMaxLinks) return Status::Error(EMLINK);
  ASSIGN_OR_RETURN(InodeItem * dir, tx.Dir(new_parent));
  RETURN_IF_ERROR(Permission(c, *dir, kMayWrite | kMayExec));
  ASSIGN_OR_RETURN(auto found, tx.Find(new_parent, new_name));
  if (found) return Status::Error(EEXIST);
  int64_t now = NowNs();
  i->nlink++;
  i->ctime_ns = now;
  dir->mtime_ns = dir->ctime_ns = now;
  RETURN_IF_ERROR(tx.AddName(new_parent, new_name, ino, i->mode));
  Attr a = ToAttr(ino, *i);
  RETURN_IF_ERROR(tx.Commit());
  return a;
}

Result<InodeId> FileSystem::Unlink(const Caller& c, InodeId parent, std::string_view name) {
  return RemoveEntry(c, parent, name, /*dir=*/false);
}

Result<InodeId> FileSystem::Rmdir(const Caller& c, InodeId parent, std::string_view name) {
  if (name == ".") return Status::Error(EINVAL);
  if (name == "..") return Status::Error(ENOTEMPTY);
  return RemoveEntry(c, parent, name, /*dir=*/true);
}

Result<InodeId> FileSystem::RemoveEntry(const Caller& c, InodeId parent, std::string_view name,
                                        bool dir) {
  RETURN_IF_ERROR(CheckNameLength(name));
  Tx tx(volume_);
  ASSIGN_OR_RETURN(InodeItem * d, tx.Dir(parent));
  RETURN_IF_ERROR(Permission(c, *d, kMayWrite | kMayExec));
  ASSIGN_OR_RETURN(auto found, tx.Find(parent, name));
  if (!found) return Status::Error(ENOENT);
  auto [seq, child] = *found;
  ASSIGN_OR_RETURN(InodeItem * i, tx.Inode(child));
  if (dir && !S_ISDIR(i->mode)) return Status::Error(ENOTDIR);
  if (!dir && S_ISDIR(i->mode)) return Status::Error(EISDIR);
  RETURN_IF_ERROR(StickyCheck(c, *d, *i));
  if (dir) {
    ASSIGN_OR_RETURN(bool empty, tx.DirEmpty(child));
    if (!empty) return Status::Error(ENOTEMPTY);
    d->nlink--;
  }
  int64_t now = NowNs();
  RETURN_IF_ERROR(tx.RemoveName(parent, name, seq));
  tx.DropLink(child, *i, now);
  d->mtime_ns = d->ctime_ns = now;
  RETURN_IF_ERROR(tx.Commit());
  return child;
}

Result<std::optional<InodeId>> FileSystem::Rename(const Caller& c, InodeId parent,
                                                  std::string_view name, InodeId new_parent,
                                                  std::string_view new_name, uint32_t flags) {
  RETURN_IF_ERROR(CheckNameLength(name));
  RETURN_IF_ERROR(CheckNameLength(new_name));
  if (flags & ~(kRenameNoReplace | kRenameExchange)) return Status::Error(EINVAL);
  if ((flags & kRenameNoReplace) && (flags & kRenameExchange)) return Status::Error(EINVAL);
  Tx tx(volume_);
  ASSIGN_OR_RETURN(InodeItem * pdir, tx.Dir(parent));
  ASSIGN_OR_RETURN(InodeItem * ndir, tx.Dir(new_parent));
  RETURN_IF_ERROR(Permission(c, *pdir, kMayWrite | kMayExec));
  RETURN_IF_ERROR(Permission(c, *ndir, kMayWrite | kMayExec));
  ASSIGN_OR_RETURN(auto src_found, tx.Find(parent, name));
  if (!src_found) return Status::Error(ENOENT);
  auto [src_seq, src] = *src_found;
  ASSIGN_OR_RETURN(InodeItem * si, tx.Inode(src));
  RETURN_IF_ERROR(StickyCheck(c, *pdir, *si));
  ASSIGN_OR_RETURN(auto dst_found, tx.Find(new_parent, new_name));
  bool exchange = flags & kRenameExchange;
  if (exchange && !dst_found) return Status::Error(ENOENT);
  if (dst_found && (flags & kRenameNoReplace)) return Status::Error(EEXIST);
  if (dst_found && dst_found->second == src) return std::optional<InodeId>();  // same inode

  // A directory may not move below itself.
  auto inside = [&](InodeId dir, InodeId maybe_ancestor) -> Result<bool> {
    InodeId cur = dir;
    for (int depth = 0; depth < 100000; depth++) {
      if (cur == maybe_ancestor) return true;
      if (cur == kRootInode) return false;
      ASSIGN_OR_RETURN(InodeItem * d, tx.Inode(cur));
      cur = InodeId(d->parent);
    }
    return Status::Error(EIO, "directory parent chain loops");
  };
  if (S_ISDIR(si->mode)) {
    ASSIGN_OR_RETURN(bool below, inside(new_parent, src));
    if (below) return Status::Error(EINVAL);
  }
  int64_t now = NowNs();
  std::optional<InodeId> replaced;
  InodeItem* di = nullptr;
  if (dst_found) {
    ASSIGN_OR_RETURN(di, tx.Inode(dst_found->second));
    RETURN_IF_ERROR(StickyCheck(c, *ndir, *di));
    if (exchange) {
      if (S_ISDIR(di->mode)) {
        ASSIGN_OR_RETURN(bool below, inside(parent, dst_found->second));
        if (below) return Status::Error(EINVAL);
      }
    } else {
      if (S_ISDIR(si->mode) && !S_ISDIR(di->mode)) return Status::Error(ENOTDIR);
      if (!S_ISDIR(si->mode) && S_ISDIR(di->mode)) return Status::Error(EISDIR);
      if (S_ISDIR(di->mode)) {
        ASSIGN_OR_RETURN(bool empty, tx.DirEmpty(dst_found->second));
        if (!empty) return Status::Error(ENOTEMPTY);
      }
    }
  }
  RETURN_IF_ERROR(tx.RemoveName(parent, name, src_seq));
  if (dst_found) RETURN_IF_ERROR(tx.RemoveName(new_parent, new_name, dst_found->first));
  RETURN_IF_ERROR(tx.AddName(new_parent, new_name, src, si->mode));
  if (S_ISDIR(si->mode) && parent != new_parent) {
    pdir->nlink--;
    ndir->nlink++;
    si->parent = new_parent.value;
  }
  si->ctime_ns = now;
  if (dst_found) {
    InodeId dst = dst_found->second;
    if (exchange) {
      RETURN_IF_ERROR(tx.AddName(parent, name, dst, di->mode));
      if (S_ISDIR(di->mode) && parent != new_parent) {
        ndir->nlink--;
        pdir->nlink++;
        di->parent = parent.value;
      }
      di->ctime_ns = now;
    } else {
      if (S_ISDIR(di->mode)) ndir->nlink--;
      tx.DropLink(dst, *di, now);
      replaced = dst;
    }
  }
  pdir->mtime_ns = pdir->ctime_ns = now;
  ndir->mtime_ns = ndir->ctime_ns = now;
  RETURN_IF_ERROR(tx.Commit());
  return replaced;
}

// ---------------------------------------------------------------- data

Result<std::vector<ExtentItem>> FileSystem::WriteExtents(Tx& tx, std::span<const char> data) {
  std::vector<ExtentItem> out;
  for (size_t pos = 0; pos < data.size(); pos += kMaxExtentBytes) {
    auto piece = data.subspan(pos, std::min<size_t>(kMaxExtentBytes, data.size() - pos));
    auto written = volume_.extents().WriteNew(piece, tx.txn());
    if (!written.ok() && written.errno_value() == ENOSPC &&
        volume_.allocator().free_bytes() > volume_.allocator().allocatable_bytes()) {
      // Space freed by earlier, not yet durable commits: make them durable and retry.
      RETURN_IF_ERROR(Sync());
      written = volume_.extents().WriteNew(piece, tx.txn());
    }
    if (!written.ok()) return written.status();
    for (auto& e : *written) out.push_back(std::move(e));
  }
  return out;
}

Status FileSystem::PunchRange(Tx& tx, InodeId ino, InodeItem& inode, uint64_t start,
                              uint64_t end) {
  CHECK(start % kBlockBytes == 0 && end % kBlockBytes == 0);
  ASSIGN_OR_RETURN(auto extents, tx.Extents(ino, start, end));
  for (auto& [off, e] : extents) {
    uint64_t e_end = off + e.length;
    tx.txn().Delete(ItemKey{ino.value, ItemType::kExtent, off});
    if (off < start) {
      tx.txn().Put(ItemKey{ino.value, ItemType::kExtent, off},
                   EncodeExtent(SliceExtent(e, 0, start - off)));
    }
    if (e_end > end) {
      tx.txn().Put(ItemKey{ino.value, ItemType::kExtent, end},
                   EncodeExtent(SliceExtent(e, end - off, e_end - end)));
    }
    uint64_t from = std::max(off, start), to = std::min(e_end, end);
    volume_.allocator().Free(DeviceRange{e.device_offset + (from - off), to - from}, tx.txn());
    inode.allocated_bytes -= to - from;
  }
  return Status::Ok();
}

// Moves inline content into an extent so the file can grow past one block.
Status FileSystem::ConvertInline(Tx& tx, InodeId ino, InodeItem& inode) {
  ItemKey key{ino.value, ItemType::kInline, 0};
  ASSIGN_OR_RETURN(std::optional<std::string> data, tx.txn().Get(key));
  if (!data) return Status::Ok();
  tx.txn().Delete(key);
  if (data->empty()) return Status::Ok();
  ASSIGN_OR_RETURN(auto extents, WriteExtents(tx, std::span<const char>(data->data(), data->size())));
  uint64_t off = 0;
  for (auto& e : extents) {
    tx.txn().Put(ItemKey{ino.value, ItemType::kExtent, off}, EncodeExtent(e));
    off += e.length;
    inode.allocated_bytes += e.length;
  }
  return Status::Ok();
}

Status FileSystem::WriteRange(Tx& tx, InodeId ino, InodeItem& inode, uint64_t offset,
                              std::span<const char> data) {
  uint64_t end = offset + data.size();
  ItemKey inline_key{ino.value, ItemType::kInline, 0};
  if (inode.allocated_bytes == 0 && end <= kInlineMaxBytes && inode.size <= kInlineMaxBytes) {
    ASSIGN_OR_RETURN(std::optional<std::string> old, tx.txn().Get(inline_key));
    std::string content = old.value_or(std::string());
    content.resize(std::min<uint64_t>(content.size(), inode.size));
    if (content.size() < end) content.resize(end, '\0');
    std::memcpy(content.data() + offset, data.data(), data.size());
    tx.txn().Put(inline_key, content);
  } else {
    RETURN_IF_ERROR(ConvertInline(tx, ino, inode));
    // Copy-on-write of the whole blocks the write touches: old head and tail
    // bytes of partial blocks are read first, then the blocks go to new space.
    uint64_t blk_start = RoundDown(offset), blk_end = RoundUp(end);
    std::string buf(blk_end - blk_start, '\0');
    bool head_partial = offset > blk_start;
    bool tail_partial = end < blk_end;
    if (head_partial) {
      RETURN_IF_ERROR(ReadRange(tx, ino, inode, blk_start, std::span<char>(buf.data(), kBlockBytes)));
    }
    if (tail_partial && !(head_partial && blk_end - blk_start == kBlockBytes)) {
      RETURN_IF_ERROR(ReadRange(tx, ino, inode, blk_end - kBlockBytes,
                                std::span<char>(buf.data() + buf.size() - kBlockBytes, kBlockBytes)));
    }
    std::memcpy(buf.data() + (offset - blk_start), data.data(), data.size());
    // Bytes past EOF within the last block must read as zeros.
    uint64_t new_size = std::max(inode.size, end);
    if (blk_end > new_size) std::memset(buf.data() + (new_size - blk_start), 0, blk_end - new_size);
    ASSIGN_OR_RETURN(auto extents, WriteExtents(tx, std::span<const char>(buf.data(), buf.size())));
    RETURN_IF_ERROR(PunchRange(tx, ino, inode, blk_start, blk_end));
    uint64_t off = blk_start;
    for (auto& e : extents) {
      tx.txn().Put(ItemKey{ino.value, ItemType::kExtent, off}, EncodeExtent(e));
      off += e.length;
      inode.allocated_bytes += e.length;
    }
  }
  inode.size = std::max(inode.size, end);
  return Status::Ok();
}

Result<Attr> FileSystem::Write(const Caller& c, InodeId ino, uint64_t offset,
                               std::span<const char> data) {
  Tx tx(volume_);
  ASSIGN_OR_RETURN(InodeItem * i, tx.Inode(ino));
  if (S_ISDIR(i->mode)) return Status::Error(EISDIR);
  if (!S_ISREG(i->mode)) return Status::Error(EINVAL);
  if (offset > kMaxFileBytes || data.size() > kMaxFileBytes - offset) return Status::Error(EFBIG);
  if (!data.empty()) {
    RETURN_IF_ERROR(WriteRange(tx, ino, *i, offset, data));
    int64_t now = NowNs();
    i->mtime_ns = i->ctime_ns = now;
    KillPrivileges(c, *i);
    RETURN_IF_ERROR(tx.Commit());
  }
  return ToAttr(ino, *i);
}

Status FileSystem::Truncate(Tx& tx, InodeId ino, InodeItem& inode, uint64_t size) {
  if (size > kMaxFileBytes) return Status::Error(EFBIG);
  if (size >= inode.size) {
    if (inode.allocated_bytes == 0 && size > kInlineMaxBytes) {
      RETURN_IF_ERROR(ConvertInline(tx, ino, inode));
    }
    inode.size = size;  // growing leaves a hole
    return Status::Ok();
  }
  if (inode.allocated_bytes == 0) {
    ItemKey key{ino.value, ItemType::kInline, 0};
    ASSIGN_OR_RETURN(std::optional<std::string> data, tx.txn().Get(key));
    if (data && data->size() > size) {
      data->resize(size);
      tx.txn().Put(key, *data);
    }
    inode.size = size;
    return Status::Ok();
  }
  // Zero the tail of a partial last block (copy-on-write), then drop whole blocks.
  uint64_t keep = RoundUp(size);
  if (size % kBlockBytes != 0) {
    std::string block(kBlockBytes, '\0');
    uint64_t start = RoundDown(size);
    RETURN_IF_ERROR(ReadRange(tx, ino, inode, start, std::span<char>(block.data(), block.size())));
    ASSIGN_OR_RETURN(auto extents, tx.Extents(ino, start, start + kBlockBytes));
    if (!extents.empty()) {
      std::memset(block.data() + (size - start), 0, kBlockBytes - (size - start));
      inode.size = size;  // so WriteRange keeps the tail zero
      RETURN_IF_ERROR(WriteRange(tx, ino, inode, start, std::span<const char>(block.data(), size - start)));
    }
  }
  // Drop every extent beyond the new end, including fallocate KEEP_SIZE ones.
  ASSIGN_OR_RETURN(auto beyond, tx.Extents(ino, keep, UINT64_MAX));
  if (!beyond.empty()) {
    uint64_t last = beyond.back().first + beyond.back().second.length;
    RETURN_IF_ERROR(PunchRange(tx, ino, inode, keep, last));
  }
  inode.size = size;
  return Status::Ok();
}

Result<Attr> FileSystem::SetAttr(const Caller& c, InodeId ino, const SetAttrRequest& req) {
  Tx tx(volume_);
  ASSIGN_OR_RETURN(InodeItem * i, tx.Inode(ino));
  bool owner = c.uid == 0 || c.uid == i->uid;
  int64_t now = NowNs();
  if (req.mask & kSetMode) {
    if (!owner) return Status::Error(EPERM);
    uint32_t mode = req.mode & 07777;
    if (c.uid != 0 && !InGroup(c, i->gid)) mode &= ~S_ISGID;
    i->mode = (i->mode & S_IFMT) | mode;
  }
  if (req.mask & (kSetUid | kSetGid)) {
    bool uid_change = (req.mask & kSetUid) && req.uid != i->uid;
    bool gid_change = (req.mask & kSetGid) && req.gid != i->gid;
    if (uid_change && c.uid != 0) return Status::Error(EPERM);
    if (gid_change && c.uid != 0 && (c.uid != i->uid || !InGroup(c, req.gid))) {
      return Status::Error(EPERM);
    }
    if (req.mask & kSetUid) i->uid = req.uid;
    if (req.mask & kSetGid) i->gid = req.gid;
  }
  if (req.mask & kSetSize) {
    if (S_ISDIR(i->mode)) return Status::Error(EISDIR);
    if (!S_ISREG(i->mode)) return Status::Error(EINVAL);
    if (!req.has_open_handle) RETURN_IF_ERROR(Permission(c, *i, kMayWrite));
    RETURN_IF_ERROR(Truncate(tx, ino, *i, req.size));
    i->mtime_ns = now;
    KillPrivileges(c, *i);
  }
  if (req.mask & (kSetAtime | kSetMtime)) {
    if (!owner) return Status::Error(EPERM);
  } else if (req.mask & (kSetAtimeNow | kSetMtimeNow)) {
    if (!owner) RETURN_IF_ERROR(Permission(c, *i, kMayWrite));
  }
  if (req.mask & kSetAtime) i->atime_ns = req.atime_ns;
  if (req.mask & kSetAtimeNow) i->atime_ns = now;
  if (req.mask & kSetMtime) i->mtime_ns = req.mtime_ns;
  if (req.mask & kSetMtimeNow) i->mtime_ns = now;
  i->ctime_ns = (req.mask & kSetCtime) ? req.ctime_ns : now;
  RETURN_IF_ERROR(tx.Commit());
  return ToAttr(ino, *i);
}

Result<Attr> FileSystem::Fallocate(const Caller& c, InodeId ino, int mode, uint64_t offset,
                                   uint64_t length) {
  const int kPunch = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
  if (mode != 0 && mode != FALLOC_FL_KEEP_SIZE && mode != kPunch &&
      (mode & ~FALLOC_FL_KEEP_SIZE) != FALLOC_FL_ZERO_RANGE) {
    return Status::Error(EOPNOTSUPP);
  }
  if (length == 0) return Status::Error(EINVAL);
  if (offset > kMaxFileBytes || length > kMaxFileBytes - offset) return Status::Error(EFBIG);
  Tx tx(volume_);
  ASSIGN_OR_RETURN(InodeItem * i, tx.Inode(ino));
  if (S_ISDIR(i->mode)) return Status::Error(EISDIR);
  if (!S_ISREG(i->mode)) return Status::Error(ENODEV);
  uint64_t end = offset + length;
  bool keep_size = mode & FALLOC_FL_KEEP_SIZE;
  if (mode == kPunch || (mode & FALLOC_FL_ZERO_RANGE)) {
    // Zero partial blocks in place (copy-on-write), drop whole blocks.
    uint64_t inner_start = RoundUp(offset), inner_end = RoundDown(end);
    uint64_t zero_to = std::min(end, i->size);
    if (i->allocated_bytes == 0) {
      if (offset < zero_to) {
        std::string zeros(zero_to - offset, '\0');
        RETURN_IF_ERROR(WriteRange(tx, ino, *i, offset, std::span<const char>(zeros.data(), zeros.size())));
      }
    } else {
      if (inner_start > inner_end) inner_start = inner_end = offset;  // inside one block
      auto zero = [&](uint64_t from, uint64_t to) -> Status {
        to = std::min(to, i->size);
        if (from >= to) return Status::Ok();
        std::string zeros(to - from, '\0');
        return WriteRange(tx, ino, *i, from, std::span<const char>(zeros.data(), zeros.size()));
      };
      if (inner_start == inner_end) {
        RETURN_IF_ERROR(zero(offset, end));
      } else {
        RETURN_IF_ERROR(zero(offset, inner_start));
        RETURN_IF_ERROR(zero(inner_end, end));
        RETURN_IF_ERROR(PunchRange(tx, ino, *i, inner_start, inner_end));
      }
    }
  } else {
    // Allocate unwritten extents over the holes of the range.
    if (i->allocated_bytes == 0 && i->size > 0) RETURN_IF_ERROR(ConvertInline(tx, ino, *i));
    uint64_t pos = RoundDown(offset), stop = RoundUp(end);
    ASSIGN_OR_RETURN(auto extents, tx.Extents(ino, pos, stop));
    auto fill = [&](uint64_t from, uint64_t to) -> Status {
      while (from < to) {
        uint64_t n = std::min<uint64_t>(to - from, kMaxExtentBytes);
        ASSIGN_OR_RETURN(auto ranges, volume_.allocator().Allocate(n, tx.txn()));
        for (auto& r : ranges) {
          ExtentItem e;
          e.device_offset = r.offset;
          e.length = r.length;
          e.flags = ExtentItem::kUnwritten;
          tx.txn().Put(ItemKey{ino.value, ItemType::kExtent, from}, EncodeExtent(e));
          i->allocated_bytes += r.length;
          from += r.length;
        }
      }
      return Status::Ok();
    };
    for (auto& [off, e] : extents) {
      if (off > pos) RETURN_IF_ERROR(fill(pos, std::min(off, stop)));
      pos = std::max(pos, off + e.length);
    }
    if (pos < stop) RETURN_IF_ERROR(fill(pos, stop));
  }
  if (!keep_size && end > i->size) i->size = end;
  int64_t now = NowNs();
  i->ctime_ns = now;
  if (mode != FALLOC_FL_KEEP_SIZE) i->mtime_ns = now;
  RETURN_IF_ERROR(tx.Commit());
  return ToAttr(ino, *i);
}

// ---------------------------------------------------------------- xattrs

namespace {

Status CheckXattrName(std::string_view name) {
  if (name.size() > kMaxXattrNameBytes) return Status::Error(ERANGE);
  if (name.starts_with("user.") || name.starts_with("trusted.") || name.starts_with("security.")) {
    if (name.find('.') + 1 == name.size()) return Status::Error(EINVAL);
    return Status::Ok();
  }
  return Status::Error(EOPNOTSUPP);  // system.* (POSIX ACLs) and unknown namespaces
}

Status CheckXattrWrite(const Caller& c, const InodeItem& i, std::string_view name) {
  if (name.starts_with("trusted.") && c.uid != 0) return Status::Error(EPERM);
  if (name.starts_with("user.")) {
    if (!S_ISREG(i.mode) && !S_ISDIR(i.mode)) return Status::Error(EPERM);
    return Permission(c, i, kMayWrite);
  }
  if (name.starts_with("security.") && c.uid != 0 && c.uid != i.uid) return Status::Error(EPERM);
  return Status::Ok();
}

}  // namespace

Status FileSystem::SetXattr(const Caller& c, InodeId ino, std::string_view name,
                            std::string_view value, int flags) {
  RETURN_IF_ERROR(CheckXattrName(name));
  if (value.size() > kMaxXattrValueBytes) return Status::Error(E2BIG);
  if (flags & ~(XATTR_CREATE | XATTR_REPLACE)) return Status::Error(EINVAL);
  Tx tx(volume_);
  ASSIGN_OR_RETURN(InodeItem * i, tx.Inode(ino));
  RETURN_IF_ERROR(CheckXattrWrite(c, *i, name));
  ItemKey key{ino.value, ItemType::kXattr, NameHash(name)};
  ASSIGN_OR_RETURN(std::optional<std::string> raw, tx.txn().Get(key));
  XattrItem x;
  if (raw) RETURN_IF_ERROR(DecodeXattr(*raw, &x));
  auto it = std::find_if(x.entries.begin(), x.entries.end(), [&](auto& e) { return e.first == name; });
  if (it != x.entries.end() && (flags & XATTR_CREATE)) return Status::Error(EEXIST);
  if (it == x.entries.end() && (flags & XATTR_REPLACE)) return Status::Error(ENODATA);
  if (it != x.entries.end()) {
    it->second = std::string(value);
  } else {
    x.entries.emplace_back(std::string(name), std::string(value));
  }
  tx.txn().Put(key, EncodeXattr(x));
  i->flags |= kInodeHasXattrs;
  i->ctime_ns = NowNs();
  return tx.Commit();
}

Status FileSystem::RemoveXattr(const Caller& c, InodeId ino, std::string_view name) {
  RETURN_IF_ERROR(CheckXattrName(name));
  Tx tx(volume_);
  ASSIGN_OR_RETURN(InodeItem * i, tx.Inode(ino));
  RETURN_IF_ERROR(CheckXattrWrite(c, *i, name));
  ItemKey key{ino.value, ItemType::kXattr, NameHash(name)};
  ASSIGN_OR_RETURN(std::optional<std::string> raw, tx.txn().Get(key));
  if (!raw) return Status::Error(ENODATA);
  XattrItem x;
  RETURN_IF_ERROR(DecodeXattr(*raw, &x));
  size_t before = x.entries.size();
  std::erase_if(x.entries, [&](auto& e) { return e.first == name; });
  if (x.entries.size() == before) return Status::Error(ENODATA);
  if (x.entries.empty()) {
    tx.txn().Delete(key);
  } else {
    tx.txn().Put(key, EncodeXattr(x));
  }
  // Clear the flag when this was the inode's last xattr item.
  auto it = tx.txn().NewIterator();
  it->Seek(ItemKey{ino.value, ItemType::kXattr, 0});
  RETURN_IF_ERROR(it->status());
  if (!it->Valid() || it->key().objectid != ino.value || it->key().type != ItemType::kXattr) {
    i->flags &= ~kInodeHasXattrs;
  }
  i->ctime_ns = NowNs();
  return tx.Commit();
}

// ---------------------------------------------------------------- lifecycle

Status FileSystem::Reclaim(InodeId ino) {
  Tx tx(volume_);
  ASSIGN_OR_RETURN(InodeItem * i, tx.Inode(ino));
  if (i->nlink > 0) return Status::Ok();
  std::vector<ItemKey> keys;
  auto it = tx.txn().NewIterator();
  for (it->Seek(ItemKey{ino.value, ItemType::kInode, 0}); it->Valid(); it->Next()) {
    ItemKey k = it->key();
    if (k.objectid != ino.value) break;
    if (k.type == ItemType::kExtent) {
      ExtentItem e;
      RETURN_IF_ERROR(DecodeExtent(it->value(), &e));
      volume_.extents().Free(e, tx.txn());
    }
    keys.push_back(k);
  }
  RETURN_IF_ERROR(it->status());
  for (const ItemKey& k : keys) tx.txn().Delete(k);
  tx.txn().Delete(OrphanKey(ino));
  return volume_.items().Commit(tx.txn(), /*sync=*/false);  // not tx.Commit: the inode is gone
}

Status FileSystem::ReclaimAllOrphans() {
  std::vector<InodeId> orphans;
  auto it = volume_.items().NewIterator();
  for (it->Seek(ItemKey{0, ItemType::kOrphan, 0}); it->Valid(); it->Next()) {
    ItemKey k = it->key();
    if (k.objectid != 0 || k.type != ItemType::kOrphan) break;
    orphans.push_back(InodeId(k.offset));
  }
  RETURN_IF_ERROR(it->status());
  for (InodeId ino : orphans) RETURN_IF_ERROR(Reclaim(ino));
  if (!orphans.empty()) LOG(Info) << "reclaimed " << orphans.size() << " orphan inodes";
  return Status::Ok();
}

Result<InodeRange> FileSystem::AllocateInodes(uint64_t count) {
  SuperItem& s = volume_.mutable_super();
  InodeRange r{s.next_inode, count};
  SuperItem updated = s;
  updated.next_inode += count;
  auto txn = volume_.items().BeginTxn();
  txn->Put(ItemKey{0, ItemType::kSuper, 0}, EncodeSuper(updated));
  RETURN_IF_ERROR(volume_.items().Commit(*txn, /*sync=*/false));
  s = updated;
  return r;
}

Status FileSystem::Sync() {
  RETURN_IF_ERROR(volume_.device().Flush());
  RETURN_IF_ERROR(volume_.items().SyncWal());
  volume_.allocator().ReleasePending();
  return Status::Ok();
}

}  // namespace cohfs
