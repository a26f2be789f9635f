#include "tests/sim/sim_model.h"

#include <errno.h>
#include <sys/stat.h>

#include <algorithm>

#include "common/check.h"

namespace cohfs::sim {

const std::vector<std::string>& Model::NamesIn(InodeId dir) {
  static const std::vector<std::string> kDirNames = {"a", "b", "c"};
  static const std::vector<std::string> kRootNames = {"a",  "b",  "c",  "f0", "f1",
                                                      "f2", "d0", "d1", "d2"};
  return dir == kRootInode ? kRootNames : kDirNames;
}

void Model::AddObject(const Attr& a, InodeId parent) {
  ModelObj& o = objs_[a.ino];
  o.dir = S_ISDIR(a.mode);
  o.parent = parent;
  o.modes = {a.mode & 07777};
  o.sizes = {a.size};
  o.nlinks = {a.nlink};
  if (!o.dir) {
    for (int b = 0; b < kBlocks; b++) o.blocks[b] = {std::string(kStampBytes, '\0')};
  }
}

void Model::AddName(InodeId dir, const std::string& name, InodeId child) {
  names_[{dir, name}] = {child};
}

InodeId Model::Name(InodeId dir, const std::string& name) const {
  auto it = names_.find({dir, name});
  return it == names_.end() ? InodeId() : it->second.back();
}

const std::vector<InodeId>& Model::History(InodeId dir, const std::string& name) {
  std::vector<InodeId>& h = names_[{dir, name}];
  if (h.empty()) h.push_back(InodeId());
  return h;
}

void Model::Put(InodeId dir, const std::string& name, InodeId child) {
  std::vector<InodeId>& h = names_[{dir, name}];
  if (h.empty()) h.push_back(InodeId());
  Push(h, child);
}

// A directory's entry count and link count move by `entries` and `links`.
void Model::Count(InodeId dir, int entries, int links) {
  ModelObj& d = objs_.at(dir);
  Push(d.sizes, d.sizes.back() + entries);
  Push(d.nlinks, d.nlinks.back() + links);
}

// As Tx::DropLink: a directory loses every link with its name.
void Model::DropLink(InodeId ino) {
  ModelObj& o = objs_.at(ino);
  uint32_t n = o.nlinks.back();
  Push(o.nlinks, o.dir ? 0u : (n > 0 ? n - 1 : 0u));
}

bool Model::Below(InodeId dir, InodeId ancestor) const {
  for (InodeId cur = dir;; cur = objs_.at(cur).parent) {
    if (cur == ancestor) return true;
    if (cur == kRootInode) return false;
  }
}

int Model::Make(InodeId dir, const std::string& name, InodeId ino, bool is_dir) {
  if (objs_.at(dir).nlinks.back() == 0) return ENOENT;
  if (Name(dir, name).valid()) return EEXIST;
  ModelObj& o = objs_[ino];
  o.dir = is_dir;
  o.parent = dir;
  o.modes = {is_dir ? 0755u : 0u};
  o.sizes = {0};
  o.nlinks = {is_dir ? 2u : 1u};
  if (!is_dir) {
    for (int b = 0; b < kBlocks; b++) o.blocks[b] = {std::string(kStampBytes, '\0')};
  }
  Put(dir, name, ino);
  Count(dir, 1, is_dir ? 1 : 0);
  return 0;
}

int Model::Remove(InodeId dir, const std::string& name, bool want_dir) {
  InodeId child = Name(dir, name);
  if (!child.valid()) return ENOENT;
  const ModelObj& c = objs_.at(child);
  if (want_dir && !c.dir) return ENOTDIR;
  if (!want_dir && c.dir) return EISDIR;
  if (want_dir && c.sizes.back() != 0) return ENOTEMPTY;
  Put(dir, name, InodeId());
  Count(dir, -1, want_dir ? -1 : 0);
  DropLink(child);
  return 0;
}

// In the order of FileSystem::Rename.
int Model::Rename(InodeId dir, const std::string& name, InodeId new_dir,
                  const std::string& new_name, uint32_t flags) {
  const bool exchange = flags & kRenameExchange;
  InodeId src = Name(dir, name);
  if (!src.valid()) return ENOENT;
  InodeId dst = Name(new_dir, new_name);
  if (exchange && !dst.valid()) return ENOENT;
  if (dst.valid() && (flags & kRenameNoReplace)) return EEXIST;
  if (objs_.at(new_dir).nlinks.back() == 0) return ENOENT;
  const bool src_dir = objs_.at(src).dir;
  const bool dst_dir = dst.valid() && objs_.at(dst).dir;
  if (src_dir && dir != new_dir && Below(new_dir, src)) return EINVAL;
  if (dst_dir && dir != new_dir && Below(dir, dst)) return exchange ? EINVAL : ENOTEMPTY;
  if (dst == src) return 0;
  if (dst.valid() && !exchange) {
    if (src_dir && !dst_dir) return ENOTDIR;
    if (!src_dir && dst_dir) return EISDIR;
    if (dst_dir && objs_.at(dst).sizes.back() != 0) return ENOTEMPTY;
  }
  // A directory that changes parent moves its ".." link along.
  auto reparent = [&](InodeId moved, InodeId from, InodeId to) {
    if (!objs_.at(moved).dir || from == to) return;
    Count(from, 0, -1);
    Count(to, 0, 1);
    objs_.at(moved).parent = to;
  };
  Put(dir, name, InodeId());
  Count(dir, -1, 0);
  if (dst.valid()) Count(new_dir, -1, 0);
  Put(new_dir, new_name, src);
  Count(new_dir, 1, 0);
  reparent(src, dir, new_dir);
  if (exchange) {
    Put(dir, name, dst);
    Count(dir, 1, 0);
    reparent(dst, new_dir, dir);
  } else if (dst.valid()) {
    if (dst_dir) Count(new_dir, 0, -1);
    DropLink(dst);
  }
  return 0;
}

int Model::Link(InodeId ino, InodeId new_dir, const std::string& new_name) {
  if (objs_.at(new_dir).nlinks.back() == 0) return ENOENT;
  if (Name(new_dir, new_name).valid()) return EEXIST;
  ModelObj& o = objs_.at(ino);
  if (o.dir) return EPERM;
  if (o.nlinks.back() == 0) return ENOENT;
  Push(o.nlinks, o.nlinks.back() + 1);
  Put(new_dir, new_name, ino);
  Count(new_dir, 1, 0);
  return 0;
}

// Sizes stay whole blocks: the blocks past the new end read as zeros after.
void Model::Truncate(InodeId ino, uint64_t size) {
  ModelObj& o = objs_.at(ino);
  CHECK(size % kStampBytes == 0);
  Push(o.sizes, size);
  for (int b = static_cast<int>(size / kStampBytes); b < kBlocks; b++) {
    o.blocks[b].push_back(std::string(kStampBytes, '\0'));
  }
}

void Model::Write(InodeId ino, int block, const std::string& data) {
  ModelObj& o = objs_.at(ino);
  o.blocks[block].push_back(data);
  Push(o.sizes, std::max(o.sizes.back(), (block + 1) * kStampBytes));
}

void Model::Chmod(InodeId ino, uint32_t mode) { Push(objs_.at(ino).modes, mode); }

}  // namespace cohfs::sim
