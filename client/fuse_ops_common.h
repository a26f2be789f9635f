// Shared by the files of the FUSE adapter (fuse_ops.cc: names and attributes,
// fuse_data_ops.cc: file data and locks, fuse_dir_ops.cc: listings, xattrs,
// statfs): request helpers and the replies that tell the kernel what to cache.
// Internal to client/.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>

#include <string>

#include "client/fuse_ops.h"
#include "common/limits.h"

namespace cohfs::fuse {

inline FuseOps* Self(fuse_req_t req) { return static_cast<FuseOps*>(fuse_req_userdata(req)); }

inline struct stat ToStat(const Attr& a) {
  struct stat st {};
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

inline int64_t ToNs(const timespec& ts) { return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec; }

// The caller, squashed as the server squashes it (at mount time), so that
// what the cache decides locally is what the server decides.
inline Caller CallerOf(fuse_req_t req) {
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
  return Squashed(c, Self(req)->core().squash());
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

inline double Timeout(FuseOps* s, LockMode m) {
  return m == LockMode::kNone ? 0.0 : s->config().cached_timeout_s;
}

inline void Count(FuseOps* s, int opcode) { s->stats().fuse_ops[opcode]++; }

// A FUSE request, run once the session's lease covers the cache that may
// answer it (DESIGN §7): a client cut off for a lease waits for its
// reconnect, and gets EIO if the server ended its session. Every op is
// gated but init, destroy, the forgets (no reply), the releases (a file's
// state goes with them) and getxattr (its stats answer whatever the server
// does; it gates the rest itself).
template <auto Op>
struct Gated;
template <typename... Args, void (*Op)(fuse_req_t, Args...)>
struct Gated<Op> {
  static void Run(fuse_req_t req, Args... args) {
    Status st = Self(req)->core().AwaitLease();
    if (!st.ok()) return (void)fuse_reply_err(req, st.errno_value());
    Op(req, args...);
  }
};

// An entry the kernel caches: the name while the directory is held, the
// attributes while the inode is held (both pinned until the reply is out).
inline fuse_entry_param EntryFor(FuseOps* s, InodeId parent, const std::string& name,
                                 const Attr& attr) {
  ObjectCache& cache = s->core().cache();
  fuse_entry_param e{};
  e.ino = attr.ino.value;
  e.generation = attr.generation;
  e.attr = ToStat(cache.GetAttr(attr.ino).value_or(attr));  // local changes win
  e.attr_timeout = Timeout(s, cache.lock(attr.ino));
  e.entry_timeout = Timeout(s, cache.lock(parent));
  if (e.entry_timeout > 0) cache.NoteKernelName(parent, name);
  return e;
}

inline void ReplyEntry(FuseOps* s, fuse_req_t req, InodeId parent, const std::string& name,
                       const Attr& attr) {
  FsClient::ReplyPin pin(s->core(), parent, attr.ino);
  fuse_entry_param e = EntryFor(s, parent, name, attr);
  s->core().cache().AddLookup(attr.ino);
  if (fuse_reply_entry(req, &e) != 0) s->core().cache().Forget(attr.ino, 1);
}

inline void ReplyNegative(FuseOps* s, fuse_req_t req, InodeId parent, const std::string& name) {
  FsClient::ReplyPin pin(s->core(), parent, InodeId());
  fuse_entry_param e{};
  e.ino = 0;
  e.entry_timeout = Timeout(s, s->core().cache().lock(parent));
  if (e.entry_timeout > 0) s->core().cache().NoteKernelName(parent, name);
  fuse_reply_entry(req, &e);
}

inline void ReplyAttr(FuseOps* s, fuse_req_t req, const Attr& attr) {
  FsClient::ReplyPin pin(s->core(), attr.ino, InodeId());
  ObjectCache& cache = s->core().cache();
  struct stat st = ToStat(cache.GetAttr(attr.ino).value_or(attr));
  fuse_reply_attr(req, &st, Timeout(s, cache.lock(attr.ino)));
}

inline void ReplyErr(fuse_req_t req, const Status& st) { fuse_reply_err(req, st.errno_value()); }

// Each file adds its operations to the table.
void AddDataOps(fuse_lowlevel_ops& o);
void AddDirOps(fuse_lowlevel_ops& o);
void AddIoctlOps(fuse_lowlevel_ops& o);  // client/fuse_ioctl_ops.cc

}  // namespace cohfs::fuse
