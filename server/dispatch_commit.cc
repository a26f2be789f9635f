// The Commit request: a client's writeback log, changes it already made in its
// cache under EXCLUSIVE locks and answered to its applications (DESIGN §5, §6;
// docs/wire-protocol.md, "Commit").
//
// Rules kept here:
// - a change applies only if the client holds, or can take back at once,
//   EXCLUSIVE on every existing inode it changes (CommitTargets: the inode;
//   a create's or link's directory; an unlink's directory and child; a
//   rename's directories, moved inode and victim); a new inode must come from
//   the client's ranges and is born EXCLUSIVE to it;
// - changes linked by `withNext` are one group, applied in one
//   FileSystem::Group (one WriteBatch): entirely or not at all. A refused
//   group does not stop the groups after it;
// - every change of a refused group is reported: the failing one with its own
//   error, the others ECANCELED naming it;
// - an inode that lost its last name is reclaimed only when nobody holds or
//   references it (MaybeReclaim). The committing client holds EXCLUSIVE on it
//   (it had to, to remove the name), so a file it still has open stays
//   readable until it releases the inode.
// Thread: the storage executor, as all of Dispatcher.
#include <sys/stat.h>

#include <algorithm>
#include <string>

#include "common/limits.h"
#include "server/dispatch.h"
#include "server/dispatch_ctx.h"

namespace cohfs {

namespace {

// The inode a create makes (none for other changes).
InodeId NewInodeOf(wire::Request::Reader op) {
  switch (op.which()) {
    case wire::Request::MKNOD:
      return InodeId(op.getMknod().getNewIno());
    case wire::Request::MKDIR:
      return InodeId(op.getMkdir().getNewIno());
    case wire::Request::SYMLINK:
      return InodeId(op.getSymlink().getNewIno());
    default:
      return InodeId();
  }
}

// What can be refused without looking at the tree: the kind, names, new
// numbers.
Status CheckCommitted(const Session& s, wire::Request::Reader op) {
  switch (op.which()) {
    case wire::Request::SET_ATTR:
    case wire::Request::SET_XATTR:
    case wire::Request::REMOVE_XATTR:
      return Status::Ok();  // FileSystem checks xattr names (ERANGE, EOPNOTSUPP)
    case wire::Request::MKNOD:
      RETURN_IF_ERROR(CheckRequestName(AsView(op.getMknod().getName())));
      break;
    case wire::Request::MKDIR:
      RETURN_IF_ERROR(CheckRequestName(AsView(op.getMkdir().getName())));
      break;
    case wire::Request::SYMLINK:
      RETURN_IF_ERROR(CheckRequestName(AsView(op.getSymlink().getName())));
      break;
    case wire::Request::LINK:
      return CheckRequestName(AsView(op.getLink().getNewName()));
    case wire::Request::UNLINK:
      return CheckRequestName(AsView(op.getUnlink().getName()));
    case wire::Request::RMDIR:
      return CheckRequestName(AsView(op.getRmdir().getName()));
    case wire::Request::RENAME:
      RETURN_IF_ERROR(CheckRequestName(AsView(op.getRename().getName())));
      return CheckRequestName(AsView(op.getRename().getNewName()));
    default:
      return Status::Error(EINVAL, "this request may not be committed");
  }
  if (!s.OwnsInode(NewInodeOf(op))) {
    return Status::Error(EINVAL, "inode number outside the client's range");
  }
  return Status::Ok();
}

}  // namespace

// For a create the new inode comes first (it is not locked before it exists);
// otherwise the order is the `ino` a failure reports first: the inode of a
// setAttr, xattr change or link, the (source) directory of an unlink, rmdir
// or rename.
std::vector<InodeId> Dispatcher::CommitTargets(wire::Request::Reader op) {
  std::vector<InodeId> out;
  auto add = [&](uint64_t v) {
    InodeId ino(v);
    if (ino.valid() && std::find(out.begin(), out.end(), ino) == out.end()) out.push_back(ino);
  };
  // The inode `name` names in `dir` now, if any (as the scheduler resolves it).
  auto child = [&](uint64_t dir, capnp::Data::Reader name) {
    if (!CheckRequestName(AsView(name)).ok()) return;
    auto a = fs_.Lookup(Caller{}, InodeId(dir), AsView(name));
    if (a.ok()) add(a->ino.value);
  };
  InodeId new_ino = NewInodeOf(op);
  if (new_ino.valid()) out.push_back(new_ino);
  switch (op.which()) {
    case wire::Request::SET_ATTR:
      add(op.getSetAttr().getIno());
      break;
    case wire::Request::SET_XATTR:
      add(op.getSetXattr().getIno());
      break;
    case wire::Request::REMOVE_XATTR:
      add(op.getRemoveXattr().getIno());
      break;
    case wire::Request::MKNOD:
      out.push_back(InodeId(op.getMknod().getParent()));
      break;
    case wire::Request::MKDIR:
      out.push_back(InodeId(op.getMkdir().getParent()));
      break;
    case wire::Request::SYMLINK:
      out.push_back(InodeId(op.getSymlink().getParent()));
      break;
    case wire::Request::LINK:
      add(op.getLink().getIno());
      add(op.getLink().getNewParent());
      break;
    case wire::Request::UNLINK:
      add(op.getUnlink().getParent());
      child(op.getUnlink().getParent(), op.getUnlink().getName());
      break;
    case wire::Request::RMDIR:
      add(op.getRmdir().getParent());
      child(op.getRmdir().getParent(), op.getRmdir().getName());
      break;
    case wire::Request::RENAME: {
      auto r = op.getRename();
      add(r.getParent());
      add(r.getNewParent());
      child(r.getParent(), r.getName());
      child(r.getNewParent(), r.getNewName());
      break;
    }
    default:
      break;
  }
  return out;
}

// The lock is (re)acquired here: a client may have released it while a reply
// that still showed it EXCLUSIVE was in flight, which is harmless as long as
// nobody else has taken a lock on the inode since.
Status Dispatcher::ApplyCommitted(Session& s, wire::Request::Reader op,
                                  std::vector<InodeId>* touched, std::vector<InodeId>* removed) {
  auto own = [&](InodeId ino) -> Status {
    if (locks_.Acquire(s.client, ino, LockMode::kExclusive) != LockMode::kExclusive) {
      return Status::Error(EACCES, "changed locally, but another client holds a lock on it");
    }
    return Status::Ok();
  };
  *touched = CommitTargets(op);
  RETURN_IF_ERROR(CheckCommitted(s, op));
  const Caller c = CallerOf(op.getCaller());
  RETURN_IF_ERROR(CheckReach(s, c, op));
  InodeId new_ino = NewInodeOf(op);
  for (size_t i = new_ino.valid() ? 1 : 0; i < touched->size(); i++) {
    RETURN_IF_ERROR(own((*touched)[i]));
  }
  RETURN_IF_ERROR(ApplyChange(c, op, removed));
  return new_ino.valid() ? own(new_ino) : Status::Ok();  // born EXCLUSIVE to its creator
}

Status Dispatcher::ApplyChange(const Caller& c, wire::Request::Reader op,
                               std::vector<InodeId>* removed) {
  switch (op.which()) {
    case wire::Request::SET_ATTR: {
      auto a = op.getSetAttr();
      return fs_.SetAttr(c, InodeId(a.getIno()), FromWire(a)).status();
    }
    case wire::Request::MKNOD: {
      auto m = op.getMknod();
      return fs_
          .Mknod(c, InodeId(m.getParent()), AsView(m.getName()), m.getMode(), m.getRdev(),
                 InodeId(m.getNewIno()), m.getNowNs())
          .status();
    }
    case wire::Request::MKDIR: {
      auto m = op.getMkdir();
      return fs_
          .Mkdir(c, InodeId(m.getParent()), AsView(m.getName()), m.getMode(),
                 InodeId(m.getNewIno()), m.getNowNs())
          .status();
    }
    case wire::Request::SYMLINK: {
      auto m = op.getSymlink();
      return fs_
          .Symlink(c, InodeId(m.getParent()), AsView(m.getName()), AsView(m.getTarget()),
                   InodeId(m.getNewIno()), m.getNowNs())
          .status();
    }
    case wire::Request::LINK: {
      auto m = op.getLink();
      return fs_
          .Link(c, InodeId(m.getIno()), InodeId(m.getNewParent()), AsView(m.getNewName()),
                m.getNowNs())
          .status();
    }
    case wire::Request::UNLINK:
    case wire::Request::RMDIR: {
      bool is_unlink = op.isUnlink();
      InodeId parent(is_unlink ? op.getUnlink().getParent() : op.getRmdir().getParent());
      std::string_view name =
          AsView(is_unlink ? op.getUnlink().getName() : op.getRmdir().getName());
      int64_t now_ns = is_unlink ? op.getUnlink().getNowNs() : op.getRmdir().getNowNs();
      ASSIGN_OR_RETURN(InodeId child, is_unlink ? fs_.Unlink(c, parent, name, now_ns)
                                                : fs_.Rmdir(c, parent, name, now_ns));
      removed->push_back(child);
      return Status::Ok();
    }
    case wire::Request::RENAME: {
      auto m = op.getRename();
      ASSIGN_OR_RETURN(
          std::optional<InodeId> replaced,
          fs_.Rename(c, InodeId(m.getParent()), AsView(m.getName()), InodeId(m.getNewParent()),
                     AsView(m.getNewName()), m.getFlags(), m.getNowNs()));
      if (replaced) removed->push_back(*replaced);
      return Status::Ok();
    }
    case wire::Request::SET_XATTR: {
      auto x = op.getSetXattr();
      return fs_.SetXattr(c, InodeId(x.getIno()), AsView(x.getName()), AsView(x.getValue()),
                          x.getFlags(), x.getNowNs());
    }
    case wire::Request::REMOVE_XATTR: {
      auto x = op.getRemoveXattr();
      return fs_.RemoveXattr(c, InodeId(x.getIno()), AsView(x.getName()), x.getNowNs());
    }
    default:
      return Status::Error(EINVAL, "this request may not be committed");
  }
}

// Returns whether the group was applied. A change after the failing one is
// not tried; its targets are resolved against the tree the group left alone.
bool Dispatcher::ApplyGroup(Session& s, capnp::List<wire::Request>::Reader ops, uint32_t first,
                            uint32_t end, std::vector<CommitFailure>* failed) {
  std::vector<std::vector<InodeId>> touched(end - first);
  std::vector<InodeId> removed;
  uint32_t failed_at = end;  // end: the group's store commit failed
  Status st;
  {
    FileSystem::Group group(fs_);
    for (uint32_t i = first; i < end && st.ok(); i++) {
      st = ApplyCommitted(s, ops[i], &touched[i - first], &removed);
      if (!st.ok()) failed_at = i;
    }
    if (st.ok()) st = group.Commit();
  }  // dropped uncommitted: none of the group's changes (space included) remain
  if (st.ok()) {
    for (InodeId ino : removed) MaybeReclaim(ino);
    return true;
  }
  Status canceled = Status::Error(
      ECANCELED, "change " + std::to_string(failed_at) + " of this group failed: " + st.ToString());
  for (uint32_t i = first; i < end; i++) {
    std::vector<InodeId>& t = touched[i - first];
    if (i > failed_at) t = CommitTargets(ops[i]);
    bool own_error = i == failed_at || failed_at == end;
    failed->push_back({i, own_error ? st : canceled, std::move(t)});
  }
  return false;
}

void Dispatcher::Commit(Session& s, capnp::List<wire::Request>::Reader ops,
                        wire::Reply::Builder reply, std::vector<InodeId>* changed, bool* mutated) {
  std::vector<CommitFailure> failed;
  const uint32_t n = ops.size();
  uint32_t start = 0;
  if (resume_ && recording_ && resume_->request == recording_->request) {
    start = std::min(resume_->progress, n);  // applied before a restart: not again
    LoadFailures(resume_->partial, &failed);
  }
  resume_.reset();
  if (recording_) recording_->failed = &failed;
  for (uint32_t first = start; first < n;) {
    uint32_t last = first;
    while (last < n && ops[last].getWithNext()) last++;
    // A chain that runs off the end would be applied in part: refuse it whole.
    const bool cut = last == n;
    const uint32_t end = cut ? n : last + 1;
    if (cut || end - first > kMaxCommitGroupOps) {
      Status st = Status::Error(
          EINVAL, cut ? "the commit ends inside a withNext group"
                      : "a group of more than " + std::to_string(kMaxCommitGroupOps) + " changes");
      for (uint32_t i = first; i < end; i++) failed.push_back({i, st, CommitTargets(ops[i])});
    } else {
      if (recording_) recording_->progress = end;  // what this group's WriteBatch records
      if (ApplyGroup(s, ops, first, end, &failed)) *mutated = true;
    }
    first = end;
  }
  auto list = reply.initFailures(static_cast<unsigned>(failed.size()));
  for (size_t i = 0; i < failed.size(); i++) {
    const CommitFailure& f = failed[i];
    list[i].setIndex(f.index);
    list[i].setIno(f.touched.empty() ? 0 : f.touched[0].value);
    list[i].setErrno(f.status.errno_value());
    list[i].setMessage(f.status.message());
    for (InodeId ino : f.touched) {
      if (std::find(changed->begin(), changed->end(), ino) == changed->end()) {
        changed->push_back(ino);
      }
    }
  }
}

}  // namespace cohfs
