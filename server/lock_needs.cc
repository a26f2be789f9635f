#include "server/lock_needs.h"

#include <fcntl.h>

namespace cohfs {
namespace {

struct Needs {
  FileSystem& fs;
  bool resolve_names;  // also the inodes that names in the request stand for
  std::vector<LockNeed> out;

  void Read(uint64_t ino) { out.push_back({InodeId(ino), LockMode::kShared}); }
  void Change(uint64_t ino) { out.push_back({InodeId(ino), LockMode::kExclusive}); }
  // The inode `name` in `dir` names now, if any.
  void ChangeChild(uint64_t dir, capnp::Data::Reader name) {
    if (!resolve_names) return;
    auto child = fs.Lookup(Caller{}, InodeId(dir), AsView(name));
    if (child.ok()) Change(child->ino.value);
  }
};

void Collect(Needs& n, wire::Request::Reader req) {
  switch (req.which()) {
    case wire::Request::LOOKUP: {
      auto l = req.getLookup();
      n.Read(l.getParent());
      if (!n.resolve_names) break;
      auto child = n.fs.Lookup(Caller{}, InodeId(l.getParent()), AsView(l.getName()));
      if (child.ok()) n.Read(child->ino.value);
      break;
    }
    case wire::Request::GET_ATTR:
      n.Read(req.getGetAttr());
      break;
    case wire::Request::READ_LINK:
      n.Read(req.getReadLink());
      break;
    case wire::Request::READ:
      n.Read(req.getRead().getIno());
      break;
    case wire::Request::READ_DIR:
      n.Read(req.getReadDir().getIno());
      break;
    case wire::Request::GET_XATTR:
      n.Read(req.getGetXattr().getIno());
      break;
    case wire::Request::LIST_XATTR:
      n.Read(req.getListXattr());
      break;
    case wire::Request::LSEEK:
      n.Read(req.getLseek().getIno());
      break;
    case wire::Request::ACCESS:
      n.Read(req.getAccess().getIno());
      break;
    case wire::Request::OPEN: {
      auto o = req.getOpen();
      if (o.getFlags() & O_TRUNC) {
        n.Change(o.getIno());
      } else {
        n.Read(o.getIno());
      }
      break;
    }
    case wire::Request::SET_ATTR:
      n.Change(req.getSetAttr().getIno());
      break;
    case wire::Request::ACQUIRE:
      n.Change(req.getAcquire());
      break;
    case wire::Request::WRITE:
      n.Change(req.getWrite().getIno());
      break;
    case wire::Request::FALLOCATE:
      n.Change(req.getFallocate().getIno());
      break;
    case wire::Request::SET_FLAGS:
      n.Change(req.getSetFlags().getIno());
      break;
    case wire::Request::SET_XATTR:
      n.Change(req.getSetXattr().getIno());
      break;
    case wire::Request::REMOVE_XATTR:
      n.Change(req.getRemoveXattr().getIno());
      break;
    case wire::Request::MKNOD:
      n.Change(req.getMknod().getParent());
      break;
    case wire::Request::MKDIR:
      n.Change(req.getMkdir().getParent());
      break;
    case wire::Request::SYMLINK:
      n.Change(req.getSymlink().getParent());
      break;
    case wire::Request::LINK:
      n.Change(req.getLink().getIno());
      n.Change(req.getLink().getNewParent());
      break;
    case wire::Request::UNLINK:
      n.Change(req.getUnlink().getParent());
      n.ChangeChild(req.getUnlink().getParent(), req.getUnlink().getName());
      break;
    case wire::Request::RMDIR:
      n.Change(req.getRmdir().getParent());
      n.ChangeChild(req.getRmdir().getParent(), req.getRmdir().getName());
      break;
    case wire::Request::RENAME: {
      auto r = req.getRename();
      n.Change(r.getParent());
      n.Change(r.getNewParent());
      n.ChangeChild(r.getParent(), r.getName());
      n.ChangeChild(r.getNewParent(), r.getNewName());
      break;
    }
    default:
      break;
  }
}

}  // namespace

std::vector<LockNeed> LockNeedsOf(FileSystem& fs, wire::Request::Reader req) {
  Needs n{fs, /*resolve_names=*/true, {}};
  Collect(n, req);
  return n.out;
}

std::vector<InodeId> NamedInodesOf(FileSystem& fs, wire::Request::Reader req) {
  // File locks need no storage lock, so LockNeedsOf leaves them out.
  if (req.isSetLock()) return {InodeId(req.getSetLock().getLock().getIno())};
  if (req.isGetLock()) return {InodeId(req.getGetLock().getIno())};
  Needs n{fs, /*resolve_names=*/false, {}};
  Collect(n, req);
  std::vector<InodeId> out;
  for (const LockNeed& need : n.out) out.push_back(need.ino);
  return out;
}

}  // namespace cohfs
