#include "client/fuse_ops.h"

#include <linux/fuse.h>

#include <cstring>
#include <vector>

#include "client/fuse_ops_common.h"
#include "common/limits.h"
#include "common/log.h"

namespace cohfs {
namespace fuse {
namespace {

// Names and attributes: lookup, forget, getattr/setattr, creates, links,
// unlink, rename; and the session's init and destroy.
struct NameOps {
  static void Init(void* userdata, fuse_conn_info* conn) {
    auto* s = static_cast<FuseOps*>(userdata);
    conn->want |= FUSE_CAP_READDIRPLUS | FUSE_CAP_ASYNC_READ;
    conn->want &= ~(FUSE_CAP_READDIRPLUS_AUTO | FUSE_CAP_WRITEBACK_CACHE |
                    FUSE_CAP_AUTO_INVAL_DATA | FUSE_CAP_DONT_MASK);
    if (conn->capable & FUSE_CAP_EXPLICIT_INVAL_DATA) conn->want |= FUSE_CAP_EXPLICIT_INVAL_DATA;
    conn->max_write = kMaxIoBytes;
    conn->max_readahead = kMaxIoBytes;
    conn->time_gran = 1;
    s->Initialized();
  }

  // Unmount: everything logged reaches the server and is made durable.
  static void Destroy(void* userdata) { static_cast<FuseOps*>(userdata)->core().Unmount(); }

  static void Lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
    FuseOps* s = Self(req);
    Count(s, FUSE_LOOKUP);
    FsClient::KernelHold hold(s->core(), InodeId(parent));
    if (std::strlen(name) > kMaxNameBytes) return (void)fuse_reply_err(req, ENAMETOOLONG);
    Attr cached;
    switch (s->core().cache().Lookup(InodeId(parent), name, &cached)) {
      case ObjectCache::LookupResult::kFound:
        s->stats().cache_hits++;
        return ReplyEntry(s, req, InodeId(parent), name, cached);
      case ObjectCache::LookupResult::kNegative:
        s->stats().negative_hits++;
        return ReplyNegative(s, req, InodeId(parent), name);
      case ObjectCache::LookupResult::kUnknown:
        break;
    }
    Request r(req);
    auto l = r.root.initLookup();
    l.setParent(parent);
    l.setName(AsData(name));
    l.setWantLeaf(true);
    auto reply = s->core().Call(r.message);
    if (!reply.ok()) return ReplyErr(req, reply.status());
    s->core().AbsorbLookup(InodeId(parent), *reply);
    if (!reply->root().isAttr()) return ReplyNegative(s, req, InodeId(parent), name);
    LockMode lock;
    Attr attr = s->core().AbsorbAttr(*reply, &lock);
    ReplyEntry(s, req, InodeId(parent), name, attr);
  }

  static void ForgetOne(FuseOps* s, fuse_ino_t ino, uint64_t n, std::vector<uint64_t>* released) {
    if (ino == FUSE_ROOT_ID) return;
    if (s->core().cache().Forget(InodeId(ino), n)) released->push_back(ino);
  }

  static void Forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
    FuseOps* s = Self(req);
    Count(s, FUSE_FORGET);
    std::vector<uint64_t> released;
    ForgetOne(s, ino, nlookup, &released);
    s->core().QueueRelease(released);
    fuse_reply_none(req);
  }

  static void ForgetMulti(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
    FuseOps* s = Self(req);
    Count(s, FUSE_BATCH_FORGET);
    std::vector<uint64_t> released;
    for (size_t i = 0; i < count; i++) ForgetOne(s, forgets[i].ino, forgets[i].nlookup, &released);
    s->core().QueueRelease(released);
    fuse_reply_none(req);
  }

  static void GetAttr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
    FuseOps* s = Self(req);
    Count(s, FUSE_GETATTR);
    if (auto a = s->core().cache().GetAttr(InodeId(ino))) {
      s->stats().cache_hits++;
      return ReplyAttr(s, req, *a);
    }
    if (Status fst = s->core().FlushData(InodeId(ino)); !fst.ok()) return ReplyErr(req, fst);
    Request r(req);
    r.root.setGetAttr(ino);
    auto reply = s->core().Call(r.message);
    if (!reply.ok()) return ReplyErr(req, reply.status());
    LockMode lock;
    ReplyAttr(s, req, s->core().AbsorbAttr(*reply, &lock));
  }

  static SetAttrRequest FromFuse(const struct stat* attr, int to_set, const fuse_file_info* fi) {
    SetAttrRequest r;
    if (to_set & FUSE_SET_ATTR_MODE) r.mask |= kSetMode, r.mode = attr->st_mode;
    if (to_set & FUSE_SET_ATTR_UID) r.mask |= kSetUid, r.uid = attr->st_uid;
    if (to_set & FUSE_SET_ATTR_GID) r.mask |= kSetGid, r.gid = attr->st_gid;
    if (to_set & FUSE_SET_ATTR_SIZE)
      r.mask |= kSetSize, r.size = static_cast<uint64_t>(attr->st_size);
    if (to_set & FUSE_SET_ATTR_ATIME_NOW) {
      r.mask |= kSetAtimeNow;
    } else if (to_set & FUSE_SET_ATTR_ATIME) {
      r.mask |= kSetAtime, r.atime_ns = ToNs(attr->st_atim);
    }
    if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
      r.mask |= kSetMtimeNow;
    } else if (to_set & FUSE_SET_ATTR_MTIME) {
      r.mask |= kSetMtime, r.mtime_ns = ToNs(attr->st_mtim);
    }
    if (to_set & FUSE_SET_ATTR_CTIME) r.mask |= kSetCtime, r.ctime_ns = ToNs(attr->st_ctim);
    r.has_open_handle = fi != nullptr;
    return r;
  }

  static void SetAttr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set,
                      fuse_file_info* fi) {
    FuseOps* s = Self(req);
    Count(s, FUSE_SETATTR);
    // Buffered data first: a write after the change would, on the server, come
    // before it (and a write may clear set-id bits the change sets).
    if (Status fst = s->core().FlushData(InodeId(ino)); !fst.ok()) return ReplyErr(req, fst);
    SetAttrRequest sr = FromFuse(attr, to_set, fi);
    Caller c = CallerOf(req);
    if (auto local = s->core().SetAttrLocally(InodeId(ino), c, sr)) {
      if (!local->ok()) return ReplyErr(req, local->status());
      s->core().WaitForSendWindow();
      return ReplyAttr(s, req, **local);
    }
    Request r(c);
    ToWire(InodeId(ino), sr, r.root.initSetAttr());
    auto reply = s->core().Call(r.message);
    if (!reply.ok()) return ReplyErr(req, reply.status());
    LockMode lock;
    ReplyAttr(s, req, s->core().AbsorbAttr(*reply, &lock));
  }

  static void ReadLink(fuse_req_t req, fuse_ino_t ino) {
    FuseOps* s = Self(req);
    Count(s, FUSE_READLINK);
    if (auto target = s->core().cache().SymlinkTarget(InodeId(ino))) {
      s->stats().cache_hits++;
      return (void)fuse_reply_readlink(req, target->c_str());
    }
    Request r(req);
    r.root.setReadLink(ino);
    auto reply = s->core().Call(r.message);
    if (!reply.ok()) return ReplyErr(req, reply.status());
    std::string target(AsView(reply->root().getTarget()));
    fuse_reply_readlink(req, target.c_str());
  }

  // Mknod, Mkdir, Symlink and Create share this: made in the cache and
  // logged when the directory is ours, else one RPC; entry reply.
  template <typename Fill>
  static Result<Attr> MakeNode(FuseOps* s, fuse_req_t req, fuse_ino_t parent, const char* name,
                               LockMode* lock, Fill fill, const FsClient::NewNode& node) {
    FsClient::KernelHold hold(s->core(), InodeId(parent));
    if (std::strlen(name) > kMaxNameBytes) return Status::Error(ENAMETOOLONG);
    ASSIGN_OR_RETURN(uint64_t ino, s->core().NewInode(CallerOf(req)));
    const Caller c = CallerOf(req);
    auto local = s->core().MakeLocally(InodeId(parent), name, c, node, InodeId(ino));
    if (!local && s->core().AcquireDirectory(InodeId(parent), c)) {
      local = s->core().MakeLocally(InodeId(parent), name, c, node, InodeId(ino));
    }
    if (local) {
      s->core().WaitForSendWindow();
      *lock = LockMode::kExclusive;
      return *local;
    }
    Request r(req);
    fill(r.root, ino);
    ASSIGN_OR_RETURN(RpcReply reply, s->core().Call(r.message));
    Attr attr = s->core().AbsorbAttr(reply, lock);
    s->core().cache().AddName(InodeId(parent), name, attr.ino);
    // A directory made here is empty: complete from birth, unless a recall
    // crossed the reply (the reply's order says; found by the simulation).
    if (S_ISDIR(attr.mode)) s->core().cache().SetDirectory(attr.ino, {}, FsClient::OrderOf(reply));
    return attr;
  }

  static void Mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
    FuseOps* s = Self(req);
    Count(s, FUSE_MKNOD);
    LockMode lock;
    auto attr = MakeNode(
        s, req, parent, name, &lock,
        [&](wire::Request::Builder b, uint64_t ino) {
          auto m = b.initMknod();
          m.setParent(parent);
          m.setName(AsData(name));
          m.setMode(mode);
          m.setRdev(rdev);
          m.setNewIno(ino);
        },
        FsClient::NewNode{mode, {}});
    if (!attr.ok()) return ReplyErr(req, attr.status());
    ReplyEntry(s, req, InodeId(parent), name, *attr);
  }

  static void Mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
    FuseOps* s = Self(req);
    Count(s, FUSE_MKDIR);
    LockMode lock;
    auto attr = MakeNode(
        s, req, parent, name, &lock,
        [&](wire::Request::Builder b, uint64_t ino) {
          auto m = b.initMkdir();
          m.setParent(parent);
          m.setName(AsData(name));
          m.setMode(mode);
          m.setNewIno(ino);
        },
        FsClient::NewNode{S_IFDIR | (mode & 07777), {}});
    if (!attr.ok()) return ReplyErr(req, attr.status());
    ReplyEntry(s, req, InodeId(parent), name, *attr);
  }

  static void Symlink(fuse_req_t req, const char* target, fuse_ino_t parent, const char* name) {
    FuseOps* s = Self(req);
    Count(s, FUSE_SYMLINK);
    LockMode lock;
    auto attr = MakeNode(
        s, req, parent, name, &lock,
        [&](wire::Request::Builder b, uint64_t ino) {
          auto m = b.initSymlink();
          m.setParent(parent);
          m.setName(AsData(name));
          m.setTarget(AsData(target));
          m.setNewIno(ino);
        },
        FsClient::NewNode{S_IFLNK | 0777, target});
    if (!attr.ok()) return ReplyErr(req, attr.status());
    ReplyEntry(s, req, InodeId(parent), name, *attr);
  }

  static void Create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
                     fuse_file_info* fi) {
    FuseOps* s = Self(req);
    Count(s, FUSE_CREATE);
    LockMode lock;
    auto attr = MakeNode(
        s, req, parent, name, &lock,
        [&](wire::Request::Builder b, uint64_t ino) {
          auto m = b.initMknod();
          m.setParent(parent);
          m.setName(AsData(name));
          m.setMode((mode & ~S_IFMT) | S_IFREG);
          m.setNewIno(ino);
        },
        FsClient::NewNode{(mode & ~S_IFMT) | S_IFREG, {}});
    if (!attr.ok()) return ReplyErr(req, attr.status());
    FsClient::ReplyPin pin(s->core(), InodeId(parent), attr->ino);
    fuse_entry_param e = EntryFor(s, InodeId(parent), name, *attr);
    fi->keep_cache = s->core().cache().lock(attr->ino) != LockMode::kNone;
    if (fi->flags & O_APPEND) fi->direct_io = 1;  // see Open
    s->core().cache().AddLookup(attr->ino);
    fi->fh = s->core().OpenFile(attr->ino);  // see Open
    if (fuse_reply_create(req, &e, fi) != 0) {
      s->core().cache().Forget(attr->ino, 1);
      s->core().CloseFile(fi->fh);
    }
  }

  static void Link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t new_parent, const char* new_name) {
    FuseOps* s = Self(req);
    Count(s, FUSE_LINK);
    FsClient::KernelHold hold(s->core(), InodeId(new_parent));
    if (auto local =
            s->core().LinkLocally(InodeId(ino), InodeId(new_parent), new_name, CallerOf(req))) {
      if (!local->ok()) return ReplyErr(req, local->status());
      s->core().WaitForSendWindow();
      return ReplyEntry(s, req, InodeId(new_parent), new_name, **local);
    }
    if (Status fst = s->core().FlushData(InodeId(ino)); !fst.ok()) return ReplyErr(req, fst);
    Request r(req);
    auto l = r.root.initLink();
    l.setIno(ino);
    l.setNewParent(new_parent);
    l.setNewName(AsData(new_name));
    auto reply = s->core().Call(r.message);
    if (!reply.ok()) return ReplyErr(req, reply.status());
    LockMode lock;
    Attr attr = s->core().AbsorbAttr(*reply, &lock);
    s->core().cache().AddName(InodeId(new_parent), new_name, attr.ino);
    ReplyEntry(s, req, InodeId(new_parent), new_name, attr);
  }

  static void RemoveName(fuse_req_t req, fuse_ino_t parent, const char* name, bool dir) {
    FuseOps* s = Self(req);
    Count(s, dir ? FUSE_RMDIR : FUSE_UNLINK);
    FsClient::KernelHold hold(s->core(), InodeId(parent));
    const Caller c = CallerOf(req);
    auto local = s->core().RemoveLocally(InodeId(parent), name, c, dir);
    if (!local && s->core().AcquireDirectory(InodeId(parent), c)) {
      local = s->core().RemoveLocally(InodeId(parent), name, c, dir);
    }
    if (local) {
      if (local->ok()) s->core().WaitForSendWindow();
      return ReplyErr(req, *local);
    }
    Request r(req);
    auto set = [&](auto b) {
      b.setParent(parent);
      b.setName(AsData(name));
    };
    if (dir) {
      set(r.root.initRmdir());
    } else {
      set(r.root.initUnlink());
    }
    Attr child;
    if (s->core().cache().Lookup(InodeId(parent), name, &child) ==
        ObjectCache::LookupResult::kFound) {
      // The reply carries the child's server attributes: send its data first.
      if (Status fst = s->core().FlushData(child.ino); !fst.ok()) return ReplyErr(req, fst);
    }
    auto reply = s->core().Call(r.message);
    if (!reply.ok()) return ReplyErr(req, reply.status());
    s->core().Absorb(*reply);
    s->core().cache().RemoveName(InodeId(parent), name);
    fuse_reply_err(req, 0);
  }
  static void Unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
    RemoveName(req, parent, name, false);
  }
  static void Rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
    RemoveName(req, parent, name, true);
  }

  // The kernel moved its dentries itself (found by the model check: a name
  // a rename made was never dropped by a later recall).
  static void ReplyRenamed(FuseOps* s, fuse_req_t req, InodeId parent, const char* name,
                           InodeId new_parent, const char* new_name, unsigned int flags) {
    FsClient::ReplyPin pin(s->core(), parent, new_parent);
    s->core().NoteRenamedName(new_parent, new_name);
    if (flags & kRenameExchange) s->core().NoteRenamedName(parent, name);
    fuse_reply_err(req, 0);
  }

  static void Rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t new_parent,
                     const char* new_name, unsigned int flags) {
    FuseOps* s = Self(req);
    Count(s, FUSE_RENAME2);
    FsClient::KernelHold hold(s->core(), InodeId(parent), InodeId(new_parent));
    if (flags & ~(kRenameNoReplace | kRenameExchange | kRenameWhiteout)) {
      return (void)fuse_reply_err(req, EINVAL);
    }
    if ((flags & kRenameExchange) && (flags & (kRenameNoReplace | kRenameWhiteout))) {
      return (void)fuse_reply_err(req, EINVAL);
    }
    const Caller c = CallerOf(req);
    // RENAME_WHITEOUT makes an inode the server numbers: the server does it all.
    if (flags & kRenameWhiteout)
      return RenameOnServer(s, req, parent, name, new_parent, new_name, flags);
    auto rename_locally = [&] {
      return s->core().RenameLocally(InodeId(parent), name, InodeId(new_parent), new_name, flags,
                                     c);
    };
    auto local = rename_locally();
    if (!local && s->core().AcquireDirectory(InodeId(parent), c) &&
        s->core().AcquireDirectory(InodeId(new_parent), c)) {
      local = rename_locally();
    }
    if (local) {
      if (!local->ok()) return ReplyErr(req, *local);
      s->core().WaitForSendWindow();
      return ReplyRenamed(s, req, InodeId(parent), name, InodeId(new_parent), new_name, flags);
    }
    RenameOnServer(s, req, parent, name, new_parent, new_name, flags);
  }

  static void RenameOnServer(FuseOps* s, fuse_req_t req, fuse_ino_t parent, const char* name,
                             fuse_ino_t new_parent, const char* new_name, unsigned int flags) {
    Attr moved{}, victim{};
    bool know_moved = s->core().cache().Lookup(InodeId(parent), name, &moved) ==
                      ObjectCache::LookupResult::kFound;
    auto victim_state = s->core().cache().Lookup(InodeId(new_parent), new_name, &victim);
    for (const Attr* a : {&moved, &victim}) {
      if (a->ino.valid()) {
        if (Status fst = s->core().FlushData(a->ino); !fst.ok()) return ReplyErr(req, fst);
      }
    }
    Request r(req);
    auto m = r.root.initRename();
    m.setParent(parent);
    m.setName(AsData(name));
    m.setNewParent(new_parent);
    m.setNewName(AsData(new_name));
    m.setFlags(flags);
    auto reply = s->core().Call(r.message);
    if (!reply.ok()) return ReplyErr(req, reply.status());
    s->core().Absorb(*reply);
    // A whiteout took the old name: both listings are re-learnt from the server.
    const bool keep = know_moved && !(flags & kRenameWhiteout);
    s->core().cache().NoteRenamed(InodeId(parent), name, InodeId(new_parent), new_name,
                                  flags & kRenameExchange, keep ? &moved : nullptr, victim_state,
                                  victim);
    ReplyRenamed(s, req, InodeId(parent), name, InodeId(new_parent), new_name, flags);
  }
};

}  // namespace
}  // namespace fuse

using fuse::NameOps;

FuseOps::FuseOps(RpcClient& rpc, ClientStats& stats, const FuseOpsConfig& config)
    : stats_(stats),
      config_(config),
      core_(rpc, stats, config.max_locked_inodes),
      // Parallel lookups and readdirs in one directory; and the kernel leaves
      // clearing set-id bits on write, truncate and chown to us (the server and
      // the cache do it), so it stops asking for security.capability before
      // every write and for the attributes before every chown.
      init_io_(FUSE_PARALLEL_DIROPS | FUSE_HANDLE_KILLPRIV_V2, stats.fuse_init_added) {
  core_.set_kernel(this);
}

FuseOps::~FuseOps() { core_.Stop(); }

void FuseOps::InvalInode(InodeId ino) {
  fuse_session* se = session_.load();
  if (se) fuse_lowlevel_notify_inval_inode(se, ino.value, 0, 0);  // attributes and all pages
}

void FuseOps::InvalEntry(InodeId dir, const std::string& name) {
  fuse_session* se = session_.load();
  if (se) fuse_lowlevel_notify_inval_entry(se, dir.value, name.c_str(), name.size());
}

const fuse_custom_io& FuseOps::CustomIo() {
  static const fuse_custom_io io = [] {
    fuse_custom_io o{};
    o.read = [](int fd, void* buf, size_t len, void* userdata) {
      return static_cast<FuseOps*>(userdata)->init_io_.Read(fd, buf, len);
    };
    o.writev = [](int fd, iovec* iov, int count, void* userdata) {
      return static_cast<FuseOps*>(userdata)->init_io_.Writev(fd, iov, count);
    };
    return o;
  }();
  return io;
}

const fuse_lowlevel_ops& FuseOps::Table() {
  static const fuse_lowlevel_ops ops = [] {
    fuse_lowlevel_ops o{};
    o.init = NameOps::Init;
    o.destroy = NameOps::Destroy;
    o.lookup = fuse::Gated<NameOps::Lookup>::Run;
    o.forget = NameOps::Forget;
    o.forget_multi = NameOps::ForgetMulti;
    o.getattr = fuse::Gated<NameOps::GetAttr>::Run;
    o.setattr = fuse::Gated<NameOps::SetAttr>::Run;
    o.readlink = fuse::Gated<NameOps::ReadLink>::Run;
    o.mknod = fuse::Gated<NameOps::Mknod>::Run;
    o.mkdir = fuse::Gated<NameOps::Mkdir>::Run;
    o.unlink = fuse::Gated<NameOps::Unlink>::Run;
    o.rmdir = fuse::Gated<NameOps::Rmdir>::Run;
    o.symlink = fuse::Gated<NameOps::Symlink>::Run;
    o.rename = fuse::Gated<NameOps::Rename>::Run;
    o.link = fuse::Gated<NameOps::Link>::Run;
    o.create = fuse::Gated<NameOps::Create>::Run;
    fuse::AddDataOps(o);
    fuse::AddDirOps(o);
    fuse::AddIoctlOps(o);
    return o;
  }();
  return ops;
}

}  // namespace cohfs
