// FsClient's local changes (DESIGN §5, §6): attribute changes and the whole
// namespace (create, mkdir, symlink, mknod, link, unlink, rmdir, rename),
// applied to the cache under EXCLUSIVE locks, answered at once and logged.
// Every rule here is the server's (server/file_system.cc), in the same order,
// so the server reaches the same result when the commit arrives; it checks
// again and reports a refused change to the next close or fsync.
#include <sys/stat.h>
#include <sys/xattr.h>

#include "client/fs_client.h"
#include "common/inode_flags.h"
#include "common/limits.h"
#include "common/permissions.h"
#include "common/xattr_rules.h"

namespace cohfs {
namespace {

// Truncation's own checks (before setattr_prepare's).
Status CheckTruncate(const Caller& c, const Attr& a, const SetAttrRequest& req) {
  if (S_ISDIR(a.mode)) return Status::Error(EISDIR);
  if (!S_ISREG(a.mode)) return Status::Error(EINVAL);
  if (req.size > kMaxFileBytes) return Status::Error(EFBIG);
  if (!req.has_open_handle) RETURN_IF_ERROR(Permission(c, a, kMayWrite));
  return Status::Ok();
}

// may_delete: write and search permission on the directory, the sticky bit.
Status MayDelete(const Caller& c, const Attr& dir, const Attr& child) {
  RETURN_IF_ERROR(Permission(c, dir, kMayWrite | kMayExec));
  return StickyCheck(c, dir, child);
}

// Drops one name of `child` (a directory loses all), as Tx::DropLink does.
void DropLink(Attr& child, int64_t now) {
  if (S_ISDIR(child.mode)) {
    child.nlink = 0;
  } else if (child.nlink > 0) {
    child.nlink--;
  }
  child.ctime_ns = now;
}

Status RenameRules(const Caller& c, ObjectCache::RenameAttrs& r, bool exchange, int64_t now) {
  RETURN_IF_ERROR(Permission(c, r.from_dir, kMayExec));
  RETURN_IF_ERROR(Permission(c, r.to_dir, kMayExec));
  if (r.to_dir.nlink == 0) return Status::Error(ENOENT);
  RETURN_IF_ERROR(MayDelete(c, r.from_dir, r.moved));
  RETURN_IF_ERROR(Permission(c, r.to_dir, kMayWrite | kMayExec));
  Attr* v = r.victim;
  // As FileSystem::CheckRenameFlags.
  RETURN_IF_ERROR(CheckDirChange(r.from_dir, /*removes=*/true));
  RETURN_IF_ERROR(CheckDirChange(r.to_dir, /*removes=*/v != nullptr));
  RETURN_IF_ERROR(CheckNotGuarded(r.moved));
  if (v) RETURN_IF_ERROR(CheckNotGuarded(*v));
  if (v) {
    RETURN_IF_ERROR(StickyCheck(c, r.to_dir, *v));
    if (!exchange && S_ISDIR(r.moved.mode) && !S_ISDIR(v->mode)) return Status::Error(ENOTDIR);
    if (!exchange && !S_ISDIR(r.moved.mode) && S_ISDIR(v->mode)) return Status::Error(EISDIR);
    if (!exchange && S_ISDIR(v->mode) && !r.victim_empty) return Status::Error(ENOTEMPTY);
  }
  // The directory sizes count entries, as the server's AddName/RemoveName do
  // (from_dir and to_dir may be one directory).
  r.from_dir.size--;
  if (v) r.to_dir.size--;
  r.to_dir.size++;
  r.moved.ctime_ns = now;
  if (v && exchange) {
    r.from_dir.size++;
    v->ctime_ns = now;
  } else if (v) {
    if (S_ISDIR(v->mode)) r.to_dir.nlink--;
    DropLink(*v, now);
  }
  r.from_dir.mtime_ns = r.from_dir.ctime_ns = now;
  r.to_dir.mtime_ns = r.to_dir.ctime_ns = now;
  return Status::Ok();
}

// A logged change of `ino` by `c` at `now`; `touched`: the inodes whose
// cached state it changed (to re-learn if the server refuses it).
WritebackLog::Op NewOp(WritebackLog::Op::Kind kind, InodeId ino, const Caller& c, int64_t now,
                       std::vector<InodeId> touched) {
  WritebackLog::Op op;
  op.kind = kind;
  op.ino = ino;
  op.caller = c;
  op.now_ns = now;
  op.touched = std::move(touched);
  return op;
}

}  // namespace

void FsClient::AppendLocked(WritebackLog::Op op) {
  stats_.local_changes++;
  log_.Append(std::move(op));
  if (log_.size() >= kMaxLogOps) ShipLogLocked();
}

std::optional<Result<Attr>> FsClient::SetAttrLocally(InodeId ino, const Caller& c,
                                                     SetAttrRequest req) {
  std::lock_guard<std::mutex> l(send_mu_);
  req.now_ns = Now();
  auto result = cache_.UpdateAttr(ino, log_.last_seq() + 1, [&](Attr& a) -> Status {
    if (req.mask & kSetSize) RETURN_IF_ERROR(CheckTruncate(c, a, req));
    RETURN_IF_ERROR(CheckAttrChange(c, a, req));
    RETURN_IF_ERROR(CheckSetAttrFlags(a, req.mask));
    if (req.mask & kSetSize) {
      if (req.size != a.size) a.mtime_ns = req.now_ns;
      // Blocks past the new end go; a grown file is sparse.
      a.blocks = std::min(a.blocks, (req.size + kBlockBytes - 1) / kBlockBytes * (kBlockBytes / 512));
      a.size = req.size;
      KillPrivilegesOnWrite(c, a);
    }
    ApplyAttrChange(c, a, req, req.now_ns);
    return Status::Ok();
  });
  if (!result || !result->ok()) return result;
  WritebackLog::Op op = NewOp(WritebackLog::Op::Kind::kSetAttr, ino, c, req.now_ns, {ino});
  op.setattr = req;
  AppendLocked(std::move(op));
  return result;
}

std::optional<Result<Attr>> FsClient::MakeLocally(InodeId parent, const std::string& name,
                                                  const Caller& c, const NewNode& node,
                                                  InodeId ino) {
  uint32_t type = node.mode & S_IFMT;
  if (type == S_IFCHR || type == S_IFBLK) return std::nullopt;  // devices: the server decides
  if (type == S_IFLNK && (node.target.empty() || node.target.size() > kMaxSymlinkBytes)) {
    return std::nullopt;  // the server gives the error
  }
  std::lock_guard<std::mutex> l(send_mu_);
  const int64_t now = Now();
  const uint32_t mode = type | (node.mode & 07777);
  auto make = [&](Attr& dir, Attr& f) -> Status {
    // As FileSystem::CreateNode decides it on the server.
    RETURN_IF_ERROR(Permission(c, dir, kMayWrite | kMayExec));
    if (dir.nlink == 0) return Status::Error(ENOENT);
    RETURN_IF_ERROR(CheckDirChange(dir, /*removes=*/false));
    f.ino = ino;
    f.generation = rpc_.welcome().server_generation;
    f.mode = mode;
    InitNewOwner(c, dir, type, f);
    f.nlink = type == S_IFDIR ? 2 : 1;
    f.size = type == S_IFLNK ? node.target.size() : 0;
    f.atime_ns = f.mtime_ns = f.ctime_ns = now;
    if (type == S_IFDIR) dir.nlink++;
    dir.mtime_ns = dir.ctime_ns = now;
    dir.size++;  // a directory's size is its entry count
    return Status::Ok();
  };
  auto result = cache_.CreateLocally(parent, name, log_.last_seq() + 1, make, node.target);
  if (!result || !result->ok()) return result;
  WritebackLog::Op op = NewOp(WritebackLog::Op::Kind::kCreate, ino, c, now, {ino, parent});
  op.parent = parent;
  op.name = name;
  op.mode = (*result)->mode;  // the server's InitNewOwner may add S_ISGID to a directory
  op.target = node.target;
  AppendLocked(std::move(op));
  return result;
}

std::optional<Status> FsClient::RemoveLocally(InodeId parent, const std::string& name,
                                              const Caller& c, bool want_dir) {
  std::lock_guard<std::mutex> l(send_mu_);
  const int64_t now = Now();
  auto rules = [&](Attr& dir, Attr& child, bool child_empty) -> Status {
    // As FileSystem::RemoveEntry decides it.
    RETURN_IF_ERROR(Permission(c, dir, kMayExec));
    RETURN_IF_ERROR(MayDelete(c, dir, child));
    RETURN_IF_ERROR(CheckDirChange(dir, /*removes=*/true));
    RETURN_IF_ERROR(CheckNotGuarded(child));
    if (want_dir && !S_ISDIR(child.mode)) return Status::Error(ENOTDIR);
    if (!want_dir && S_ISDIR(child.mode)) return Status::Error(EISDIR);
    if (want_dir) {
      if (!child_empty) return Status::Error(ENOTEMPTY);
      dir.nlink--;
    }
    dir.size--;
    DropLink(child, now);
    dir.mtime_ns = dir.ctime_ns = now;
    return Status::Ok();
  };
  auto result = cache_.RemoveLocally(parent, name, log_.last_seq() + 1, rules);
  if (!result) return std::nullopt;
  if (!result->ok()) return result->status();
  const InodeId child = (*result)->ino;
  WritebackLog::Op op =
      NewOp(want_dir ? WritebackLog::Op::Kind::kRmdir : WritebackLog::Op::Kind::kUnlink, child, c,
            now, {parent, child});
  op.parent = parent;
  op.name = name;
  AppendLocked(std::move(op));
  return Status::Ok();
}

std::optional<Status> FsClient::RenameLocally(InodeId parent, const std::string& name,
                                              InodeId new_parent, const std::string& new_name,
                                              uint32_t flags, const Caller& c) {
  std::lock_guard<std::mutex> l(send_mu_);
  const int64_t now = Now();
  InodeId moved, victim;
  auto rules = [&](ObjectCache::RenameAttrs& r) -> Status {
    moved = r.moved.ino;
    victim = r.victim ? r.victim->ino : InodeId();
    return RenameRules(c, r, flags & kRenameExchange, now);
  };
  auto st = cache_.RenameLocally(parent, name, new_parent, new_name, flags, log_.last_seq() + 1,
                                 rules);
  if (!st || !st->ok() || !moved.valid()) return st;  // (no inode: a rename onto itself)
  WritebackLog::Op op =
      NewOp(WritebackLog::Op::Kind::kRename, moved, c, now, {moved, parent, new_parent});
  op.parent = parent;
  op.name = name;
  op.new_parent = new_parent;
  op.new_name = new_name;
  op.flags = flags;
  if (victim.valid()) op.touched.push_back(victim);
  AppendLocked(std::move(op));
  return st;
}

std::optional<Result<Attr>> FsClient::LinkLocally(InodeId ino, InodeId new_parent,
                                                  const std::string& new_name, const Caller& c) {
  std::lock_guard<std::mutex> l(send_mu_);
  const int64_t now = Now();
  auto rules = [&](Attr& dir, Attr& child) -> Status {
    // As FileSystem::Link decides it.
    RETURN_IF_ERROR(Permission(c, dir, kMayExec));
    if (dir.nlink == 0) return Status::Error(ENOENT);
    RETURN_IF_ERROR(Permission(c, dir, kMayWrite | kMayExec));
    RETURN_IF_ERROR(CheckDirChange(dir, /*removes=*/false));
    RETURN_IF_ERROR(CheckNotGuarded(child));
    if (S_ISDIR(child.mode)) return Status::Error(EPERM);
    if (child.nlink == 0) return Status::Error(ENOENT);
    if (child.nlink >= kMaxLinks) return Status::Error(EMLINK);
    child.nlink++;
    child.ctime_ns = now;
    dir.size++;
    dir.mtime_ns = dir.ctime_ns = now;
    return Status::Ok();
  };
  auto result = cache_.LinkLocally(ino, new_parent, new_name, log_.last_seq() + 1, rules);
  if (!result || !result->ok()) return result;
  WritebackLog::Op op = NewOp(WritebackLog::Op::Kind::kLink, ino, c, now, {ino, new_parent});
  op.new_parent = new_parent;
  op.new_name = new_name;
  AppendLocked(std::move(op));
  return result;
}

std::optional<Status> FsClient::SetXattrLocally(InodeId ino, const std::string& name,
                                                const std::string& value, int flags,
                                                const Caller& c) {
  // As FileSystem::SetXattr decides it.
  if (flags & ~(XATTR_CREATE | XATTR_REPLACE)) return Status::Error(EINVAL);
  if (name.empty() || name.size() > kMaxXattrNameBytes) return Status::Error(ERANGE);
  if (value.size() > kMaxXattrValueBytes) return Status::Error(E2BIG);
  auto ns = ParseXattrName(name);
  if (!ns.ok()) return ns.status();
  std::lock_guard<std::mutex> l(send_mu_);
  const int64_t now = Now();
  auto st = cache_.UpdateXattrs(ino, log_.last_seq() + 1,
                                [&](Attr& a, ObjectCache::Xattrs& x) -> Status {
    RETURN_IF_ERROR(XattrPermission(c, a, *ns, /*write=*/true));
    RETURN_IF_ERROR(CheckNotGuarded(a));
    bool exists = x.count(name) != 0;
    if (exists && (flags & XATTR_CREATE)) return Status::Error(EEXIST);
    if (!exists && (flags & XATTR_REPLACE)) return Status::Error(ENODATA);
    x[name] = value;
    a.flags |= kInodeHasXattrs;
    a.ctime_ns = now;
    return Status::Ok();
  });
  if (!st || !st->ok()) return st;
  WritebackLog::Op op = NewOp(WritebackLog::Op::Kind::kSetXattr, ino, c, now, {ino});
  op.xattr = name;
  op.target = value;
  op.flags = static_cast<uint32_t>(flags);
  AppendLocked(std::move(op));
  return st;
}

std::optional<Status> FsClient::RemoveXattrLocally(InodeId ino, const std::string& name,
                                                   const Caller& c) {
  auto ns = ParseXattrName(name);  // as FileSystem::RemoveXattr decides it
  if (!ns.ok()) return ns.status();
  std::lock_guard<std::mutex> l(send_mu_);
  const int64_t now = Now();
  auto st =
      cache_.UpdateXattrs(ino, log_.last_seq() + 1, [&](Attr& a, ObjectCache::Xattrs& x) -> Status {
        RETURN_IF_ERROR(RemoveXattrPermission(c, a, name, *ns));
        RETURN_IF_ERROR(CheckNotGuarded(a));
        if (x.erase(name) == 0) return Status::Error(ENODATA);
        if (x.empty()) a.flags &= ~kInodeHasXattrs;
        a.ctime_ns = now;
        return Status::Ok();
      });
  if (!st || !st->ok()) return st;
  WritebackLog::Op op = NewOp(WritebackLog::Op::Kind::kRemoveXattr, ino, c, now, {ino});
  op.xattr = name;
  AppendLocked(std::move(op));
  return st;
}

}  // namespace cohfs
