#include "client/object_cache.h"

#include <algorithm>

#include "common/permissions.h"

namespace cohfs {

LockMode ObjectCache::EffectiveGrantLocked(InodeId ino, LockMode granted,
                                           uint64_t request_id) const {
  auto r = revoked_.find(ino);
  if (r == revoked_.end()) return granted;
  for (const Revocation& v : r->second) {
    if (request_id <= v.request_id) granted = std::min(granted, v.keep);
  }
  return granted;
}

// Keeps every revocation that caps some request more than the others do: a
// later recall to SHARED must not lift an earlier release's cap on older replies.
void ObjectCache::AddRevocationLocked(InodeId ino, Revocation r) {
  std::vector<Revocation>& list = revoked_[ino];
  std::erase_if(list, [&](const Revocation& v) {
    return v.request_id <= r.request_id && v.keep >= r.keep;  // dominated by r
  });
  for (const Revocation& v : list) {
    if (v.request_id >= r.request_id && v.keep <= r.keep) return;  // r is dominated
  }
  list.push_back(r);
}

Attr ObjectCache::PutAttr(const Attr& attr, LockMode lock, ReplyOrder order, bool data_held) {
  std::lock_guard<std::mutex> l(mu_);
  Node& n = nodes_[attr.ino];
  lock = EffectiveGrantLocked(attr.ino, lock, order.request_id);
  if (n.lock == LockMode::kNone && lock != LockMode::kNone) ForgetUnheldLocked(n);
  if (lock > n.lock) n.lock = lock;
  Touch(n);
  if (n.has_attr && n.local_seq > order.log_seq)
    return n.attr;  // the reply predates a local change
  Attr kept = n.attr;
  bool keep_data = n.has_attr && (data_held || n.data_seq > order.log_seq);
  n.attr = attr;
  if (keep_data) {
    // The reply lacks data written here; an unlink's link count it has (a
    // stale link count after an unlink was found by the simulation).
    n.attr.size = kept.size;
    n.attr.blocks = kept.blocks;
    n.attr.mtime_ns = kept.mtime_ns;
    n.attr.ctime_ns = std::max(kept.ctime_ns, attr.ctime_ns);
  }
  n.has_attr = true;
  n.xattrs.reset();  // the server's word now: its flag tells whether any exist
  return n.attr;
}

std::optional<Result<Attr>> ObjectCache::UpdateAttr(InodeId ino, uint64_t seq,
                                                    const std::function<Status(Attr&)>& change) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = nodes_.find(ino);
  if (it == nodes_.end() || !it->second.has_attr || it->second.lock != LockMode::kExclusive) {
    return std::nullopt;
  }
  Attr a = it->second.attr;
  Status st = change(a);
  if (!st.ok()) return Result<Attr>(st);
  it->second.attr = a;
  it->second.local_seq = seq;
  return Result<Attr>(a);
}

void ObjectCache::SetLock(InodeId ino, LockMode lock, uint64_t request_id) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = nodes_.find(ino);
  if (it == nodes_.end()) return;
  Node& n = it->second;
  LockMode granted = EffectiveGrantLocked(ino, lock, request_id);
  // A grant that came without attributes does not vouch for attributes kept
  // from before it: nothing kept them from changing while no lock was held.
  if (n.lock == LockMode::kNone && granted != LockMode::kNone) {
    n.has_attr = false;
    ForgetUnheldLocked(n);
  }
  n.lock = granted;
}

std::vector<std::string> ObjectCache::Revoke(InodeId ino, LockMode keep, uint64_t last_request_id) {
  std::lock_guard<std::mutex> l(mu_);
  AddRevocationLocked(ino, Revocation{last_request_id, keep});
  std::vector<std::string> names;
  auto it = nodes_.find(ino);
  if (it == nodes_.end()) return names;
  Node& n = it->second;
  n.lock = std::min(n.lock, keep);
  if (keep != LockMode::kNone) return names;
  n.xattrs.reset();
  DropContentLocked(n);
  n.complete = false;
  n.names.clear();
  names.assign(n.kernel_names.begin(), n.kernel_names.end());
  n.kernel_names.clear();
  return names;
}

void ObjectCache::PruneRevocations(uint64_t oldest_unanswered_id) {
  std::lock_guard<std::mutex> l(mu_);
  for (auto it = revoked_.begin(); it != revoked_.end();) {
    std::erase_if(it->second,
                  [&](const Revocation& v) { return v.request_id < oldest_unanswered_id; });
    it = it->second.empty() ? revoked_.erase(it) : std::next(it);
  }
}

void ObjectCache::NoteKernelName(InodeId dir, const std::string& name) {
  std::lock_guard<std::mutex> l(mu_);
  nodes_[dir].kernel_names.insert(name);
}

bool ObjectCache::NoteKernelNameIfHeld(InodeId dir, const std::string& name) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = nodes_.find(dir);
  if (it == nodes_.end() || it->second.lock == LockMode::kNone) return false;
  it->second.kernel_names.insert(name);
  return true;
}

bool ObjectCache::RevokeIfForgotten(InodeId ino, uint64_t last_request_id, LockMode* held) {
  std::lock_guard<std::mutex> l(mu_);
  auto forgotten = forgotten_locks_.find(ino);
  LockMode was = forgotten == forgotten_locks_.end() ? LockMode::kNone : forgotten->second;
  if (forgotten != forgotten_locks_.end()) forgotten_locks_.erase(forgotten);
  if (held) *held = was;
  auto it = nodes_.find(ino);
  if (it != nodes_.end() && it->second.nlookup > 0) return false;
  if (it != nodes_.end()) {
    DropContentLocked(it->second);
    nodes_.erase(it);
  }
  AddRevocationLocked(ino, Revocation{last_request_id, LockMode::kNone});
  return true;
}

std::optional<Attr> ObjectCache::GetAttr(InodeId ino) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = nodes_.find(ino);
  if (it == nodes_.end() || !it->second.has_attr || it->second.lock == LockMode::kNone) {
    return std::nullopt;
  }
  Touch(it->second);
  return it->second.attr;
}

void ObjectCache::NoteLocalChange(InodeId ino, uint64_t seq) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = nodes_.find(ino);
  if (it != nodes_.end() && it->second.has_attr) it->second.data_seq = seq;
}

void ObjectCache::NoteLocalWrite(InodeId ino, const Caller& c, uint64_t end, int64_t now_ns,
                                 uint64_t seq) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = nodes_.find(ino);
  if (it == nodes_.end() || !it->second.has_attr) return;
  it->second.data_seq = seq;
  Attr& a = it->second.attr;
  a.size = std::max(a.size, end);
  a.mtime_ns = a.ctime_ns = now_ns;
  KillPrivilegesOnWrite(c, a);
}

LockMode ObjectCache::lock(InodeId ino) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = nodes_.find(ino);
  return it == nodes_.end() ? LockMode::kNone : it->second.lock;
}

ObjectCache::LookupResult ObjectCache::Lookup(InodeId parent, const std::string& name,
                                              Attr* attr) const {
  std::lock_guard<std::mutex> l(mu_);
  auto p = nodes_.find(parent);
  if (p == nodes_.end() || p->second.lock == LockMode::kNone) return LookupResult::kUnknown;
  auto e = p->second.names.find(name);
  if (e == p->second.names.end()) {
    return p->second.complete ? LookupResult::kNegative : LookupResult::kUnknown;
  }
  auto c = nodes_.find(e->second);
  if (c == nodes_.end() || !c->second.has_attr || c->second.lock == LockMode::kNone) {
    return LookupResult::kUnknown;
  }
  *attr = c->second.attr;
  Touch(p->second);
  Touch(c->second);
  return LookupResult::kFound;
}

std::optional<InodeId> ObjectCache::PeekName(InodeId dir, const std::string& name) const {
  std::lock_guard<std::mutex> l(mu_);
  auto p = nodes_.find(dir);
  if (p == nodes_.end() || p->second.lock == LockMode::kNone) return std::nullopt;
  auto e = p->second.names.find(name);
  if (e != p->second.names.end()) return e->second;
  if (p->second.complete) return InodeId();
  return std::nullopt;
}

void ObjectCache::SetDirectory(InodeId dir, const std::vector<DirEntry>& entries,
                               ReplyOrder order) {
  std::lock_guard<std::mutex> l(mu_);
  if (EffectiveGrantLocked(dir, LockMode::kShared, order.request_id) == LockMode::kNone) return;
  Node& n = nodes_[dir];
  if (n.complete && n.local_seq > order.log_seq) return;
  n.complete = true;
  n.names.clear();
  for (const DirEntry& e : entries) n.names[e.name] = e.attr.ino;
}

// A directory's names (or a file's content) noted while no lock was held (a
// reply that came without a valid grant) were not kept current: the lock
// regained does not vouch for them. Found by the simulation (a page absorbed
// from a reply that crossed a server restart).
void ObjectCache::ForgetUnheldLocked(Node& n) {
  n.complete = false;
  n.names.clear();
  DropContentLocked(n);
}

void ObjectCache::DropContentLocked(Node& n) {
  if (!n.content) return;
  content_bytes_ -= n.content->size();
  n.content.reset();
}

void ObjectCache::PutContent(InodeId ino, std::string_view data) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = nodes_.find(ino);
  if (it == nodes_.end()) return;
  Node& n = it->second;
  if (n.lock == LockMode::kNone || !n.has_attr || n.attr.size != data.size()) return;
  DropContentLocked(n);
  if (content_bytes_ + data.size() > kMaxContentBytes) return;
  n.content.emplace(data);
  n.content_mtime_ns = n.attr.mtime_ns;
  content_bytes_ += data.size();
}

bool ObjectCache::ReadContent(InodeId ino, uint64_t offset, size_t len, std::string* out) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = nodes_.find(ino);
  if (it == nodes_.end() || !it->second.content) return false;
  Node& n = it->second;
  if (n.lock == LockMode::kNone || !n.has_attr || n.attr.size != n.content->size() ||
      n.attr.mtime_ns != n.content_mtime_ns) {
    DropContentLocked(n);
    return false;
  }
  size_t from = static_cast<size_t>(std::min<uint64_t>(offset, n.content->size()));
  out->assign(*n.content, from, len);
  Touch(n);
  return true;
}

void ObjectCache::AddPage(InodeId dir, const std::vector<DirEntry>& entries, ReplyOrder order) {
  std::lock_guard<std::mutex> l(mu_);
  if (EffectiveGrantLocked(dir, LockMode::kShared, order.request_id) == LockMode::kNone) return;
  auto it = nodes_.find(dir);
  if (it == nodes_.end() || it->second.lock == LockMode::kNone) return;
  Node& n = it->second;
  if (n.complete || n.local_seq > order.log_seq) return;
  if (n.names.size() + entries.size() > kMaxPageNames) n.names.clear();
  for (const DirEntry& e : entries) n.names[e.name] = e.attr.ino;
}

void ObjectCache::AddName(InodeId dir, const std::string& name, InodeId child) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = nodes_.find(dir);
  if (it != nodes_.end() && it->second.complete) it->second.names[name] = child;
}

void ObjectCache::RemoveName(InodeId dir, const std::string& name) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = nodes_.find(dir);
  if (it != nodes_.end()) it->second.names.erase(name);
}

std::vector<std::string> ObjectCache::ForgetDirectory(InodeId dir) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = nodes_.find(dir);
  if (it == nodes_.end()) return {};
  it->second.complete = false;
  it->second.names.clear();
  return std::vector<std::string>(it->second.kernel_names.begin(), it->second.kernel_names.end());
}

void ObjectCache::AddLookup(InodeId ino, uint64_t n) {
  std::lock_guard<std::mutex> l(mu_);
  nodes_[ino].nlookup += n;
}

bool ObjectCache::Forget(InodeId ino, uint64_t n) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = nodes_.find(ino);
  if (it == nodes_.end()) return false;
  Node& node = it->second;
  node.nlookup = node.nlookup > n ? node.nlookup - n : 0;
  if (node.nlookup > 0) return false;
  if (node.lock != LockMode::kNone) forgotten_locks_[ino] = node.lock;
  DropContentLocked(node);
  nodes_.erase(it);
  return true;
}

std::vector<InodeId> ObjectCache::LocksOverBound(size_t bound) const {
  std::vector<std::pair<uint64_t, InodeId>> locked;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& [ino, node] : nodes_) {
      if (node.lock != LockMode::kNone && ino != kRootInode)
        locked.emplace_back(node.last_use, ino);
    }
  }
  if (locked.size() <= bound) return {};
  size_t n = std::min(locked.size() - bound + bound / 16, locked.size());
  std::nth_element(locked.begin(), locked.begin() + static_cast<ptrdiff_t>(n), locked.end());
  std::sort(locked.begin(), locked.begin() + static_cast<ptrdiff_t>(n));
  std::vector<InodeId> out;
  for (size_t i = 0; i < n; i++) out.push_back(locked[i].second);
  return out;
}

bool ObjectCache::KernelHas(InodeId ino) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = nodes_.find(ino);
  return it != nodes_.end() && it->second.nlookup > 0;
}

void ObjectCache::ReclaimState(std::vector<std::pair<InodeId, LockMode>>* locks,
                               std::vector<InodeId>* refs,
                               std::vector<std::pair<InodeId, LockMode>>* forgotten) const {
  std::lock_guard<std::mutex> l(mu_);
  if (forgotten) forgotten->assign(forgotten_locks_.begin(), forgotten_locks_.end());
  for (const auto& [ino, n] : nodes_) {
    if (n.lock != LockMode::kNone) locks->emplace_back(ino, n.lock);
    bool known_linked = n.lock != LockMode::kNone && n.has_attr && n.attr.nlink > 0;
    if (n.nlookup > 0 && !known_linked) refs->push_back(ino);
  }
}

size_t ObjectCache::size() const {
  std::lock_guard<std::mutex> l(mu_);
  return nodes_.size();
}

}  // namespace cohfs
