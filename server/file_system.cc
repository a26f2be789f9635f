// FileSystem: lookups, namespace changes, xattrs and lifecycle. The data path
// (Read, Write, SetAttr, Fallocate, Lseek, Open) is in file_data.cc; the
// transaction wrapper in fs_tx.{h,cc}; permission rules in permissions.{h,cc}.
#include "server/file_system.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>

#include "common/inode_flags.h"
#include "common/limits.h"
#include "common/log.h"
#include "common/permissions.h"
#include "common/xattr_rules.h"
#include "server/fs_tx.h"

namespace cohfs {
namespace {

// The kernel never sends such names; a hostile client might.
Status CheckName(std::string_view name) {
  if (name.empty()) return Status::Error(ENOENT);
  if (name.size() > kMaxNameBytes) return Status::Error(ENAMETOOLONG);
  if (name.find_first_of(std::string_view("/\0", 2)) != std::string_view::npos) {
    return Status::Error(EINVAL, "name with '/' or NUL");
  }
  return Status::Ok();
}

bool IsDotOrDotDot(std::string_view name) { return name == "." || name == ".."; }

// A name to be created: "." and ".." always exist (mkdir("."): EEXIST).
Status CheckNewName(std::string_view name) {
  RETURN_IF_ERROR(CheckName(name));
  if (IsDotOrDotDot(name)) return Status::Error(EEXIST);
  return Status::Ok();
}

}  // namespace

FileSystem::FileSystem(Volume& volume) : volume_(volume) {}

Status FileSystem::CheckWritable() {
  if (volume_.items().read_only()) return Status::Error(EIO, "metadata store is read-only");
  return Status::Ok();
}

// ---------------------------------------------------------------- reads

Result<Attr> FileSystem::Lookup(const Caller& c, InodeId parent, std::string_view name,
                                uint64_t* seq) {
  RETURN_IF_ERROR(CheckName(name));
  Tx tx(*this);
  ASSIGN_OR_RETURN(InodeItem * dir, tx.Dir(parent));
  RETURN_IF_ERROR(Permission(c, *dir, kMayExec));
  if (name == ".") return ToAttr(parent, *dir);
  if (name == "..") return GetAttr(InodeId(dir->parent));
  if (dir->nlink == 0) return Status::Error(ENOENT);  // a removed directory
  ASSIGN_OR_RETURN(auto found, tx.Find(parent, name));
  if (!found) return Status::Error(ENOENT);
  if (seq) *seq = found->first;
  ASSIGN_OR_RETURN(InodeItem * child, tx.Inode(found->second));
  return ToAttr(found->second, *child);
}

Result<Attr> FileSystem::GetAttr(InodeId ino) {
  Tx tx(*this);
  ASSIGN_OR_RETURN(InodeItem * i, tx.Inode(ino));
  return ToAttr(ino, *i);
}

Result<std::string> FileSystem::ReadLink(InodeId ino) {
  Tx tx(*this);
  ASSIGN_OR_RETURN(InodeItem * i, tx.Inode(ino));
  if (!S_ISLNK(i->mode)) return Status::Error(EINVAL);
  ASSIGN_OR_RETURN(std::optional<std::string> target,
                   tx.txn().Get(ItemKey{ino.value, ItemType::kSymlink, 0}));
  if (!target) return Status::Error(EIO, "symlink without target");
  return *target;
}

// Iterates DIR_INDEX items from the cookie on: sequences only grow, so entries
// added or removed during a listing never shift the others.
Result<std::vector<DirEntry>> FileSystem::ReadDir(const Caller& c, InodeId dir, uint64_t cookie,
                                                  size_t max_entries) {
  Tx tx(*this);
  ASSIGN_OR_RETURN(InodeItem * d, tx.Dir(dir));
  RETURN_IF_ERROR(Permission(c, *d, kMayRead));
  std::vector<DirEntry> out;
  uint64_t first = std::max<uint64_t>(cookie, 2);
  if (first == UINT64_MAX) return out;
  auto it = volume_.items().NewIterator();
  for (it->Seek(ItemKey{dir.value, ItemType::kDirIndex, first + 1});
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

Status FileSystem::Access(const Caller& c, InodeId ino, int mask) {
  Tx tx(*this);
  ASSIGN_OR_RETURN(InodeItem * i, tx.Inode(ino));
  if (mask & ~(R_OK | W_OK | X_OK)) return Status::Error(EINVAL);
  if (mask == F_OK) return Status::Ok();
  return Permission(c, *i, mask);
}

// ---------------------------------------------------------------- namespace

Result<Attr> FileSystem::CreateNode(const Caller& c, InodeId parent, std::string_view name,
                                    uint32_t mode, uint64_t rdev, InodeId new_ino,
                                    std::string_view symlink_target, int64_t now_ns) {
  RETURN_IF_ERROR(CheckNewName(name));
  uint32_t type = mode & S_IFMT;
  if (type == 0) type = S_IFREG;
  switch (type) {
    case S_IFREG:
    case S_IFDIR:
    case S_IFLNK:
    case S_IFIFO:
    case S_IFSOCK:
      rdev = 0;
      break;
    case S_IFCHR:
    case S_IFBLK:
      // CAP_MKNOD; a 0:0 character device is an overlayfs whiteout, allowed to all.
      if (!IsRoot(c) && !(type == S_IFCHR && rdev == 0)) return Status::Error(EPERM);
      break;
    default:
      return Status::Error(EINVAL, "unknown file type");
  }
  if (type == S_IFLNK) {
    if (symlink_target.empty()) return Status::Error(ENOENT);
    if (symlink_target.size() > kMaxSymlinkBytes) return Status::Error(ENAMETOOLONG);
  }
  if (new_ino.value <= kRootInode.value || new_ino.value >= volume_.super().next_inode) {
    return Status::Error(EINVAL, "inode number was never handed out");
  }
  RETURN_IF_ERROR(CheckWritable());
  Tx tx(*this);
  ASSIGN_OR_RETURN(InodeItem * dir, tx.Dir(parent));
  RETURN_IF_ERROR(Permission(c, *dir, kMayExec));
  if (dir->nlink == 0) return Status::Error(ENOENT);
  ASSIGN_OR_RETURN(auto found, tx.Find(parent, name));
  if (found) return Status::Error(EEXIST);
  RETURN_IF_ERROR(Permission(c, *dir, kMayWrite | kMayExec));
  RETURN_IF_ERROR(CheckDirChange(*dir, /*removes=*/false));
  ASSIGN_OR_RETURN(std::optional<std::string> existing, tx.txn().Get(InodeKey(new_ino)));
  if (existing) return Status::Error(EEXIST, "inode number in use");

  int64_t now = now_ns != 0 ? now_ns : NowNs();
  InodeItem i;
  i.mode = type | (mode & 07777);
  InitNewOwner(c, *dir, type, i);
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
                               uint32_t mode, uint64_t rdev, InodeId new_ino, int64_t now_ns) {
  uint32_t type = mode & S_IFMT;
  if (type == S_IFDIR) return Status::Error(EPERM);  // as mknod(2)
  if (type == S_IFLNK) return Status::Error(EINVAL);
  return CreateNode(c, parent, name, mode, rdev, new_ino, {}, now_ns);
}

Result<Attr> FileSystem::Mkdir(const Caller& c, InodeId parent, std::string_view name,
                               uint32_t mode, InodeId new_ino, int64_t now_ns) {
  return CreateNode(c, parent, name, S_IFDIR | (mode & 07777), 0, new_ino, {}, now_ns);
}

Result<Attr> FileSystem::Symlink(const Caller& c, InodeId parent, std::string_view name,
                                 std::string_view target, InodeId new_ino, int64_t now_ns) {
  return CreateNode(c, parent, name, S_IFLNK | 0777, 0, new_ino, target, now_ns);
}

Result<Attr> FileSystem::Link(const Caller& c, InodeId ino, InodeId new_parent,
                              std::string_view new_name, int64_t now_ns) {
  RETURN_IF_ERROR(CheckNewName(new_name));
  RETURN_IF_ERROR(CheckWritable());
  Tx tx(*this);
  ASSIGN_OR_RETURN(InodeItem * i, tx.Inode(ino));
  ASSIGN_OR_RETURN(InodeItem * dir, tx.Dir(new_parent));
  RETURN_IF_ERROR(Permission(c, *dir, kMayExec));
  if (dir->nlink == 0) return Status::Error(ENOENT);
  ASSIGN_OR_RETURN(auto found, tx.Find(new_parent, new_name));
  if (found) return Status::Error(EEXIST);
  RETURN_IF_ERROR(LinkPermission(c, *i));
  RETURN_IF_ERROR(Permission(c, *dir, kMayWrite | kMayExec));
  RETURN_IF_ERROR(CheckDirChange(*dir, /*removes=*/false));
  RETURN_IF_ERROR(CheckNotGuarded(*i));  // may_linkat
  if (S_ISDIR(i->mode)) return Status::Error(EPERM);
  if (i->nlink == 0) return Status::Error(ENOENT);
  if (i->nlink >= kMaxLinks) return Status::Error(EMLINK);
  int64_t now = now_ns != 0 ? now_ns : NowNs();
  i->nlink++;
  i->ctime_ns = now;
  dir->mtime_ns = dir->ctime_ns = now;
  RETURN_IF_ERROR(tx.AddName(new_parent, new_name, ino, i->mode));
  Attr a = ToAttr(ino, *i);
  RETURN_IF_ERROR(tx.Commit());
  return a;
}

Result<InodeId> FileSystem::Unlink(const Caller& c, InodeId parent, std::string_view name,
                                   int64_t now_ns) {
  return RemoveEntry(c, parent, name, /*dir=*/false, now_ns);
}

Result<InodeId> FileSystem::Rmdir(const Caller& c, InodeId parent, std::string_view name,
                                  int64_t now_ns) {
  if (name == ".") return Status::Error(EINVAL);
  if (name == "..") return Status::Error(ENOTEMPTY);
  return RemoveEntry(c, parent, name, /*dir=*/true, now_ns);
}

// may_delete order: search and write permission, sticky bit, then the type.
Result<InodeId> FileSystem::RemoveEntry(const Caller& c, InodeId parent, std::string_view name,
                                        bool dir, int64_t now_ns) {
  RETURN_IF_ERROR(CheckName(name));
  if (IsDotOrDotDot(name)) return Status::Error(EISDIR);  // unlink("."); rmdir's are earlier
  RETURN_IF_ERROR(CheckWritable());
  Tx tx(*this);
  ASSIGN_OR_RETURN(InodeItem * d, tx.Dir(parent));
  RETURN_IF_ERROR(Permission(c, *d, kMayExec));
  ASSIGN_OR_RETURN(auto found, tx.Find(parent, name));
  if (!found) return Status::Error(ENOENT);
  RETURN_IF_ERROR(Permission(c, *d, kMayWrite | kMayExec));
  auto [seq, child] = *found;
  ASSIGN_OR_RETURN(InodeItem * i, tx.Inode(child));
  RETURN_IF_ERROR(StickyCheck(c, *d, *i));
  RETURN_IF_ERROR(CheckDirChange(*d, /*removes=*/true));  // may_delete
  RETURN_IF_ERROR(CheckNotGuarded(*i));
  if (dir && !S_ISDIR(i->mode)) return Status::Error(ENOTDIR);
  if (!dir && S_ISDIR(i->mode)) return Status::Error(EISDIR);
  if (dir) {
    ASSIGN_OR_RETURN(bool empty, tx.DirEmpty(child));
    if (!empty) return Status::Error(ENOTEMPTY);
    d->nlink--;
  }
  int64_t now = now_ns != 0 ? now_ns : NowNs();
  RETURN_IF_ERROR(tx.RemoveName(parent, name, seq));
  tx.DropLink(child, *i, now);
  d->mtime_ns = d->ctime_ns = now;
  RETURN_IF_ERROR(tx.Commit());
  return child;
}

// Checks in the order of do_renameat2 and vfs_rename: lookups and flags, loops
// (EINVAL / ENOTEMPTY), same inode (no-op), may_delete / may_create on both
// directories, write permission on a directory that changes parent, emptiness.
Result<std::optional<InodeId>> FileSystem::Rename(const Caller& c, InodeId parent,
                                                  std::string_view name, InodeId new_parent,
                                                  std::string_view new_name, uint32_t flags,
                                                  int64_t now_ns) {
  RETURN_IF_ERROR(CheckName(name));
  RETURN_IF_ERROR(CheckName(new_name));
  if (IsDotOrDotDot(name) || IsDotOrDotDot(new_name)) return Status::Error(EBUSY);
  if (flags & ~(kRenameNoReplace | kRenameExchange | kRenameWhiteout)) {
    return Status::Error(EINVAL);
  }
  if ((flags & kRenameExchange) && (flags & (kRenameNoReplace | kRenameWhiteout))) {
    return Status::Error(EINVAL);
  }
  if ((flags & kRenameWhiteout) && !IsRoot(c)) return Status::Error(EPERM);  // CAP_MKNOD
  bool exchange = flags & kRenameExchange;
  RETURN_IF_ERROR(CheckWritable());
  Tx tx(*this);
  ASSIGN_OR_RETURN(InodeItem * pdir, tx.Dir(parent));
  ASSIGN_OR_RETURN(InodeItem * ndir, tx.Dir(new_parent));
  RETURN_IF_ERROR(Permission(c, *pdir, kMayExec));
  RETURN_IF_ERROR(Permission(c, *ndir, kMayExec));
  ASSIGN_OR_RETURN(auto src_found, tx.Find(parent, name));
  if (!src_found) return Status::Error(ENOENT);
  auto [src_seq, src] = *src_found;
  ASSIGN_OR_RETURN(InodeItem * si, tx.Inode(src));
  ASSIGN_OR_RETURN(auto dst_found, tx.Find(new_parent, new_name));
  if (exchange && !dst_found) return Status::Error(ENOENT);
  if (dst_found && (flags & kRenameNoReplace)) return Status::Error(EEXIST);
  if (ndir->nlink == 0) return Status::Error(ENOENT);
  InodeId dst = dst_found ? dst_found->second : InodeId();
  InodeItem* di = nullptr;
  if (dst_found) {
    ASSIGN_OR_RETURN(di, tx.Inode(dst));
  }

  // Whether `dir` is `ancestor` or lies below it (walking `parent` fields up).
  auto below = [&](InodeId dir, InodeId ancestor) -> Result<bool> {
    InodeId cur = dir;
    for (int depth = 0; depth < kMaxDirDepth; depth++) {
      if (cur == ancestor) return true;
      if (cur == kRootInode) return false;
      ASSIGN_OR_RETURN(InodeItem * d, tx.Inode(cur));
      cur = InodeId(d->parent);
    }
    return Status::Error(EIO, "directory parent chain loops");
  };
  if (S_ISDIR(si->mode) && parent != new_parent) {
    ASSIGN_OR_RETURN(bool loop, below(new_parent, src));
    if (loop) return Status::Error(EINVAL);
  }
  if (di && S_ISDIR(di->mode) && parent != new_parent) {
    ASSIGN_OR_RETURN(bool loop, below(parent, dst));
    if (loop) return Status::Error(exchange ? EINVAL : ENOTEMPTY);
  }
  if (dst == src) return std::optional<InodeId>();  // same inode: nothing to do

  RETURN_IF_ERROR(Permission(c, *pdir, kMayWrite | kMayExec));
  RETURN_IF_ERROR(StickyCheck(c, *pdir, *si));
  RETURN_IF_ERROR(Permission(c, *ndir, kMayWrite | kMayExec));
  RETURN_IF_ERROR(CheckRenameFlags(*pdir, *si, *ndir, di));
  if (di) {
    RETURN_IF_ERROR(StickyCheck(c, *ndir, *di));
    if (!exchange) {
      if (S_ISDIR(si->mode) && !S_ISDIR(di->mode)) return Status::Error(ENOTDIR);
      if (!S_ISDIR(si->mode) && S_ISDIR(di->mode)) return Status::Error(EISDIR);
    }
  }
  if (parent != new_parent) {
    // A directory that changes parent has its ".." rewritten.
    if (S_ISDIR(si->mode)) RETURN_IF_ERROR(Permission(c, *si, kMayWrite));
    if (exchange && S_ISDIR(di->mode)) RETURN_IF_ERROR(Permission(c, *di, kMayWrite));
  }
  if (di && !exchange && S_ISDIR(di->mode)) {
    ASSIGN_OR_RETURN(bool empty, tx.DirEmpty(dst));
    if (!empty) return Status::Error(ENOTEMPTY);
  }

  int64_t now = now_ns != 0 ? now_ns : NowNs();
  std::optional<InodeId> replaced;
  RETURN_IF_ERROR(tx.RemoveName(parent, name, src_seq));
  if (dst_found) RETURN_IF_ERROR(tx.RemoveName(new_parent, new_name, dst_found->first));
  // A directory that changes parent moves its ".." link from one to the other.
  auto reparent = [&](InodeItem& moved, InodeItem& from, InodeItem& to, InodeId to_ino) {
    if (!S_ISDIR(moved.mode) || parent == new_parent) return;
    from.nlink--;
    to.nlink++;
    moved.parent = to_ino.value;
  };
  RETURN_IF_ERROR(tx.AddName(new_parent, new_name, src, si->mode));
  reparent(*si, *pdir, *ndir, new_parent);
  si->ctime_ns = now;
  if (di && exchange) {
    RETURN_IF_ERROR(tx.AddName(parent, name, dst, di->mode));
    reparent(*di, *ndir, *pdir, parent);
    di->ctime_ns = now;
  } else if (di) {
    if (S_ISDIR(di->mode)) ndir->nlink--;
    tx.DropLink(dst, *di, now);
    replaced = dst;
  }
  if (flags & kRenameWhiteout) RETURN_IF_ERROR(AddWhiteout(tx, c, parent, *pdir, name, now));
  pdir->mtime_ns = pdir->ctime_ns = now;
  ndir->mtime_ns = ndir->ctime_ns = now;
  RETURN_IF_ERROR(tx.Commit());
  return replaced;
}

// ---------------------------------------------------------------- xattrs

Result<std::string> FileSystem::GetXattr(const Caller& c, InodeId ino, std::string_view name) {
  ASSIGN_OR_RETURN(XattrNs ns, ParseXattrName(name));
  Tx tx(*this);
  ASSIGN_OR_RETURN(InodeItem * i, tx.Inode(ino));
  RETURN_IF_ERROR(XattrPermission(c, *i, ns, /*write=*/false));
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
  Tx tx(*this);
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
      if (n.starts_with("trusted.") && !IsRoot(c)) continue;
      names.push_back(n);
    }
  }
  RETURN_IF_ERROR(it->status());
  return names;
}

Status FileSystem::SetXattr(const Caller& c, InodeId ino, std::string_view name,
                            std::string_view value, int flags, int64_t now_ns) {
  if (flags & ~(XATTR_CREATE | XATTR_REPLACE)) return Status::Error(EINVAL);
  if (name.empty() || name.size() > kMaxXattrNameBytes) return Status::Error(ERANGE);
  if (value.size() > kMaxXattrValueBytes) return Status::Error(E2BIG);
  ASSIGN_OR_RETURN(XattrNs ns, ParseXattrName(name));
  RETURN_IF_ERROR(CheckWritable());
  Tx tx(*this);
  ASSIGN_OR_RETURN(InodeItem * i, tx.Inode(ino));
  RETURN_IF_ERROR(XattrPermission(c, *i, ns, /*write=*/true));
  RETURN_IF_ERROR(CheckNotGuarded(*i));
  ItemKey key{ino.value, ItemType::kXattr, NameHash(name)};
  ASSIGN_OR_RETURN(std::optional<std::string> raw, tx.txn().Get(key));
  XattrItem x;
  if (raw) RETURN_IF_ERROR(DecodeXattr(*raw, &x));
  auto it =
      std::find_if(x.entries.begin(), x.entries.end(), [&](auto& e) { return e.first == name; });
  if (it != x.entries.end() && (flags & XATTR_CREATE)) return Status::Error(EEXIST);
  if (it == x.entries.end() && (flags & XATTR_REPLACE)) return Status::Error(ENODATA);
  if (it != x.entries.end()) {
    it->second = std::string(value);
  } else {
    x.entries.emplace_back(std::string(name), std::string(value));
  }
  tx.txn().Put(key, EncodeXattr(x));
  i->flags |= kInodeHasXattrs;
  i->ctime_ns = now_ns != 0 ? now_ns : NowNs();
  return tx.Commit();
}

Status FileSystem::RemoveXattr(const Caller& c, InodeId ino, std::string_view name,
                               int64_t now_ns) {
  ASSIGN_OR_RETURN(XattrNs ns, ParseXattrName(name));
  RETURN_IF_ERROR(CheckWritable());
  Tx tx(*this);
  ASSIGN_OR_RETURN(InodeItem * i, tx.Inode(ino));
  RETURN_IF_ERROR(RemoveXattrPermission(c, *i, name, ns));
  RETURN_IF_ERROR(CheckNotGuarded(*i));
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
  i->ctime_ns = now_ns != 0 ? now_ns : NowNs();
  return tx.Commit();
}

// ---------------------------------------------------------------- lifecycle

Status FileSystem::Reclaim(InodeId ino) {
  Tx tx(*this);
  ASSIGN_OR_RETURN(InodeItem * i, tx.Inode(ino));
  if (i->nlink > 0) return Status::Ok();
  RETURN_IF_ERROR(CheckWritable());
  std::vector<ItemKey> keys;
  auto it = tx.txn().NewIterator();
  for (it->Seek(InodeKey(ino)); it->Valid(); it->Next()) {
    ItemKey k = it->key();
    if (k.objectid != ino.value) break;
    if (k.type == ItemType::kExtent) {
      ExtentItem e;
      RETURN_IF_ERROR(DecodeExtent(it->value(), &e));
      tx.Free(DeviceRange{e.device_offset, e.length});
    }
    keys.push_back(k);
  }
  RETURN_IF_ERROR(it->status());
  for (const ItemKey& k : keys) tx.txn().Delete(k);
  tx.txn().Delete(OrphanKey(ino));
  tx.ForgetInode(ino);
  return tx.Commit();
}

Status FileSystem::Orphans(std::vector<InodeId>* out) {
  auto it = volume_.items().NewIterator();
  for (it->Seek(ItemKey{0, ItemType::kOrphan, 0}); it->Valid(); it->Next()) {
    ItemKey k = it->key();
    if (k.objectid != 0 || k.type != ItemType::kOrphan) break;
    out->push_back(InodeId(k.offset));
  }
  return it->status();
}

Status FileSystem::ReclaimAllOrphans() {
  std::vector<InodeId> orphans;
  RETURN_IF_ERROR(Orphans(&orphans));
  for (InodeId ino : orphans) RETURN_IF_ERROR(Reclaim(ino));
  if (!orphans.empty()) LOG(Info) << "reclaimed " << orphans.size() << " orphan inodes";
  return Status::Ok();
}

Result<InodeRange> FileSystem::AllocateInodes(uint64_t count) {
  SuperItem& s = volume_.mutable_super();
  if (count > (1ull << 40) || s.next_inode + count < s.next_inode) return Status::Error(EINVAL);
  RETURN_IF_ERROR(CheckWritable());
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
