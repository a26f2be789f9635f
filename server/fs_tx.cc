#include "server/fs_tx.h"

#include <time.h>

#include <algorithm>

namespace cohfs {

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
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
    // Inline data occupies space too; a zero count would make tools treat
    // the file as entirely sparse.
    a.blocks = (i.size + 511) / 512;
  }
  a.atime_ns = i.atime_ns;
  a.mtime_ns = i.mtime_ns;
  a.ctime_ns = i.ctime_ns;
  a.flags = i.flags;
  return a;
}

FileSystem::Tx::Tx(FileSystem& fs)
    : v_(fs.volume_), commit_hook_(fs.commit_hook_), group_(fs.group_.txn ? &fs.group_ : nullptr) {
  if (group_ == nullptr) own_ = v_.items().BeginTxn();
  txn_ = group_ ? group_->txn : own_.get();
  ops_at_start_ = txn_->op_count();
}

FileSystem::Tx::~Tx() {
  // A change that failed after writing some of its items leaves the group
  // half-applied: the group must not commit.
  if (group_ && !committed_ && txn_->op_count() != ops_at_start_) group_->broken = true;
}

Result<InodeItem*> FileSystem::Tx::Inode(InodeId ino) {
  auto it = inodes_.find(ino.value);
  if (it != inodes_.end()) return &it->second.item;
  if (!ino.valid()) return Status::Error(ENOENT);
  ASSIGN_OR_RETURN(std::optional<std::string> raw, txn_->Get(InodeKey(ino)));
  if (!raw) return Status::Error(ENOENT);
  Cached c;
  RETURN_IF_ERROR(DecodeInode(*raw, &c.item));
  c.original = std::move(*raw);
  return &inodes_.emplace(ino.value, std::move(c)).first->second.item;
}

Result<InodeItem*> FileSystem::Tx::Dir(InodeId ino) {
  ASSIGN_OR_RETURN(InodeItem * d, Inode(ino));
  if (!S_ISDIR(d->mode)) return Status::Error(ENOTDIR);
  return d;
}

InodeItem* FileSystem::Tx::NewInode(InodeId ino, const InodeItem& item) {
  Cached& c = inodes_[ino.value];
  c.item = item;
  c.original.clear();
  return &c.item;
}

void FileSystem::Tx::ForgetInode(InodeId ino) { inodes_.erase(ino.value); }

Result<std::optional<std::pair<uint64_t, InodeId>>> FileSystem::Tx::Find(InodeId dir,
                                                                         std::string_view name) {
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

Status FileSystem::Tx::AddName(InodeId dir, std::string_view name, InodeId child,
                               uint32_t child_mode) {
  ASSIGN_OR_RETURN(InodeItem * d, Inode(dir));
  uint64_t seq = d->next_dir_seq++;
  d->size++;  // a directory's size is its number of entries
  ItemKey nk{dir.value, ItemType::kDirName, NameHash(name)};
  ASSIGN_OR_RETURN(std::optional<std::string> raw, txn_->Get(nk));
  DirNameItem names;
  if (raw) RETURN_IF_ERROR(DecodeDirName(*raw, &names));
  names.entries.emplace_back(std::string(name), seq);
  txn_->Put(nk, EncodeDirName(names));
  DirIndexItem idx{std::string(name), child.value, DtOf(child_mode)};
  txn_->Put(ItemKey{dir.value, ItemType::kDirIndex, seq}, EncodeDirIndex(idx));
  if (S_ISDIR(child_mode)) return Status::Ok();  // its way back is `parent`
  return AddRef(child, dir, +1);
}

Status FileSystem::Tx::AddRef(InodeId child, InodeId dir, int delta) {
  ItemKey key{child.value, ItemType::kInodeRef, dir.value};
  ASSIGN_OR_RETURN(std::optional<std::string> raw, txn_->Get(key));
  InodeRefItem ref;
  if (raw) RETURN_IF_ERROR(DecodeInodeRef(*raw, &ref));
  if (delta < 0 && ref.names == 0) return Status::Error(EIO, "name without INODE_REF");
  ref.names = static_cast<uint32_t>(static_cast<int64_t>(ref.names) + delta);
  if (ref.names == 0) {
    txn_->Delete(key);
  } else {
    txn_->Put(key, EncodeInodeRef(ref));
  }
  return Status::Ok();
}

Status FileSystem::Tx::RemoveName(InodeId dir, std::string_view name, uint64_t seq) {
  ASSIGN_OR_RETURN(InodeItem * d, Inode(dir));
  CHECK_MSG(d->size > 0, "directory entry count underflow");
  d->size--;
  ItemKey nk{dir.value, ItemType::kDirName, NameHash(name)};
  ASSIGN_OR_RETURN(std::optional<std::string> raw, txn_->Get(nk));
  if (!raw) return Status::Error(EIO, "missing DIR_NAME");
  DirNameItem names;
  RETURN_IF_ERROR(DecodeDirName(*raw, &names));
  std::erase_if(names.entries, [&](auto& e) { return e.first == name && e.second == seq; });
  if (names.entries.empty()) {
    txn_->Delete(nk);
  } else {
    txn_->Put(nk, EncodeDirName(names));
  }
  ItemKey ik{dir.value, ItemType::kDirIndex, seq};
  ASSIGN_OR_RETURN(std::optional<std::string> idx, txn_->Get(ik));
  if (!idx) return Status::Error(EIO, "DIR_NAME without DIR_INDEX");
  DirIndexItem entry;
  RETURN_IF_ERROR(DecodeDirIndex(*idx, &entry));
  txn_->Delete(ik);
  if (entry.file_type == DtOf(S_IFDIR)) return Status::Ok();
  return AddRef(InodeId(entry.child), dir, -1);
}

Result<std::vector<InodeId>> FileSystem::Tx::Parents(InodeId ino) {
  std::vector<InodeId> out;
  auto it = txn_->NewIterator();
  for (it->Seek(ItemKey{ino.value, ItemType::kInodeRef, 0}); it->Valid(); it->Next()) {
    ItemKey k = it->key();
    if (k.objectid != ino.value || k.type != ItemType::kInodeRef) break;
    out.push_back(InodeId(k.offset));
  }
  RETURN_IF_ERROR(it->status());
  return out;
}

Result<bool> FileSystem::Tx::DirEmpty(InodeId dir) {
  // The entry count (fsck-checked) answers without scanning past the
  // tombstones of deleted entries.
  ASSIGN_OR_RETURN(InodeItem * d, Inode(dir));
  return d->size == 0;
}

void FileSystem::Tx::DropLink(InodeId ino, InodeItem& i, int64_t now) {
  if (S_ISDIR(i.mode)) {
    i.nlink = 0;
  } else if (i.nlink > 0) {
    i.nlink--;
  }
  i.ctime_ns = now;
  if (i.nlink == 0) txn_->Put(OrphanKey(ino), "");
}

Result<ExtentList> FileSystem::Tx::Extents(InodeId ino, uint64_t start, uint64_t end) {
  ExtentList out;
  if (start >= end) return out;
  auto it = txn_->NewIterator();
  // No extent is longer than kMaxExtentBytes, so one covering `start` begins after this.
  uint64_t from = start > kMaxExtentBytes ? start - kMaxExtentBytes : 0;
  for (it->Seek(ExtentKey(ino, from)); it->Valid(); it->Next()) {
    ItemKey k = it->key();
    if (k.objectid != ino.value || k.type != ItemType::kExtent || k.offset >= end) break;
    ExtentItem e;
    RETURN_IF_ERROR(DecodeExtent(it->value(), &e));
    if (k.offset + e.length > start) out.emplace_back(k.offset, std::move(e));
  }
  RETURN_IF_ERROR(it->status());
  return out;
}

Result<bool> FileSystem::Tx::HasWrittenData(InodeId ino, uint64_t start, uint64_t end) {
  ASSIGN_OR_RETURN(ExtentList extents, Extents(ino, start, end));
  return std::any_of(extents.begin(), extents.end(),
                     [](const auto& e) { return !(e.second.flags & ExtentItem::kUnwritten); });
}

void FileSystem::Tx::Free(DeviceRange range) {
  v_.allocator().Free(range, *txn_);
  freed_space_ = true;
  if (group_) group_->freed_space = true;
}

Status FileSystem::Tx::Commit() {
  CHECK_MSG(!committed_, "a Tx commits once");
  for (auto& [ino, c] : inodes_) {
    std::string encoded = EncodeInode(c.item);
    if (encoded != c.original) txn_->Put(InodeKey(InodeId(ino)), encoded);
  }
  committed_ = true;
  if (group_) return Status::Ok();  // the group commits once, at its end
  if (commit_hook_) commit_hook_(*txn_);
  return v_.items().Commit(*txn_, /*sync=*/false);
}

FileSystem::Group::Group(FileSystem& fs) : fs_(fs), txn_(fs.volume_.items().BeginTxn()) {
  CHECK_MSG(fs_.group_.txn == nullptr, "one FileSystem::Group at a time");
  fs_.group_ = OpenGroup{txn_.get(), false, false};
}

FileSystem::Group::~Group() {
  if (fs_.group_.txn == txn_.get()) fs_.group_ = OpenGroup{};
  // txn_, unless committed, runs its abort hooks as it goes.
}

Status FileSystem::Group::Commit() {
  CHECK_MSG(fs_.group_.txn == txn_.get(), "a Group commits once");
  bool broken = fs_.group_.broken;
  fs_.group_ = OpenGroup{};
  if (broken) return Status::Error(EIO, "a change of the group failed half-written");
  RETURN_IF_ERROR(fs_.CheckWritable());
  if (fs_.commit_hook_) fs_.commit_hook_(*txn_);
  return fs_.volume_.items().Commit(*txn_, /*sync=*/false);
}

}  // namespace cohfs
