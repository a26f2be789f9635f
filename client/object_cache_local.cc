// ObjectCache's local namespace changes (object_cache.h): creates, removals,
// renames and links made under EXCLUSIVE locks, before the server sees them.
#include <sys/stat.h>

#include "client/object_cache.h"
#include "common/fs_types.h"

namespace cohfs {

ObjectCache::Node* ObjectCache::OwnedLocked(InodeId ino, bool complete_dir) {
  auto it = nodes_.find(ino);
  if (it == nodes_.end()) return nullptr;
  Node& n = it->second;
  if (!n.has_attr || n.lock != LockMode::kExclusive) return nullptr;
  if (complete_dir && !n.complete) return nullptr;
  return &n;
}

bool ObjectCache::OwnsDirectory(InodeId dir) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = nodes_.find(dir);
  return it != nodes_.end() && it->second.has_attr && it->second.complete &&
         it->second.lock == LockMode::kExclusive;
}

std::optional<Result<Attr>> ObjectCache::CreateLocally(
    InodeId dir, const std::string& name, uint64_t seq,
    const std::function<Status(Attr& dir, Attr& child)>& make, const std::string& symlink_target) {
  std::lock_guard<std::mutex> l(mu_);
  Node* d = OwnedLocked(dir, /*complete_dir=*/true);
  if (!d) return std::nullopt;
  if (d->names.count(name)) return Result<Attr>(Status::Error(EEXIST));
  Attr dir_attr = d->attr;
  Attr child;
  Status st = make(dir_attr, child);
  if (!st.ok()) return Result<Attr>(st);
  d->attr = dir_attr;
  d->local_seq = seq;
  d->names[name] = child.ino;
  Node& c = nodes_[child.ino];  // may rehash: `d` is not used after this
  c.attr = child;
  c.has_attr = true;
  c.lock = LockMode::kExclusive;
  c.local_seq = seq;
  c.complete = S_ISDIR(child.mode);  // a new directory is empty
  c.xattrs = Xattrs{};
  if (S_ISLNK(child.mode)) c.symlink_target = symlink_target;
  return Result<Attr>(child);
}

std::optional<Result<Attr>> ObjectCache::RemoveLocally(InodeId dir, const std::string& name,
                                                       uint64_t seq, const RemoveRules& rules) {
  std::lock_guard<std::mutex> l(mu_);
  Node* d = OwnedLocked(dir, /*complete_dir=*/true);
  if (!d) return std::nullopt;
  auto e = d->names.find(name);
  if (e == d->names.end()) return Result<Attr>(Status::Error(ENOENT));
  Node* c = OwnedLocked(e->second);
  if (!c || (S_ISDIR(c->attr.mode) && !c->complete)) return std::nullopt;
  Attr dir_attr = d->attr, child = c->attr;
  Status st = rules(dir_attr, child, S_ISDIR(child.mode) && c->names.empty());
  if (!st.ok()) return Result<Attr>(st);
  d->attr = dir_attr;
  c->attr = child;
  d->local_seq = c->local_seq = seq;
  d->names.erase(e);
  return Result<Attr>(child);
}

std::optional<Status> ObjectCache::RenameLocally(InodeId from_dir, const std::string& name,
                                                 InodeId to_dir, const std::string& new_name,
                                                 uint32_t flags, uint64_t seq,
                                                 const std::function<Status(RenameAttrs&)>& rules) {
  std::lock_guard<std::mutex> l(mu_);
  Node* fd = OwnedLocked(from_dir, /*complete_dir=*/true);
  Node* td = OwnedLocked(to_dir, /*complete_dir=*/true);
  if (!fd || !td) return std::nullopt;
  const bool exchange = flags & kRenameExchange;
  auto s = fd->names.find(name);
  if (s == fd->names.end()) return Status::Error(ENOENT);
  const InodeId src = s->second;
  Node* sn = OwnedLocked(src);
  if (!sn) return std::nullopt;
  auto v = td->names.find(new_name);
  const InodeId dst = v == td->names.end() ? InodeId() : v->second;
  if (exchange && !dst.valid()) return Status::Error(ENOENT);
  if (dst.valid() && (flags & kRenameNoReplace)) return Status::Error(EEXIST);
  Node* vn = dst.valid() ? OwnedLocked(dst) : nullptr;
  if (dst.valid() && !vn) return std::nullopt;
  // A directory moved or replaced across parents: the server checks for
  // loops (a victim that is an ancestor of the source gives ENOTEMPTY, not
  // EISDIR: found by the simulation).
  const bool dir_involved = S_ISDIR(sn->attr.mode) || (vn != nullptr && S_ISDIR(vn->attr.mode));
  if (dir_involved && from_dir != to_dir) return std::nullopt;
  if (vn && S_ISDIR(vn->attr.mode) && !vn->complete) return std::nullopt;
  if (dst == src) return Status::Ok();  // one inode under both names: nothing to do

  Attr fa = fd->attr, ta = td->attr, ma = sn->attr, va = vn ? vn->attr : Attr{};
  RenameAttrs attrs{fa, from_dir == to_dir ? fa : ta, ma, vn ? &va : nullptr,
                    vn && S_ISDIR(va.mode) && vn->names.empty()};
  Status st = rules(attrs);
  if (!st.ok()) return st;
  fd->attr = fa;
  if (from_dir != to_dir) td->attr = ta;
  sn->attr = ma;
  fd->local_seq = td->local_seq = sn->local_seq = seq;
  if (vn) {
    vn->attr = va;
    vn->local_seq = seq;
  }
  fd->names.erase(name);
  td->names[new_name] = src;
  if (exchange) fd->names[name] = dst;
  return Status::Ok();
}

// Found by the simulation: a rename of one of an inode's names onto another
// leaves both, so an unknown victim of an inode with several names moves nothing
// for sure; and forgetting a listing keeps the names the kernel caches in it
// (its recall must still drop them).
void ObjectCache::NoteRenamed(InodeId dir, const std::string& name, InodeId new_dir,
                              const std::string& new_name, bool exchange, const Attr* moved,
                              LookupResult victim_state, const Attr& victim) {
  const bool know_victim = victim_state != LookupResult::kUnknown;
  const bool maybe_same = moved && (know_victim ? victim.ino == moved->ino : moved->nlink > 1);
  if (moved && know_victim && maybe_same) return;  // two names of one inode: both stay
  if (moved && !maybe_same && (!exchange || know_victim)) {
    RemoveName(dir, name);
    RemoveName(new_dir, new_name);
    AddName(new_dir, new_name, moved->ino);
    if (exchange) AddName(dir, name, victim.ino);
    return;
  }
  ForgetDirectory(dir);  // the kernel's names stay noted for the recall
  ForgetDirectory(new_dir);
}

std::optional<Result<Attr>> ObjectCache::LinkLocally(
    InodeId ino, InodeId dir, const std::string& name, uint64_t seq,
    const std::function<Status(Attr& dir, Attr& child)>& rules) {
  std::lock_guard<std::mutex> l(mu_);
  Node* d = OwnedLocked(dir, /*complete_dir=*/true);
  Node* c = OwnedLocked(ino);
  if (!d || !c) return std::nullopt;
  if (d->names.count(name)) return Result<Attr>(Status::Error(EEXIST));
  Attr dir_attr = d->attr, child = c->attr;
  Status st = rules(dir_attr, child);
  if (!st.ok()) return Result<Attr>(st);
  d->attr = dir_attr;
  c->attr = child;
  d->local_seq = c->local_seq = seq;
  d->names[name] = ino;
  return Result<Attr>(child);
}

std::optional<std::string> ObjectCache::SymlinkTarget(InodeId ino) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = nodes_.find(ino);
  if (it == nodes_.end() || it->second.lock == LockMode::kNone) return std::nullopt;
  return it->second.symlink_target;
}

std::optional<ObjectCache::Xattrs> ObjectCache::KnownXattrsOf(const Node& n) {
  if (!n.has_attr || n.lock == LockMode::kNone) return std::nullopt;
  if (n.xattrs) return n.xattrs;
  if (!(n.attr.flags & kInodeHasXattrs)) return Xattrs{};
  return std::nullopt;
}

std::optional<ObjectCache::Xattrs> ObjectCache::KnownXattrs(InodeId ino) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = nodes_.find(ino);
  if (it == nodes_.end()) return std::nullopt;
  return KnownXattrsOf(it->second);
}

std::optional<Status> ObjectCache::UpdateXattrs(
    InodeId ino, uint64_t seq, const std::function<Status(Attr&, Xattrs&)>& change) {
  std::lock_guard<std::mutex> l(mu_);
  Node* n = OwnedLocked(ino);
  if (!n) return std::nullopt;
  std::optional<Xattrs> known = KnownXattrsOf(*n);
  if (!known) return std::nullopt;
  Attr a = n->attr;
  Status st = change(a, *known);
  if (!st.ok()) return st;
  n->attr = a;
  n->xattrs = std::move(known);
  n->local_seq = seq;
  return Status::Ok();
}

}  // namespace cohfs
