#include "client/fuse_ops.h"

#include <fcntl.h>
#include <linux/fuse.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <unordered_map>
#include <vector>

#include "common/limits.h"
#include "common/log.h"
#include "common/permissions.h"

namespace cohfs {

// The virtual xattr on the mount root through which `cohfs stats` reads counters.
inline constexpr char kStatsXattr[] = "cohfs.stats";

namespace {

FuseOps* Self(fuse_req_t req) { return static_cast<FuseOps*>(fuse_req_userdata(req)); }

struct stat ToStat(const Attr& a) {
  struct stat st{};
  st.st_ino = a.ino.value;
  st.st_mode = a.mode;
  st.st_nlink = a.nlink;
  st.st_uid = a.uid;
  st.st_gid = a.gid;
  st.st_rdev = a.rdev;
  st.st_size = static_cast<off_t>(a.size);
  st.st_blocks = static_cast<blkcnt_t>(a.blocks);
  st.st_blksize = kBlockBytes;
  st.st_atim = {a.atime_ns / 1000000000, a.atime_ns % 1000000000};
  st.st_mtim = {a.mtime_ns / 1000000000, a.mtime_ns % 1000000000};
  st.st_ctim = {a.ctime_ns / 1000000000, a.ctime_ns % 1000000000};
  return st;
}

int64_t ToNs(const timespec& ts) { return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec; }

Caller CallerOf(fuse_req_t req) {
  const fuse_ctx* ctx = fuse_req_ctx(req);
  Caller c;
  c.uid = ctx->uid;
  c.gid = ctx->gid;
  c.pid = static_cast<uint32_t>(ctx->pid);
  if (c.uid != 0) {
    // Supplementary groups matter only for non-root callers (root bypasses).
    gid_t groups[64];
    int n = fuse_req_getgroups(req, 64, groups);
    for (int i = 0; i < n && i < 64; i++) c.groups.push_back(groups[i]);
  }
  return c;
}

// Builds a request stamped with the caller's identity.
struct Request {
  capnp::MallocMessageBuilder message;
  wire::Request::Builder root;

  explicit Request(const Caller& c) : root(message.initRoot<wire::Request>()) {
    ToWire(c, root.initCaller());
  }
  explicit Request(fuse_req_t req) : Request(CallerOf(req)) {}
};

struct DirHandle {
  std::mutex mu;  // guards everything below (rank: leaf)
  std::vector<DirEntry> entries;  // a window of the directory, in cookie order
  uint64_t after = 0;             // `entries` are those with cookie > after
  bool eof = false;               // `entries` reach the end of the directory
};

}  // namespace

struct FuseOps::Impl {
  static double Timeout(FuseOps* s, LockMode m) {
    return m == LockMode::kNone ? 0.0 : s->config_.cached_timeout_s;
  }

  static void Count(FuseOps* s, int opcode) { s->stats_.fuse_ops[opcode]++; }

  // An entry the kernel caches: the name while the directory is held, the
  // attributes while the inode is held (both pinned until the reply is out).
  static fuse_entry_param EntryFor(FuseOps* s, InodeId parent, const std::string& name,
                                   const Attr& attr) {
    ObjectCache& cache = s->core_.cache();
    fuse_entry_param e{};
    e.ino = attr.ino.value;
    e.generation = attr.generation;
    e.attr = ToStat(cache.GetAttr(attr.ino).value_or(attr));  // local changes win
    e.attr_timeout = Timeout(s, cache.lock(attr.ino));
    e.entry_timeout = Timeout(s, cache.lock(parent));
    if (e.entry_timeout > 0) cache.NoteKernelName(parent, name);
    return e;
  }

  static void ReplyEntry(FuseOps* s, fuse_req_t req, InodeId parent, const std::string& name,
                         const Attr& attr) {
    FsClient::ReplyPin pin(s->core_, parent, attr.ino);
    fuse_entry_param e = EntryFor(s, parent, name, attr);
    s->core_.cache().AddLookup(attr.ino);
    if (fuse_reply_entry(req, &e) != 0) s->core_.cache().Forget(attr.ino, 1);
  }

  static void ReplyNegative(FuseOps* s, fuse_req_t req, InodeId parent, const std::string& name) {
    FsClient::ReplyPin pin(s->core_, parent, InodeId());
    fuse_entry_param e{};
    e.ino = 0;
    e.entry_timeout = Timeout(s, s->core_.cache().lock(parent));
    if (e.entry_timeout > 0) s->core_.cache().NoteKernelName(parent, name);
    fuse_reply_entry(req, &e);
  }

  static void ReplyAttr(FuseOps* s, fuse_req_t req, const Attr& attr) {
    FsClient::ReplyPin pin(s->core_, attr.ino, InodeId());
    ObjectCache& cache = s->core_.cache();
    struct stat st = ToStat(cache.GetAttr(attr.ino).value_or(attr));
    fuse_reply_attr(req, &st, Timeout(s, cache.lock(attr.ino)));
  }

  static void ReplyErr(fuse_req_t req, const Status& st) { fuse_reply_err(req, st.errno_value()); }

  // ---- operations

  static void Init(void* userdata, fuse_conn_info* conn) {
    auto* s = static_cast<FuseOps*>(userdata);
    conn->want |= FUSE_CAP_READDIRPLUS | FUSE_CAP_ASYNC_READ;
    conn->want &= ~(FUSE_CAP_READDIRPLUS_AUTO | FUSE_CAP_WRITEBACK_CACHE |
                    FUSE_CAP_AUTO_INVAL_DATA | FUSE_CAP_DONT_MASK);
    if (conn->capable & FUSE_CAP_EXPLICIT_INVAL_DATA) conn->want |= FUSE_CAP_EXPLICIT_INVAL_DATA;
    conn->max_write = kMaxIoBytes;
    conn->max_readahead = kMaxIoBytes;
    conn->time_gran = 1;
    if (s->on_init_) s->on_init_();
  }

  // Unmount: everything logged reaches the server and is made durable.
  static void Destroy(void* userdata) {
    static_cast<FuseOps*>(userdata)->core_.Unmount();
  }

  static void Lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
    FuseOps* s = Self(req);
    Count(s, FUSE_LOOKUP);
    if (std::strlen(name) > kMaxNameBytes) return (void)fuse_reply_err(req, ENAMETOOLONG);
    Attr cached;
    switch (s->core_.cache().Lookup(InodeId(parent), name, &cached)) {
      case ObjectCache::LookupResult::kFound:
        s->stats_.cache_hits++;
        return ReplyEntry(s, req, InodeId(parent), name, cached);
      case ObjectCache::LookupResult::kNegative:
        s->stats_.negative_hits++;
        return ReplyNegative(s, req, InodeId(parent), name);
      case ObjectCache::LookupResult::kUnknown:
        break;
    }
    Request r(req);
    auto l = r.root.initLookup();
    l.setParent(parent);
    l.setName(AsData(name));
    l.setWantLeaf(true);
    auto reply = s->core_.Call(r.message);
    if (!reply.ok()) return ReplyErr(req, reply.status());
    s->core_.AbsorbLookup(InodeId(parent), *reply);
    if (!reply->root().isAttr()) return ReplyNegative(s, req, InodeId(parent), name);
    LockMode lock;
    Attr attr = s->core_.AbsorbAttr(*reply, &lock);
    ReplyEntry(s, req, InodeId(parent), name, attr);
  }

  static void ForgetOne(FuseOps* s, fuse_ino_t ino, uint64_t n, std::vector<uint64_t>* released) {
    if (ino == FUSE_ROOT_ID) return;
    if (s->core_.cache().Forget(InodeId(ino), n)) released->push_back(ino);
  }

  static void Forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
    FuseOps* s = Self(req);
    Count(s, FUSE_FORGET);
    std::vector<uint64_t> released;
    ForgetOne(s, ino, nlookup, &released);
    s->core_.QueueRelease(released);
    fuse_reply_none(req);
  }

  static void ForgetMulti(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
    FuseOps* s = Self(req);
    Count(s, FUSE_BATCH_FORGET);
    std::vector<uint64_t> released;
    for (size_t i = 0; i < count; i++) ForgetOne(s, forgets[i].ino, forgets[i].nlookup, &released);
    s->core_.QueueRelease(released);
    fuse_reply_none(req);
  }

  static void GetAttr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
    FuseOps* s = Self(req);
    Count(s, FUSE_GETATTR);
    if (auto a = s->core_.cache().GetAttr(InodeId(ino))) {
      s->stats_.cache_hits++;
      return ReplyAttr(s, req, *a);
    }
    if (Status fst = s->core_.FlushData(InodeId(ino)); !fst.ok()) return ReplyErr(req, fst);
    Request r(req);
    r.root.setGetAttr(ino);
    auto reply = s->core_.Call(r.message);
    if (!reply.ok()) return ReplyErr(req, reply.status());
    LockMode lock;
    ReplyAttr(s, req, s->core_.AbsorbAttr(*reply, &lock));
  }

  static SetAttrRequest FromFuse(const struct stat* attr, int to_set, const fuse_file_info* fi) {
    SetAttrRequest r;
    if (to_set & FUSE_SET_ATTR_MODE) r.mask |= kSetMode, r.mode = attr->st_mode;
    if (to_set & FUSE_SET_ATTR_UID) r.mask |= kSetUid, r.uid = attr->st_uid;
    if (to_set & FUSE_SET_ATTR_GID) r.mask |= kSetGid, r.gid = attr->st_gid;
    if (to_set & FUSE_SET_ATTR_SIZE) r.mask |= kSetSize, r.size = static_cast<uint64_t>(attr->st_size);
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
    if (Status fst = s->core_.FlushData(InodeId(ino)); !fst.ok()) return ReplyErr(req, fst);
    SetAttrRequest sr = FromFuse(attr, to_set, fi);
    Caller c = CallerOf(req);
    // Truncation frees or allocates space: the server does it at once.
    if (!(sr.mask & kSetSize)) {
      if (auto local = s->core_.SetAttrLocally(InodeId(ino), c, sr)) {
        if (!local->ok()) return ReplyErr(req, local->status());
        s->stats_.local_changes++;
        s->core_.WaitForSendWindow();
        return ReplyAttr(s, req, **local);
      }
    }
    Request r(c);
    ToWire(InodeId(ino), sr, r.root.initSetAttr());
    auto reply = s->core_.Call(r.message);
    if (!reply.ok()) return ReplyErr(req, reply.status());
    LockMode lock;
    ReplyAttr(s, req, s->core_.AbsorbAttr(*reply, &lock));
  }

  static void ReadLink(fuse_req_t req, fuse_ino_t ino) {
    FuseOps* s = Self(req);
    Count(s, FUSE_READLINK);
    Request r(req);
    r.root.setReadLink(ino);
    auto reply = s->core_.Call(r.message);
    if (!reply.ok()) return ReplyErr(req, reply.status());
    std::string target(AsView(reply->root().getTarget()));
    fuse_reply_readlink(req, target.c_str());
  }

  // Mknod, Mkdir, Symlink and Create share this: one RPC, entry reply.
  // A regular file goes in the writeback log when its directory is ours.
  template <typename Fill>
  static Result<Attr> MakeNode(FuseOps* s, fuse_req_t req, fuse_ino_t parent, const char* name,
                               LockMode* lock, Fill fill, uint32_t local_file_mode = 0) {
    if (std::strlen(name) > kMaxNameBytes) return Status::Error(ENAMETOOLONG);
    ASSIGN_OR_RETURN(uint64_t ino, s->core_.NewInode(CallerOf(req)));
    if (local_file_mode != 0) {
      auto local = s->core_.CreateLocally(InodeId(parent), name, CallerOf(req), local_file_mode,
                                          InodeId(ino));
      if (local) {
        if (local->ok()) s->stats_.local_changes++;
        s->core_.WaitForSendWindow();
        *lock = LockMode::kExclusive;
        return *local;
      }
    }
    Request r(req);
    fill(r.root, ino);
    ASSIGN_OR_RETURN(RpcReply reply, s->core_.Call(r.message));
    Attr attr = s->core_.AbsorbAttr(reply, lock);
    s->core_.cache().AddName(InodeId(parent), name, attr.ino);
    return attr;
  }

  static void Mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
                    dev_t rdev) {
    FuseOps* s = Self(req);
    Count(s, FUSE_MKNOD);
    LockMode lock;
    auto attr = MakeNode(s, req, parent, name, &lock, [&](wire::Request::Builder b, uint64_t ino) {
      auto m = b.initMknod();
      m.setParent(parent);
      m.setName(AsData(name));
      m.setMode(mode);
      m.setRdev(rdev);
      m.setNewIno(ino);
    }, S_ISREG(mode) ? mode : 0);
    if (!attr.ok()) return ReplyErr(req, attr.status());
    ReplyEntry(s, req, InodeId(parent), name, *attr);
  }

  static void Mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
    FuseOps* s = Self(req);
    Count(s, FUSE_MKDIR);
    LockMode lock;
    auto attr = MakeNode(s, req, parent, name, &lock, [&](wire::Request::Builder b, uint64_t ino) {
      auto m = b.initMkdir();
      m.setParent(parent);
      m.setName(AsData(name));
      m.setMode(mode);
      m.setNewIno(ino);
    });
    if (!attr.ok()) return ReplyErr(req, attr.status());
    // A directory this client just made is empty: complete from birth.
    s->core_.cache().SetDirectory(attr->ino, {}, UINT64_MAX);
    ReplyEntry(s, req, InodeId(parent), name, *attr);
  }

  static void Symlink(fuse_req_t req, const char* target, fuse_ino_t parent, const char* name) {
    FuseOps* s = Self(req);
    Count(s, FUSE_SYMLINK);
    LockMode lock;
    auto attr = MakeNode(s, req, parent, name, &lock, [&](wire::Request::Builder b, uint64_t ino) {
      auto m = b.initSymlink();
      m.setParent(parent);
      m.setName(AsData(name));
      m.setTarget(AsData(target));
      m.setNewIno(ino);
    });
    if (!attr.ok()) return ReplyErr(req, attr.status());
    ReplyEntry(s, req, InodeId(parent), name, *attr);
  }

  static void Create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
                     fuse_file_info* fi) {
    FuseOps* s = Self(req);
    Count(s, FUSE_CREATE);
    LockMode lock;
    auto attr = MakeNode(s, req, parent, name, &lock, [&](wire::Request::Builder b, uint64_t ino) {
      auto m = b.initMknod();
      m.setParent(parent);
      m.setName(AsData(name));
      m.setMode((mode & ~S_IFMT) | S_IFREG);
      m.setNewIno(ino);
    }, (mode & ~S_IFMT) | S_IFREG);
    if (!attr.ok()) return ReplyErr(req, attr.status());
    FsClient::ReplyPin pin(s->core_, InodeId(parent), attr->ino);
    fuse_entry_param e = EntryFor(s, InodeId(parent), name, *attr);
    fi->keep_cache = s->core_.cache().lock(attr->ino) != LockMode::kNone;
    if (fi->flags & O_APPEND) fi->direct_io = 1;  // see Open
    s->core_.cache().AddLookup(attr->ino);
    if (fuse_reply_create(req, &e, fi) != 0) s->core_.cache().Forget(attr->ino, 1);
  }

  static void Link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t new_parent, const char* new_name) {
    FuseOps* s = Self(req);
    Count(s, FUSE_LINK);
    if (Status fst = s->core_.FlushData(InodeId(ino)); !fst.ok()) return ReplyErr(req, fst);
    Request r(req);
    auto l = r.root.initLink();
    l.setIno(ino);
    l.setNewParent(new_parent);
    l.setNewName(AsData(new_name));
    auto reply = s->core_.Call(r.message);
    if (!reply.ok()) return ReplyErr(req, reply.status());
    LockMode lock;
    Attr attr = s->core_.AbsorbAttr(*reply, &lock);
    s->core_.cache().AddName(InodeId(new_parent), new_name, attr.ino);
    ReplyEntry(s, req, InodeId(new_parent), new_name, attr);
  }

  static void RemoveName(fuse_req_t req, fuse_ino_t parent, const char* name, bool dir) {
    FuseOps* s = Self(req);
    Count(s, dir ? FUSE_RMDIR : FUSE_UNLINK);
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
    if (s->core_.cache().Lookup(InodeId(parent), name, &child) == ObjectCache::LookupResult::kFound) {
      // The reply carries the child's server attributes: send its data first.
      if (Status fst = s->core_.FlushData(child.ino); !fst.ok()) return ReplyErr(req, fst);
    }
    auto reply = s->core_.Call(r.message);
    if (!reply.ok()) return ReplyErr(req, reply.status());
    s->core_.Absorb(*reply);
    s->core_.cache().RemoveName(InodeId(parent), name);
    fuse_reply_err(req, 0);
  }
  static void Unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
    RemoveName(req, parent, name, false);
  }
  static void Rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
    RemoveName(req, parent, name, true);
  }

  static void Rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t new_parent,
                     const char* new_name, unsigned int flags) {
    FuseOps* s = Self(req);
    Count(s, FUSE_RENAME2);
    if (flags & ~(kRenameNoReplace | kRenameExchange)) return (void)fuse_reply_err(req, EINVAL);
    Attr moved{}, victim{};
    bool know_moved = s->core_.cache().Lookup(InodeId(parent), name, &moved) ==
                      ObjectCache::LookupResult::kFound;
    auto victim_state = s->core_.cache().Lookup(InodeId(new_parent), new_name, &victim);
    for (const Attr* a : {&moved, &victim}) {
      if (a->ino.valid()) {
        if (Status fst = s->core_.FlushData(a->ino); !fst.ok()) return ReplyErr(req, fst);
      }
    }
    Request r(req);
    auto m = r.root.initRename();
    m.setParent(parent);
    m.setName(AsData(name));
    m.setNewParent(new_parent);
    m.setNewName(AsData(new_name));
    m.setFlags(flags);
    auto reply = s->core_.Call(r.message);
    if (!reply.ok()) return ReplyErr(req, reply.status());
    s->core_.Absorb(*reply);
    bool exchange = flags & kRenameExchange;
    bool know_victim = victim_state != ObjectCache::LookupResult::kUnknown;
    if (know_moved && (!exchange || know_victim)) {
      s->core_.cache().RemoveName(InodeId(parent), name);
      s->core_.cache().RemoveName(InodeId(new_parent), new_name);
      s->core_.cache().AddName(InodeId(new_parent), new_name, moved.ino);
      if (exchange) s->core_.cache().AddName(InodeId(parent), name, victim.ino);
    } else {
      s->core_.cache().ForgetDirectory(InodeId(parent));
      s->core_.cache().ForgetDirectory(InodeId(new_parent));
    }
    fuse_reply_err(req, 0);
  }

  static void Open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    FuseOps* s = Self(req);
    Count(s, FUSE_OPEN);
    if (fi->flags & O_TRUNC) {
      if (Status fst = s->core_.FlushData(InodeId(ino)); !fst.ok()) return ReplyErr(req, fst);
    }
    const fuse_ctx* ctx = fuse_req_ctx(req);
    LockMode lock = s->core_.cache().lock(InodeId(ino));
    // The kernel has checked permissions (default_permissions); the server
    // checks again for anyone but root, who may open anything it can reach.
    // O_TRUNC always goes to the server: with atomic_o_trunc, open truncates.
    if (ctx->uid != 0 || lock == LockMode::kNone || (fi->flags & O_TRUNC)) {
      Request r(req);
      auto o = r.root.initOpen();
      o.setIno(ino);
      o.setFlags(fi->flags);
      auto reply = s->core_.Call(r.message);
      if (!reply.ok()) return ReplyErr(req, reply.status());
      s->core_.AbsorbAttr(*reply, &lock);
    } else {
      s->stats_.cache_hits++;
    }
    fi->keep_cache = lock != LockMode::kNone;
    // O_APPEND writes go where the daemon (or the server) finds the end, not
    // where the kernel's possibly stale size says: keep them out of the page cache.
    if (fi->flags & O_APPEND) fi->direct_io = 1;
    fuse_reply_open(req, fi);
  }

  static void Read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
    FuseOps* s = Self(req);
    Count(s, FUSE_READ);
    if (Status fst = s->core_.FlushData(InodeId(ino)); !fst.ok()) return ReplyErr(req, fst);
    Request r(req);
    auto rd = r.root.initRead();
    rd.setIno(ino);
    rd.setOffset(static_cast<uint64_t>(off));
    rd.setLength(static_cast<uint32_t>(std::min<size_t>(size, kMaxIoBytes)));
    // A recall of the inode waits for this read, and holds later ones back
    // until its release is out, so no page outlives the lock.
    s->core_.BeginRead(InodeId(ino));
    auto reply = s->core_.Call(r.message);
    if (!reply.ok()) {
      s->core_.EndRead(InodeId(ino));
      return ReplyErr(req, reply.status());
    }
    s->core_.Absorb(*reply);
    s->core_.cache().SetLock(InodeId(ino), GrantedTo(*reply, InodeId(ino)), reply->request_id());
    const std::string& data = reply->bulk();
    fuse_reply_buf(req, data.data(), data.size());
    // Not held: the kernel must not keep these pages (nobody would recall them).
    if (s->core_.cache().lock(InodeId(ino)) == LockMode::kNone) {
      if (fuse_session* se = s->session_.load()) fuse_lowlevel_notify_inval_inode(se, ino, off, size);
    }
    s->core_.EndRead(InodeId(ino));
  }

  static LockMode GrantedTo(const RpcReply& reply, InodeId ino) {
    LockMode m = LockMode::kNone;
    for (auto g : reply.root().getGrants()) {
      if (g.getIno() == ino.value) m = std::max(m, cohfs::FromWire(g.getMode()));
    }
    return m;
  }

  static void Write(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off,
                    fuse_file_info* fi) {
    FuseOps* s = Self(req);
    Count(s, FUSE_WRITE);
    if (size > kMaxIoBytes) return (void)fuse_reply_err(req, EINVAL);
    Status st = s->core_.Write(InodeId(ino), CallerOf(req), static_cast<uint64_t>(off),
                               std::string_view(buf, size), (fi->flags & O_APPEND) != 0);
    if (!st.ok()) return ReplyErr(req, st);
    fuse_reply_write(req, size);
  }

  static void Flush(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
    FuseOps* s = Self(req);
    Count(s, FUSE_FLUSH);
    Status st = s->core_.FlushData(InodeId(ino));
    if (st.ok()) st = s->core_.TakeDeferredError(InodeId(ino));  // close() reports what failed so far
    fuse_reply_err(req, st.ok() ? 0 : st.errno_value());
  }

  static void Release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    FuseOps* s = Self(req);
    Count(s, FUSE_RELEASE);
    if (fi->flock_release) {  // the last close of the open file drops its flock lock
      Status st = SetFlock(s, Caller{}, ino, fi->lock_owner, LOCK_UN);
      if (!st.ok()) LOG(Warn) << "flock release of inode " << ino << ": " << st.ToString();
    }
    Status st = s->core_.FlushAndDropData(InodeId(ino));
    if (!st.ok()) LOG(Warn) << "deferred write of inode " << ino << " lost: " << st.ToString();
    fuse_reply_err(req, 0);
  }

  static void SyncInode(fuse_req_t req, fuse_ino_t ino, int opcode) {
    FuseOps* s = Self(req);
    Count(s, opcode);
    if (Status fst = s->core_.FlushData(InodeId(ino)); !fst.ok()) return ReplyErr(req, fst);
    Request r(req);
    r.root.setFsync(ino);
    auto reply = s->core_.Call(r.message);
    // Every write and commit sent before the fsync has been answered by now.
    Status st = reply.ok() ? s->core_.TakeDeferredError(InodeId(ino)) : reply.status();
    fuse_reply_err(req, st.errno_value());
  }
  static void Fsync(fuse_req_t req, fuse_ino_t ino, int, fuse_file_info*) {
    SyncInode(req, ino, FUSE_FSYNC);
  }
  static void FsyncDir(fuse_req_t req, fuse_ino_t ino, int, fuse_file_info*) {
    SyncInode(req, ino, FUSE_FSYNCDIR);
  }

  static void OpenDir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    FuseOps* s = Self(req);
    Count(s, FUSE_OPENDIR);
    fi->fh = reinterpret_cast<uint64_t>(new DirHandle());  // owned by the kernel's handle
    fi->keep_cache = 1;
    fuse_reply_open(req, fi);
  }

  static void ReleaseDir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
    Count(Self(req), FUSE_RELEASEDIR);
    std::unique_ptr<DirHandle> owned(reinterpret_cast<DirHandle*>(fi->fh));
    fuse_reply_err(req, 0);
  }

  // Makes sure `h` holds the entries after `off` (fetching a batch if needed).
  static Status FillDir(FuseOps* s, fuse_req_t req, fuse_ino_t ino, DirHandle& h, uint64_t off) {
    uint64_t after = std::max<uint64_t>(off, 2);
    bool covered = !h.entries.empty() && h.after <= after &&
                   (after < h.entries.back().cookie || h.eof);
    if (covered || (h.eof && h.entries.empty() && h.after <= after)) return Status::Ok();
    Request r(req);
    auto rd = r.root.initReadDir();
    rd.setIno(ino);
    rd.setCookie(after);
    rd.setMaxEntries(s->config_.readdir_batch);
    ASSIGN_OR_RETURN(RpcReply reply, s->core_.Call(r.message));
    h.entries = s->core_.AbsorbEntries(reply);
    h.after = after;
    h.eof = h.entries.size() < s->config_.readdir_batch;
    return Status::Ok();
  }

  // Packs entries into a readdir(plus) reply buffer; returns false when full.
  struct DirPacker {
    FuseOps* s;
    fuse_req_t req;
    InodeId dir;
    bool plus;
    std::vector<char> buf;
    size_t used = 0;
    std::vector<InodeId> counted;  // lookups the kernel now holds (readdirplus)

    bool Add(const std::string& name, const Attr& attr, uint64_t next_off, bool count) {
      size_t n;
      size_t size = buf.size();
      if (plus) {
        fuse_entry_param e{};
        e.attr = ToStat(s->core_.cache().GetAttr(attr.ino).value_or(attr));  // local changes win
        if (count) e = EntryFor(s, dir, name, attr);
        n = fuse_add_direntry_plus(req, buf.data() + used, size - used, name.c_str(), &e,
                                   static_cast<off_t>(next_off));
      } else {
        struct stat st = ToStat(attr);
        n = fuse_add_direntry(req, buf.data() + used, size - used, name.c_str(), &st,
                              static_cast<off_t>(next_off));
      }
      if (n > size - used) return false;
      used += n;
      if (plus && count) counted.push_back(attr.ino);
      return true;
    }
  };

  static void ReadDirCommon(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                            fuse_file_info* fi, bool plus) {
    FuseOps* s = Self(req);
    Count(s, plus ? FUSE_READDIRPLUS : FUSE_READDIR);
    auto* h = reinterpret_cast<DirHandle*>(fi->fh);
    uint64_t pos = static_cast<uint64_t>(off);
    std::vector<DirEntry> window;  // the entries after pos, fetched if needed
    {
      // Released before replying: once the kernel has the reply, releasedir
      // may free the handle on another thread.
      std::lock_guard<std::mutex> l(h->mu);
      Status st = FillDir(s, req, ino, *h, pos);
      if (!st.ok()) return ReplyErr(req, st);
      for (const DirEntry& e : h->entries) {
        if (e.cookie > pos) window.push_back(e);
      }
    }
    // Entry and attribute timeouts come from the locks as they are while the
    // reply goes out (a recall waits for it, then invalidates).
    std::optional<FsClient::AllPins> pins;
    if (plus) pins.emplace(s->core_);
    DirPacker p{s, req, InodeId(ino), plus, std::vector<char>(size), 0, {}};
    Attr dot{};
    dot.ino = InodeId(ino);
    dot.mode = S_IFDIR;
    bool room = pos > 0 || p.Add(".", dot, 1, false);
    if (room && pos <= 1) room = p.Add("..", dot, 2, false);
    for (size_t i = 0; room && i < window.size(); i++) {
      room = p.Add(window[i].name, window[i].attr, window[i].cookie, true);
    }
    for (InodeId i : p.counted) s->core_.cache().AddLookup(i);
    fuse_reply_buf(req, p.buf.data(), p.used);
  }
  static void ReadDir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                      fuse_file_info* fi) {
    ReadDirCommon(req, ino, size, off, fi, false);
  }
  static void ReadDirPlus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                          fuse_file_info* fi) {
    ReadDirCommon(req, ino, size, off, fi, true);
  }

  static void StatFs(fuse_req_t req, fuse_ino_t) {
    FuseOps* s = Self(req);
    Count(s, FUSE_STATFS);
    Request r(req);
    r.root.setStatFs();
    auto reply = s->core_.Call(r.message);
    if (!reply.ok()) return ReplyErr(req, reply.status());
    FsStat fs = cohfs::FromWire(reply->root().getFsStat());
    struct statvfs v{};
    v.f_bsize = v.f_frsize = fs.block_bytes;
    v.f_blocks = fs.total_blocks;
    v.f_bfree = v.f_bavail = fs.free_blocks;
    v.f_files = fs.total_inodes;
    v.f_ffree = v.f_favail = fs.free_inodes;
    v.f_namemax = fs.max_name_bytes;
    fuse_reply_statfs(req, &v);
  }

  // Replies to getxattr/listxattr with the size-probe protocol of xattr(7).
  static void ReplySized(fuse_req_t req, const std::string& value, size_t size) {
    if (size == 0) return (void)fuse_reply_xattr(req, value.size());
    if (value.size() > size) return (void)fuse_reply_err(req, ERANGE);
    fuse_reply_buf(req, value.data(), value.size());
  }

  static void SetXattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value,
                       size_t size, int flags) {
    FuseOps* s = Self(req);
    Count(s, FUSE_SETXATTR);
    if (Status fst = s->core_.FlushData(InodeId(ino)); !fst.ok()) return ReplyErr(req, fst);
    Request r(req);
    auto x = r.root.initSetXattr();
    x.setIno(ino);
    x.setName(AsData(name));
    x.setValue(AsData(std::string_view(value, size)));
    x.setFlags(flags);
    auto reply = s->core_.Call(r.message);
    if (!reply.ok()) return ReplyErr(req, reply.status());
    LockMode lock;
    s->core_.AbsorbAttr(*reply, &lock);
    fuse_reply_err(req, 0);
  }

  static void GetXattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
    FuseOps* s = Self(req);
    Count(s, FUSE_GETXATTR);
    if (ino == FUSE_ROOT_ID && std::strcmp(name, kStatsXattr) == 0) {
      return ReplySized(req, s->stats_.Format(), size);
    }
    if (auto a = s->core_.cache().GetAttr(InodeId(ino)); a && !(a->flags & kInodeHasXattrs)) {
      s->stats_.cache_hits++;  // e.g. security.capability, asked on every write
      return (void)fuse_reply_err(req, ENODATA);
    }
    Request r(req);
    auto x = r.root.initGetXattr();
    x.setIno(ino);
    x.setName(AsData(name));
    auto reply = s->core_.Call(r.message);
    if (!reply.ok()) return ReplyErr(req, reply.status());
    ReplySized(req, std::string(AsView(reply->root().getValue())), size);
  }

  static void ListXattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
    FuseOps* s = Self(req);
    Count(s, FUSE_LISTXATTR);
    if (auto a = s->core_.cache().GetAttr(InodeId(ino)); a && !(a->flags & kInodeHasXattrs)) {
      s->stats_.cache_hits++;
      return ReplySized(req, std::string(), size);
    }
    Request r(req);
    r.root.setListXattr(ino);
    auto reply = s->core_.Call(r.message);
    if (!reply.ok()) return ReplyErr(req, reply.status());
    std::string names;
    for (auto n : reply->root().getNames()) {
      names.append(AsView(n));
      names.push_back('\0');
    }
    ReplySized(req, names, size);
  }

  static void RemoveXattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
    FuseOps* s = Self(req);
    Count(s, FUSE_REMOVEXATTR);
    if (Status fst = s->core_.FlushData(InodeId(ino)); !fst.ok()) return ReplyErr(req, fst);
    Request r(req);
    auto x = r.root.initRemoveXattr();
    x.setIno(ino);
    x.setName(AsData(name));
    auto reply = s->core_.Call(r.message);
    if (!reply.ok()) return ReplyErr(req, reply.status());
    LockMode lock;
    s->core_.AbsorbAttr(*reply, &lock);
    fuse_reply_err(req, 0);
  }

  // ---- file locks (fcntl, OFD, flock), arbitrated by the server

  static void FillLock(wire::FileLock::Builder b, fuse_ino_t ino, uint64_t owner,
                       const struct flock* lk) {
    b.setIno(ino);
    b.setOwner(owner);
    b.setStart(static_cast<uint64_t>(lk->l_start));
    b.setEnd(lk->l_len == 0 ? UINT64_MAX : static_cast<uint64_t>(lk->l_start + lk->l_len - 1));
    b.setType(lk->l_type == F_RDLCK ? 0 : lk->l_type == F_WRLCK ? 1 : 2);
    b.setPid(static_cast<uint32_t>(lk->l_pid));
  }

  static void GetLk(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi, struct flock* lk) {
    FuseOps* s = Self(req);
    Count(s, FUSE_GETLK);
    Request r(req);
    FillLock(r.root.initGetLock(), ino, fi->lock_owner, lk);
    auto reply = s->core_.Call(r.message);
    if (!reply.ok()) return ReplyErr(req, reply.status());
    auto held = reply->root().getLock();
    lk->l_type = F_UNLCK;
    if (held.getType() <= 1) {
      lk->l_type = held.getType() == 0 ? F_RDLCK : F_WRLCK;
      lk->l_start = static_cast<off_t>(held.getStart());
      lk->l_len = held.getEnd() == UINT64_MAX ? 0 : static_cast<off_t>(held.getEnd() - held.getStart() + 1);
      lk->l_pid = static_cast<pid_t>(held.getPid());
    }
    fuse_reply_lock(req, lk);
  }

  static void SetLk(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi, struct flock* lk,
                    int sleep) {
    FuseOps* s = Self(req);
    Count(s, sleep ? FUSE_SETLKW : FUSE_SETLK);
    Request r(req);
    auto set = r.root.initSetLock();
    FillLock(set.initLock(), ino, fi->lock_owner, lk);
    set.setWait(sleep != 0);
    auto reply = s->core_.Call(r.message, {}, sleep ? -1 : RpcClient::kCallTimeoutMs);
    fuse_reply_err(req, reply.ok() ? 0 : reply.errno_value());
  }

  static Status SetFlock(FuseOps* s, const Caller& c, fuse_ino_t ino, uint64_t owner, int op) {
    Request r(c);
    auto set = r.root.initSetLock();
    auto l = set.initLock();
    l.setIno(ino);
    l.setOwner(owner);
    l.setFlock(true);
    l.setEnd(UINT64_MAX);
    int kind = op & (LOCK_SH | LOCK_EX | LOCK_UN);
    l.setType(kind == LOCK_SH ? 0 : kind == LOCK_EX ? 1 : 2);
    bool wait = kind != LOCK_UN && !(op & LOCK_NB);
    set.setWait(wait);
    return s->core_.Call(r.message, {}, wait ? -1 : RpcClient::kCallTimeoutMs).status();
  }

  static void Flock(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi, int op) {
    FuseOps* s = Self(req);
    Count(s, FUSE_SETLK);
    Status st = SetFlock(s, CallerOf(req), ino, fi->lock_owner, op);
    fuse_reply_err(req, st.ok() ? 0 : (st.errno_value() == EAGAIN ? EWOULDBLOCK : st.errno_value()));
  }

  static void Access(fuse_req_t req, fuse_ino_t ino, int mask) {
    FuseOps* s = Self(req);
    Count(s, FUSE_ACCESS);
    Request r(req);
    auto a = r.root.initAccess();
    a.setIno(ino);
    a.setMask(mask);
    auto reply = s->core_.Call(r.message);
    fuse_reply_err(req, reply.ok() ? 0 : reply.errno_value());
  }

  static void Fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
                        fuse_file_info*) {
    FuseOps* s = Self(req);
    Count(s, FUSE_FALLOCATE);
    if (Status fst = s->core_.FlushData(InodeId(ino)); !fst.ok()) return ReplyErr(req, fst);
    Request r(req);
    auto f = r.root.initFallocate();
    f.setIno(ino);
    f.setMode(mode);
    f.setOffset(static_cast<uint64_t>(offset));
    f.setLength(static_cast<uint64_t>(length));
    auto reply = s->core_.Call(r.message);
    if (!reply.ok()) return ReplyErr(req, reply.status());
    LockMode lock;
    s->core_.AbsorbAttr(*reply, &lock);
    fuse_reply_err(req, 0);
  }

  static void Lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, fuse_file_info*) {
    FuseOps* s = Self(req);
    Count(s, FUSE_LSEEK);
    if (Status fst = s->core_.FlushData(InodeId(ino)); !fst.ok()) return ReplyErr(req, fst);
    Request r(req);
    auto l = r.root.initLseek();
    l.setIno(ino);
    l.setOffset(static_cast<uint64_t>(off));
    l.setWhence(whence);
    auto reply = s->core_.Call(r.message);
    if (!reply.ok()) return ReplyErr(req, reply.status());
    fuse_reply_lseek(req, static_cast<off_t>(reply->root().getOffset()));
  }
};

FuseOps::FuseOps(RpcClient& rpc, ClientStats& stats, const FuseOpsConfig& config)
    : stats_(stats), config_(config), core_(rpc, stats) {
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

const fuse_lowlevel_ops& FuseOps::Table() {
  static const fuse_lowlevel_ops ops = [] {
    fuse_lowlevel_ops o{};
    o.init = Impl::Init;
    o.destroy = Impl::Destroy;
    o.lookup = Impl::Lookup;
    o.forget = Impl::Forget;
    o.forget_multi = Impl::ForgetMulti;
    o.getattr = Impl::GetAttr;
    o.setattr = Impl::SetAttr;
    o.readlink = Impl::ReadLink;
    o.mknod = Impl::Mknod;
    o.mkdir = Impl::Mkdir;
    o.unlink = Impl::Unlink;
    o.rmdir = Impl::Rmdir;
    o.symlink = Impl::Symlink;
    o.rename = Impl::Rename;
    o.link = Impl::Link;
    o.open = Impl::Open;
    o.read = Impl::Read;
    o.write = Impl::Write;
    o.flush = Impl::Flush;
    o.release = Impl::Release;
    o.fsync = Impl::Fsync;
    o.opendir = Impl::OpenDir;
    o.readdir = Impl::ReadDir;
    o.readdirplus = Impl::ReadDirPlus;
    o.releasedir = Impl::ReleaseDir;
    o.fsyncdir = Impl::FsyncDir;
    o.statfs = Impl::StatFs;
    o.setxattr = Impl::SetXattr;
    o.getxattr = Impl::GetXattr;
    o.listxattr = Impl::ListXattr;
    o.removexattr = Impl::RemoveXattr;
    o.access = Impl::Access;
    o.getlk = Impl::GetLk;
    o.setlk = Impl::SetLk;
    o.flock = Impl::Flock;
    o.create = Impl::Create;
    o.fallocate = Impl::Fallocate;
    o.lseek = Impl::Lseek;
    return o;
  }();
  return ops;
}

}  // namespace cohfs
