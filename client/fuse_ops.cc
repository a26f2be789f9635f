#include "client/fuse_ops.h"

#include <fcntl.h>
#include <linux/fuse.h>
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

LockMode FromWire(wire::LockMode m) {
  switch (m) {
    case wire::LockMode::SHARED:
      return LockMode::kShared;
    case wire::LockMode::EXCLUSIVE:
      return LockMode::kExclusive;
    default:
      return LockMode::kNone;
  }
}

// The grants of one reply, indexed once (a reply may carry thousands).
class Grants {
 public:
  explicit Grants(wire::Reply::Reader r) {
    for (auto g : r.getGrants()) {
      LockMode& m = modes_[g.getIno()];
      m = std::max(m, FromWire(g.getMode()));
    }
  }
  LockMode For(InodeId ino) const {
    auto it = modes_.find(ino.value);
    return it == modes_.end() ? LockMode::kNone : it->second;
  }

 private:
  std::unordered_map<uint64_t, LockMode> modes_;
};
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

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
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

  // Applies what any reply teaches: attributes of changed inodes and grants.
  static void Absorb(FuseOps* s, const RpcReply& reply) {
    auto r = reply.root();
    Grants grants(r);
    for (auto a : r.getChanged()) {
      Attr attr = cohfs::FromWire(a);
      s->cache_.PutAttr(attr, grants.For(attr.ino), reply.log_seq());
    }
  }

  // The reply's main inode, as the cache now has it (a local change the reply
  // predates wins).
  static Attr AbsorbAttr(FuseOps* s, const RpcReply& reply, LockMode* lock) {
    Absorb(s, reply);
    Attr attr = cohfs::FromWire(reply.root().getAttr());
    *lock = Grants(reply.root()).For(attr.ino);
    return s->cache_.PutAttr(attr, *lock, reply.log_seq());
  }

  static void ReplyEntry(FuseOps* s, fuse_req_t req, const Attr& attr, LockMode lock) {
    fuse_entry_param e{};
    e.ino = attr.ino.value;
    e.generation = attr.generation;
    e.attr = ToStat(attr);
    e.attr_timeout = e.entry_timeout = Timeout(s, lock);
    s->cache_.AddLookup(attr.ino);
    if (fuse_reply_entry(req, &e) != 0) s->cache_.Forget(attr.ino, 1);
  }

  static void ReplyNegative(FuseOps* s, fuse_req_t req, LockMode dir_lock) {
    fuse_entry_param e{};
    e.ino = 0;
    e.entry_timeout = Timeout(s, dir_lock);
    fuse_reply_entry(req, &e);
  }

  static void ReplyErr(fuse_req_t req, const Status& st) { fuse_reply_err(req, st.errno_value()); }

  static Result<uint64_t> NewInode(FuseOps* s, fuse_req_t req) {
    while (true) {
      {
        std::lock_guard<std::mutex> l(s->ino_mu_);
        if (s->next_ino_ < s->end_ino_) return s->next_ino_++;
      }
      // Out of numbers: ask for a new range without holding the lock across
      // the round trip (two threads may both ask; the spare range is dropped).
      Request r(req);
      r.root.setAllocInodes(65536);
      ASSIGN_OR_RETURN(RpcReply reply, s->Call(r.message));
      auto range = reply.root().getInodes();
      if (range.getCount() == 0) return Status::Error(ENOSPC, "server gave no inodes");
      std::lock_guard<std::mutex> l(s->ino_mu_);
      if (s->next_ino_ >= s->end_ino_) {
        s->next_ino_ = range.getFirst();
        s->end_ino_ = range.getFirst() + range.getCount();
      }
    }
  }

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
    {
      std::lock_guard<std::mutex> l(s->ino_mu_);
      s->next_ino_ = s->rpc_.welcome().inodes_first;
      s->end_ino_ = s->next_ino_ + s->rpc_.welcome().inodes_count;
    }
    s->cache_.AddLookup(kRootInode, 1);  // the kernel never forgets the root
    if (s->on_init_) s->on_init_();
  }

  // Unmount: everything logged reaches the server and is made durable.
  static void Destroy(void* userdata) {
    auto* s = static_cast<FuseOps*>(userdata);
    s->SendReleases(0);
    Request r(Caller{});
    r.root.setSyncFs();
    auto reply = s->Call(r.message);
    if (!reply.ok()) LOG(Warn) << "final sync at unmount: " << reply.status().ToString();
  }

  static void Lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
    FuseOps* s = Self(req);
    Count(s, FUSE_LOOKUP);
    if (std::strlen(name) > kMaxNameBytes) return (void)fuse_reply_err(req, ENAMETOOLONG);
    Attr cached;
    switch (s->cache_.Lookup(InodeId(parent), name, &cached)) {
      case ObjectCache::LookupResult::kFound:
        s->stats_.cache_hits++;
        return ReplyEntry(s, req, cached, s->cache_.lock(cached.ino));
      case ObjectCache::LookupResult::kNegative:
        s->stats_.negative_hits++;
        return ReplyNegative(s, req, s->cache_.lock(InodeId(parent)));
      case ObjectCache::LookupResult::kUnknown:
        break;
    }
    Request r(req);
    auto l = r.root.initLookup();
    l.setParent(parent);
    l.setName(AsData(name));
    l.setWantLeaf(true);
    auto reply = s->Call(r.message);
    if (!reply.ok()) return ReplyErr(req, reply.status());
    auto root = reply->root();
    if (root.getLeafComplete()) {
      Grants grants(root);
      std::vector<DirEntry> entries;
      for (auto e : root.getLeaf()) {
        DirEntry d = cohfs::FromWire(e);
        s->cache_.PutAttr(d.attr, grants.For(d.attr.ino), reply->log_seq());
        entries.push_back(std::move(d));
      }
      s->cache_.SetDirectory(InodeId(parent), entries, reply->log_seq());
      s->cache_.SetLock(InodeId(parent), grants.For(InodeId(parent)));
    }
    if (!root.isAttr()) return ReplyNegative(s, req, s->cache_.lock(InodeId(parent)));
    LockMode lock;
    Attr attr = AbsorbAttr(s, *reply, &lock);
    ReplyEntry(s, req, attr, lock);
  }

  static void ForgetOne(FuseOps* s, fuse_ino_t ino, uint64_t n, std::vector<uint64_t>* released) {
    if (ino == FUSE_ROOT_ID) return;
    if (s->cache_.Forget(InodeId(ino), n)) released->push_back(ino);
  }

  // Queues lock releases; they go to the server in batches (SendReleases).
  static void QueueRelease(FuseOps* s, const std::vector<uint64_t>& inos) {
    if (inos.empty()) return;
    bool full;
    {
      std::lock_guard<std::mutex> l(s->release_mu_);
      if (s->pending_release_.empty()) s->oldest_release_ns_ = NowNs();
      s->pending_release_.insert(s->pending_release_.end(), inos.begin(), inos.end());
      full = s->pending_release_.size() >= kReleaseBatch;
    }
    if (full) s->SendReleases(0);
  }
  static constexpr size_t kReleaseBatch = 512;

  static void Forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
    FuseOps* s = Self(req);
    Count(s, FUSE_FORGET);
    std::vector<uint64_t> released;
    ForgetOne(s, ino, nlookup, &released);
    QueueRelease(s, released);
    fuse_reply_none(req);
  }

  static void ForgetMulti(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
    FuseOps* s = Self(req);
    Count(s, FUSE_BATCH_FORGET);
    std::vector<uint64_t> released;
    for (size_t i = 0; i < count; i++) ForgetOne(s, forgets[i].ino, forgets[i].nlookup, &released);
    QueueRelease(s, released);
    fuse_reply_none(req);
  }

  static void GetAttr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
    FuseOps* s = Self(req);
    Count(s, FUSE_GETATTR);
    if (auto a = s->cache_.GetAttr(InodeId(ino))) {
      s->stats_.cache_hits++;
      struct stat st = ToStat(*a);
      return (void)fuse_reply_attr(req, &st, Timeout(s, s->cache_.lock(InodeId(ino))));
    }
    if (Status fst = FlushData(s, ino); !fst.ok()) return ReplyErr(req, fst);
    Request r(req);
    r.root.setGetAttr(ino);
    auto reply = s->Call(r.message);
    if (!reply.ok()) return ReplyErr(req, reply.status());
    LockMode lock;
    Attr attr = AbsorbAttr(s, *reply, &lock);
    struct stat st = ToStat(attr);
    fuse_reply_attr(req, &st, Timeout(s, lock));
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
    if (Status fst = FlushData(s, ino); !fst.ok()) return ReplyErr(req, fst);
    SetAttrRequest sr = FromFuse(attr, to_set, fi);
    Caller c = CallerOf(req);
    // Truncation frees or allocates space: the server does it at once.
    if (!(sr.mask & kSetSize)) {
      if (auto local = s->SetAttrLocally(InodeId(ino), c, sr)) {
        if (!local->ok()) return ReplyErr(req, local->status());
        s->stats_.local_changes++;
        s->WaitForSendWindow();
        struct stat st = ToStat(**local);
        return (void)fuse_reply_attr(req, &st, s->config_.cached_timeout_s);
      }
    }
    Request r(c);
    ToWire(InodeId(ino), sr, r.root.initSetAttr());
    auto reply = s->Call(r.message);
    if (!reply.ok()) return ReplyErr(req, reply.status());
    LockMode lock;
    Attr out = AbsorbAttr(s, *reply, &lock);
    struct stat st = ToStat(out);
    fuse_reply_attr(req, &st, Timeout(s, lock));
  }

  static void ReadLink(fuse_req_t req, fuse_ino_t ino) {
    FuseOps* s = Self(req);
    Count(s, FUSE_READLINK);
    Request r(req);
    r.root.setReadLink(ino);
    auto reply = s->Call(r.message);
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
    ASSIGN_OR_RETURN(uint64_t ino, NewInode(s, req));
    if (local_file_mode != 0) {
      auto local = s->CreateLocally(InodeId(parent), name, CallerOf(req), local_file_mode, InodeId(ino));
      if (local) {
        if (local->ok()) s->stats_.local_changes++;
        s->WaitForSendWindow();
        *lock = LockMode::kExclusive;
        return *local;
      }
    }
    Request r(req);
    fill(r.root, ino);
    ASSIGN_OR_RETURN(RpcReply reply, s->Call(r.message));
    Attr attr = AbsorbAttr(s, reply, lock);
    s->cache_.AddName(InodeId(parent), name, attr.ino);
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
    ReplyEntry(s, req, *attr, lock);
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
    s->cache_.SetDirectory(attr->ino, {}, UINT64_MAX);
    ReplyEntry(s, req, *attr, lock);
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
    ReplyEntry(s, req, *attr, lock);
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
    fuse_entry_param e{};
    e.ino = attr->ino.value;
    e.generation = attr->generation;
    e.attr = ToStat(*attr);
    e.attr_timeout = e.entry_timeout = Timeout(s, lock);
    fi->keep_cache = lock != LockMode::kNone;
    s->cache_.AddLookup(attr->ino);
    if (fuse_reply_create(req, &e, fi) != 0) s->cache_.Forget(attr->ino, 1);
  }

  static void Link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t new_parent, const char* new_name) {
    FuseOps* s = Self(req);
    Count(s, FUSE_LINK);
    if (Status fst = FlushData(s, ino); !fst.ok()) return ReplyErr(req, fst);
    Request r(req);
    auto l = r.root.initLink();
    l.setIno(ino);
    l.setNewParent(new_parent);
    l.setNewName(AsData(new_name));
    auto reply = s->Call(r.message);
    if (!reply.ok()) return ReplyErr(req, reply.status());
    LockMode lock;
    Attr attr = AbsorbAttr(s, *reply, &lock);
    s->cache_.AddName(InodeId(new_parent), new_name, attr.ino);
    ReplyEntry(s, req, attr, lock);
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
    if (s->cache_.Lookup(InodeId(parent), name, &child) == ObjectCache::LookupResult::kFound) {
      // The reply carries the child's server attributes: send its data first.
      if (Status fst = FlushData(s, child.ino.value); !fst.ok()) return ReplyErr(req, fst);
    }
    auto reply = s->Call(r.message);
    if (!reply.ok()) return ReplyErr(req, reply.status());
    Absorb(s, *reply);
    s->cache_.RemoveName(InodeId(parent), name);
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
    bool know_moved = s->cache_.Lookup(InodeId(parent), name, &moved) ==
                      ObjectCache::LookupResult::kFound;
    auto victim_state = s->cache_.Lookup(InodeId(new_parent), new_name, &victim);
    for (const Attr* a : {&moved, &victim}) {
      if (a->ino.valid()) {
        if (Status fst = FlushData(s, a->ino.value); !fst.ok()) return ReplyErr(req, fst);
      }
    }
    Request r(req);
    auto m = r.root.initRename();
    m.setParent(parent);
    m.setName(AsData(name));
    m.setNewParent(new_parent);
    m.setNewName(AsData(new_name));
    m.setFlags(flags);
    auto reply = s->Call(r.message);
    if (!reply.ok()) return ReplyErr(req, reply.status());
    Absorb(s, *reply);
    bool exchange = flags & kRenameExchange;
    bool know_victim = victim_state != ObjectCache::LookupResult::kUnknown;
    if (know_moved && (!exchange || know_victim)) {
      s->cache_.RemoveName(InodeId(parent), name);
      s->cache_.RemoveName(InodeId(new_parent), new_name);
      s->cache_.AddName(InodeId(new_parent), new_name, moved.ino);
      if (exchange) s->cache_.AddName(InodeId(parent), name, victim.ino);
    } else {
      s->cache_.ForgetDirectory(InodeId(parent));
      s->cache_.ForgetDirectory(InodeId(new_parent));
    }
    fuse_reply_err(req, 0);
  }

  static void Open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    FuseOps* s = Self(req);
    Count(s, FUSE_OPEN);
    if (fi->flags & O_TRUNC) {
      if (Status fst = FlushData(s, ino); !fst.ok()) return ReplyErr(req, fst);
    }
    const fuse_ctx* ctx = fuse_req_ctx(req);
    LockMode lock = s->cache_.lock(InodeId(ino));
    // The kernel has checked permissions (default_permissions); the server
    // checks again for anyone but root, who may open anything it can reach.
    // O_TRUNC always goes to the server: with atomic_o_trunc, open truncates.
    if (ctx->uid != 0 || lock == LockMode::kNone || (fi->flags & O_TRUNC)) {
      Request r(req);
      auto o = r.root.initOpen();
      o.setIno(ino);
      o.setFlags(fi->flags);
      auto reply = s->Call(r.message);
      if (!reply.ok()) return ReplyErr(req, reply.status());
      AbsorbAttr(s, *reply, &lock);
    } else {
      s->stats_.cache_hits++;
    }
    fi->keep_cache = lock != LockMode::kNone;
    fuse_reply_open(req, fi);
  }

  static void Read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
    FuseOps* s = Self(req);
    Count(s, FUSE_READ);
    if (Status fst = FlushData(s, ino); !fst.ok()) return ReplyErr(req, fst);
    Request r(req);
    auto rd = r.root.initRead();
    rd.setIno(ino);
    rd.setOffset(static_cast<uint64_t>(off));
    rd.setLength(static_cast<uint32_t>(std::min<size_t>(size, kMaxIoBytes)));
    auto reply = s->Call(r.message);
    if (!reply.ok()) return ReplyErr(req, reply.status());
    const std::string& data = reply->bulk();
    fuse_reply_buf(req, data.data(), data.size());
  }

  // Sends one range of file data (the WriteBehind sender, or a direct write).
  static Status SendWrite(FuseOps* s, InodeId ino, const Caller& c, uint64_t off,
                          std::string data) {
    Request r(c);
    auto w = r.root.initWrite();
    w.setIno(ino.value);
    w.setOffset(off);
    ASSIGN_OR_RETURN(RpcReply reply, s->Call(r.message, std::move(data)));
    LockMode lock;
    AbsorbAttr(s, reply, &lock);
    return Status::Ok();
  }

  // The server must have this inode's buffered data before it answers about
  // it: send it (requests are applied in order, so no wait is needed).
  static Status FlushData(FuseOps* s, fuse_ino_t ino) {
    return s->write_behind_.Flush(InodeId(ino));
  }

  // A deferred write or logged change of `ino` the server refused is reported,
  // once, by the next write, close or fsync of it.
  static Status TakeDeferredError(FuseOps* s, fuse_ino_t ino) {
    return s->log_.TakeFailure(InodeId(ino));
  }

  static void Write(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off,
                    fuse_file_info*) {
    FuseOps* s = Self(req);
    Count(s, FUSE_WRITE);
    if (size > kMaxIoBytes) return (void)fuse_reply_err(req, EINVAL);
    Caller c = CallerOf(req);
    Status st = TakeDeferredError(s, ino);
    if (!st.ok()) return ReplyErr(req, st);
    if (s->cache_.lock(InodeId(ino)) == LockMode::kExclusive) {
      // Owned: answer from memory, send behind.
      st = s->write_behind_.Write(InodeId(ino), c, static_cast<uint64_t>(off),
                                  std::string_view(buf, size));
      if (st.ok()) {
        // Replies to requests sent before this write (e.g. of earlier data
        // still in flight) must not shrink the size it set.
        std::lock_guard<std::mutex> l(s->send_mu_);
        s->cache_.NoteLocalWrite(InodeId(ino), static_cast<uint64_t>(off) + size, NowNs(),
                                 s->log_.NoteLocalChange());
      }
    } else {
      st = FlushData(s, ino);
      if (st.ok()) st = SendWrite(s, InodeId(ino), c, static_cast<uint64_t>(off), std::string(buf, size));
    }
    if (!st.ok()) return ReplyErr(req, st);
    fuse_reply_write(req, size);
  }

  static void Flush(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
    FuseOps* s = Self(req);
    Count(s, FUSE_FLUSH);
    Status st = FlushData(s, ino);
    if (st.ok()) st = TakeDeferredError(s, ino);  // close() reports what failed so far
    fuse_reply_err(req, st.ok() ? 0 : st.errno_value());
  }

  static void Release(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
    FuseOps* s = Self(req);
    Count(s, FUSE_RELEASE);
    Status st = s->write_behind_.FlushAndDrop(InodeId(ino));
    if (!st.ok()) LOG(Warn) << "deferred write of inode " << ino << " lost: " << st.ToString();
    fuse_reply_err(req, 0);
  }

  static void SyncInode(fuse_req_t req, fuse_ino_t ino, int opcode) {
    FuseOps* s = Self(req);
    Count(s, opcode);
    if (Status fst = FlushData(s, ino); !fst.ok()) return ReplyErr(req, fst);
    Request r(req);
    r.root.setFsync(ino);
    auto reply = s->Call(r.message);
    // Every write and commit sent before the fsync has been answered by now.
    Status st = reply.ok() ? TakeDeferredError(s, ino) : reply.status();
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
    ASSIGN_OR_RETURN(RpcReply reply, s->Call(r.message));
    auto root = reply.root();
    Grants grants(root);
    h.entries.clear();
    for (auto e : root.getEntries()) {
      DirEntry d = cohfs::FromWire(e);
      s->cache_.PutAttr(d.attr, grants.For(d.attr.ino), reply.log_seq());
      h.entries.push_back(std::move(d));
    }
    h.after = after;
    h.eof = h.entries.size() < s->config_.readdir_batch;
    return Status::Ok();
  }

  static void ReadDirCommon(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                            fuse_file_info* fi, bool plus) {
    FuseOps* s = Self(req);
    Count(s, plus ? FUSE_READDIRPLUS : FUSE_READDIR);
    auto* h = reinterpret_cast<DirHandle*>(fi->fh);
    // The handle lock must be released before replying: once the kernel has
    // the reply, releasedir may free the handle on another thread.
    std::unique_lock<std::mutex> l(h->mu);
    std::vector<char> buf(size);
    size_t used = 0;
    std::vector<InodeId> counted;  // lookups the kernel now holds (readdirplus)
    auto add = [&](const char* name, const Attr& attr, uint64_t next_off, bool count) {
      size_t n;
      if (plus) {
        fuse_entry_param e{};
        e.attr = ToStat(s->cache_.GetAttr(attr.ino).value_or(attr));  // local changes win
        if (count) {
          e.ino = attr.ino.value;
          e.generation = attr.generation;
          e.attr_timeout = e.entry_timeout = Timeout(s, s->cache_.lock(attr.ino));
        }
        n = fuse_add_direntry_plus(req, buf.data() + used, size - used, name, &e,
                                   static_cast<off_t>(next_off));
      } else {
        struct stat st = ToStat(attr);
        n = fuse_add_direntry(req, buf.data() + used, size - used, name, &st,
                              static_cast<off_t>(next_off));
      }
      if (n > size - used) return false;
      used += n;
      if (plus && count) counted.push_back(attr.ino);
      return true;
    };
    uint64_t pos = static_cast<uint64_t>(off);
    Attr dot{};
    dot.ino = InodeId(ino);
    dot.mode = S_IFDIR;
    auto fill_entries = [&]() -> Status {
      if (pos == 0) {
        if (!add(".", dot, 1, false)) return Status::Ok();
        pos = 1;
      }
      if (pos == 1) {
        if (!add("..", dot, 2, false)) return Status::Ok();
        pos = 2;
      }
      while (true) {
        RETURN_IF_ERROR(FillDir(s, req, ino, *h, pos));
        bool progressed = false;
        for (const DirEntry& e : h->entries) {
          if (e.cookie <= pos) continue;
          if (!add(e.name.c_str(), e.attr, e.cookie, true)) return Status::Ok();  // buffer full
          pos = e.cookie;
          progressed = true;
        }
        if (h->eof || !progressed) return Status::Ok();
      }
    };
    Status st = fill_entries();
    l.unlock();
    if (!st.ok() && used == 0) return ReplyErr(req, st);
    for (InodeId i : counted) s->cache_.AddLookup(i);
    fuse_reply_buf(req, buf.data(), used);
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
    auto reply = s->Call(r.message);
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
    if (Status fst = FlushData(s, ino); !fst.ok()) return ReplyErr(req, fst);
    Request r(req);
    auto x = r.root.initSetXattr();
    x.setIno(ino);
    x.setName(AsData(name));
    x.setValue(AsData(std::string_view(value, size)));
    x.setFlags(flags);
    auto reply = s->Call(r.message);
    if (!reply.ok()) return ReplyErr(req, reply.status());
    LockMode lock;
    AbsorbAttr(s, *reply, &lock);
    fuse_reply_err(req, 0);
  }

  static void GetXattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
    FuseOps* s = Self(req);
    Count(s, FUSE_GETXATTR);
    if (ino == FUSE_ROOT_ID && std::strcmp(name, kStatsXattr) == 0) {
      return ReplySized(req, s->stats_.Format(), size);
    }
    if (auto a = s->cache_.GetAttr(InodeId(ino)); a && !(a->flags & kInodeHasXattrs)) {
      s->stats_.cache_hits++;  // e.g. security.capability, asked on every write
      return (void)fuse_reply_err(req, ENODATA);
    }
    Request r(req);
    auto x = r.root.initGetXattr();
    x.setIno(ino);
    x.setName(AsData(name));
    auto reply = s->Call(r.message);
    if (!reply.ok()) return ReplyErr(req, reply.status());
    ReplySized(req, std::string(AsView(reply->root().getValue())), size);
  }

  static void ListXattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
    FuseOps* s = Self(req);
    Count(s, FUSE_LISTXATTR);
    if (auto a = s->cache_.GetAttr(InodeId(ino)); a && !(a->flags & kInodeHasXattrs)) {
      s->stats_.cache_hits++;
      return ReplySized(req, std::string(), size);
    }
    Request r(req);
    r.root.setListXattr(ino);
    auto reply = s->Call(r.message);
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
    if (Status fst = FlushData(s, ino); !fst.ok()) return ReplyErr(req, fst);
    Request r(req);
    auto x = r.root.initRemoveXattr();
    x.setIno(ino);
    x.setName(AsData(name));
    auto reply = s->Call(r.message);
    if (!reply.ok()) return ReplyErr(req, reply.status());
    LockMode lock;
    AbsorbAttr(s, *reply, &lock);
    fuse_reply_err(req, 0);
  }

  static void Access(fuse_req_t req, fuse_ino_t ino, int mask) {
    FuseOps* s = Self(req);
    Count(s, FUSE_ACCESS);
    Request r(req);
    auto a = r.root.initAccess();
    a.setIno(ino);
    a.setMask(mask);
    auto reply = s->Call(r.message);
    fuse_reply_err(req, reply.ok() ? 0 : reply.errno_value());
  }

  static void Fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
                        fuse_file_info*) {
    FuseOps* s = Self(req);
    Count(s, FUSE_FALLOCATE);
    if (Status fst = FlushData(s, ino); !fst.ok()) return ReplyErr(req, fst);
    Request r(req);
    auto f = r.root.initFallocate();
    f.setIno(ino);
    f.setMode(mode);
    f.setOffset(static_cast<uint64_t>(offset));
    f.setLength(static_cast<uint64_t>(length));
    auto reply = s->Call(r.message);
    if (!reply.ok()) return ReplyErr(req, reply.status());
    LockMode lock;
    AbsorbAttr(s, *reply, &lock);
    fuse_reply_err(req, 0);
  }

  static void Lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, fuse_file_info*) {
    FuseOps* s = Self(req);
    Count(s, FUSE_LSEEK);
    if (Status fst = FlushData(s, ino); !fst.ok()) return ReplyErr(req, fst);
    Request r(req);
    auto l = r.root.initLseek();
    l.setIno(ino);
    l.setOffset(static_cast<uint64_t>(off));
    l.setWhence(whence);
    auto reply = s->Call(r.message);
    if (!reply.ok()) return ReplyErr(req, reply.status());
    fuse_reply_lseek(req, static_cast<off_t>(reply->root().getOffset()));
  }
};

void FuseOps::SendReleases(int64_t min_age_ms) {
  std::vector<uint64_t> inos;
  {
    std::lock_guard<std::mutex> l(release_mu_);
    if (pending_release_.empty() || NowNs() - oldest_release_ns_ < min_age_ms * 1000000) return;
    inos.swap(pending_release_);
  }
  capnp::MallocMessageBuilder m;
  auto root = m.initRoot<wire::Request>();
  ToWire(Caller{}, root.initCaller());
  auto list = root.initRelease(static_cast<unsigned>(inos.size()));
  for (size_t i = 0; i < inos.size(); i++) list.set(static_cast<unsigned>(i), inos[i]);
  // Changes to these inodes must reach the server while it still knows them as ours.
  std::lock_guard<std::mutex> l(send_mu_);
  ShipLogLocked();
  rpc_.Post(m);
}

void FuseOps::Tick() {
  {
    std::lock_guard<std::mutex> l(send_mu_);
    if (!log_.empty() && NowNs() - log_.oldest_ns() >= kLogDelayMs * 1000000) ShipLogLocked();
  }
  SendReleases(/*min_age_ms=*/500);
}

Result<RpcReply> FuseOps::Call(capnp::MallocMessageBuilder& m, std::string bulk) {
  RpcClient::Ticket ticket;
  uint64_t seq;
  {
    std::lock_guard<std::mutex> l(send_mu_);
    seq = ShipLogLocked();
    ticket = rpc_.Send(m, std::move(bulk));
  }
  auto reply = rpc_.Wait(ticket);
  if (reply.ok()) reply->set_log_seq(seq);
  return reply;
}

uint64_t FuseOps::ShipLogLocked() {
  if (log_.empty()) return log_.last_seq();
  std::vector<WritebackLog::Op> ops = log_.Drain();
  capnp::MallocMessageBuilder m;
  auto root = m.initRoot<wire::Request>();
  ToWire(Caller{}, root.initCaller());
  auto list = root.initCommit(static_cast<unsigned>(ops.size()));
  std::vector<InodeId> inos;
  for (size_t i = 0; i < ops.size(); i++) {
    const WritebackLog::Op& op = ops[i];
    auto out = list[static_cast<unsigned>(i)];
    ToWire(op.caller, out.initCaller());
    switch (op.kind) {
      case WritebackLog::Op::Kind::kSetAttr:
        ToWire(op.ino, op.setattr, out.initSetAttr());
        break;
      case WritebackLog::Op::Kind::kCreate: {
        auto m = out.initMknod();
        m.setParent(op.parent.value);
        m.setName(AsData(op.name));
        m.setMode(op.mode);
        m.setNewIno(op.ino.value);
        m.setNowNs(op.now_ns);
        break;
      }
    }
    inos.push_back(op.ino);
  }
  uint64_t seq = log_.last_seq();
  {
    std::lock_guard<std::mutex> l(flight_mu_);
    commits_in_flight_++;
  }
  rpc_.Post(m, [this, inos = std::move(inos), seq](Result<RpcReply> reply) {
    OnCommitted(inos, seq, std::move(reply));
  });
  return seq;
}

Status FuseOps::PostWrite(InodeId ino, const Caller& c, uint64_t offset, std::string data) {
  const size_t n = data.size();
  {
    std::lock_guard<std::mutex> l(flight_mu_);
    bytes_in_flight_ += n;
  }
  capnp::MallocMessageBuilder m;
  auto root = m.initRoot<wire::Request>();
  ToWire(c, root.initCaller());
  auto w = root.initWrite();
  w.setIno(ino.value);
  w.setOffset(offset);
  {
    std::lock_guard<std::mutex> l(send_mu_);
    uint64_t seq = ShipLogLocked();
    rpc_.Post(
        m,
        [this, ino, n, seq](Result<RpcReply> reply) {
          OnWritten(ino, seq, std::move(reply));
          {
            std::lock_guard<std::mutex> fl(flight_mu_);
            bytes_in_flight_ -= n;
          }
          flight_cv_.notify_all();
        },
        std::move(data));
  }
  WaitForSendWindow();
  return Status::Ok();
}

// Network thread (or a sender, when the connection is gone).
void FuseOps::OnWritten(InodeId ino, uint64_t seq, Result<RpcReply> reply) {
  if (!reply.ok()) {
    LOG(Warn) << "deferred write of inode " << ino.value << " failed: " << reply.status().ToString();
    log_.RecordFailure(ino, reply.status());
    return;
  }
  reply->set_log_seq(seq);
  LockMode lock;
  Impl::AbsorbAttr(this, *reply, &lock);
}

void FuseOps::WaitForSendWindow() {
  std::unique_lock<std::mutex> l(flight_mu_);
  flight_cv_.wait_for(l, std::chrono::milliseconds(RpcClient::kCallTimeoutMs), [&] {
    return commits_in_flight_ <= kMaxCommitsInFlight && bytes_in_flight_ <= kMaxDataInFlight;
  });
}

// Network thread (or a sender, when the connection is gone): record what the
// server refused, take its attributes, and drop the kernel's copy.
void FuseOps::OnCommitted(const std::vector<InodeId>& inos, uint64_t seq, Result<RpcReply> reply) {
  {
    std::lock_guard<std::mutex> l(flight_mu_);
    commits_in_flight_--;
  }
  flight_cv_.notify_all();
  std::vector<std::pair<InodeId, Status>> refused;
  if (!reply.ok()) {
    for (InodeId ino : inos) refused.emplace_back(ino, reply.status());
  } else {
    reply->set_log_seq(seq);
    Impl::Absorb(this, *reply);
    auto root = reply->root();
    if (root.isFailures()) {
      for (auto f : root.getFailures()) {
        int err = f.getErrno() > 0 && f.getErrno() < 4096 ? f.getErrno() : EIO;
        refused.emplace_back(InodeId(f.getIno()), Status::Error(err, f.getMessage().cStr()));
      }
    }
  }
  for (auto& [ino, st] : refused) {
    LOG(Warn) << "server refused a change of inode " << ino.value << " made locally: "
              << st.ToString();
    log_.RecordFailure(ino, st);
    if (fuse_session* se = session_.load()) fuse_lowlevel_notify_inval_inode(se, ino.value, -1, 0);
  }
}

std::optional<Result<Attr>> FuseOps::SetAttrLocally(InodeId ino, const Caller& c,
                                                    SetAttrRequest req) {
  std::lock_guard<std::mutex> l(send_mu_);
  req.now_ns = NowNs();
  auto result = cache_.UpdateAttr(ino, log_.last_seq() + 1, [&](Attr& a) -> Status {
    RETURN_IF_ERROR(CheckAttrChange(c, a, req));
    ApplyAttrChange(c, a, req, req.now_ns);
    return Status::Ok();
  });
  if (!result || !result->ok()) return result;
  WritebackLog::Op op;
  op.ino = ino;
  op.caller = c;
  op.now_ns = req.now_ns;
  op.setattr = req;
  AppendLocked(std::move(op));
  return result;
}

std::optional<Result<Attr>> FuseOps::CreateLocally(InodeId parent, const std::string& name,
                                                   const Caller& c, uint32_t mode, InodeId ino) {
  std::lock_guard<std::mutex> l(send_mu_);
  const int64_t now = NowNs();
  const uint32_t new_mode = S_IFREG | (mode & 07777);
  auto result = cache_.CreateLocally(parent, name, log_.last_seq() + 1, [&](Attr& dir, Attr& f) {
    // As FileSystem::CreateNode decides it on the server.
    RETURN_IF_ERROR(Permission(c, dir, kMayWrite | kMayExec));
    if (dir.nlink == 0) return Status::Error(ENOENT);
    f.ino = ino;
    f.generation = rpc_.welcome().server_generation;
    f.mode = new_mode;
    InitNewOwner(c, dir, S_IFREG, f);
    f.nlink = 1;
    f.atime_ns = f.mtime_ns = f.ctime_ns = now;
    dir.mtime_ns = dir.ctime_ns = now;
    dir.size++;  // a directory's size is its entry count
    return Status::Ok();
  });
  if (!result || !result->ok()) return result;
  WritebackLog::Op op;
  op.kind = WritebackLog::Op::Kind::kCreate;
  op.ino = ino;
  op.caller = c;
  op.now_ns = now;
  op.parent = parent;
  op.name = name;
  op.mode = new_mode;
  AppendLocked(std::move(op));
  return result;
}

void FuseOps::AppendLocked(WritebackLog::Op op) {
  log_.Append(std::move(op));
  if (log_.size() >= kMaxLogOps) ShipLogLocked();
}

FuseOps::FuseOps(RpcClient& rpc, ClientStats& stats, const FuseOpsConfig& config)
    : rpc_(rpc),
      stats_(stats),
      config_(config),
      write_behind_(
          [this](InodeId ino, const Caller& c, uint64_t off, std::string data) {
            return PostWrite(ino, c, off, std::move(data));
          },
          kMaxIoBytes) {}

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
    o.create = Impl::Create;
    o.fallocate = Impl::Fallocate;
    o.lseek = Impl::Lseek;
    return o;
  }();
  return ops;
}

}  // namespace cohfs
