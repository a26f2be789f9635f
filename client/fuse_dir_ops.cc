// FUSE operations on listings, extended attributes, statfs and access.
#include <linux/fuse.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <optional>
#include <vector>

#include "client/fuse_ops_common.h"
#include "common/limits.h"
#include "common/xattr_rules.h"

namespace cohfs::fuse {
namespace {

// The virtual xattr on the mount root through which `cohfs stats` reads counters.
constexpr char kStatsXattr[] = "cohfs.stats";

struct DirHandle {
  std::mutex mu;                  // guards everything below (rank: leaf)
  std::vector<DirEntry> entries;  // a window of the directory, in cookie order
  uint64_t after = 0;             // `entries` are those with cookie > after
  bool eof = false;               // `entries` reach the end of the directory
  uint64_t file = 0;              // the core's open file (its fsyncs' deferred errors)
};

struct DirOps {
  static void OpenDir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    FuseOps* s = Self(req);
    Count(s, FUSE_OPENDIR);
    auto h = std::make_unique<DirHandle>();
    h->file = s->core().OpenFile(InodeId(ino));
    fi->fh = reinterpret_cast<uint64_t>(h.get());
    fi->keep_cache = 1;
    if (fuse_reply_open(req, fi) != 0) {
      s->core().CloseFile(h->file);
      return;
    }
    h.release();  // owned by the kernel's handle until releasedir
  }

  static void ReleaseDir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
    FuseOps* s = Self(req);
    Count(s, FUSE_RELEASEDIR);
    std::unique_ptr<DirHandle> owned(reinterpret_cast<DirHandle*>(fi->fh));
    s->core().CloseFile(owned->file);
    fuse_reply_err(req, 0);
  }

  // A refused local create, unlink or rename in the directory is reported
  // here too (the directory is among the inodes such a change touched).
  static void FsyncDir(fuse_req_t req, fuse_ino_t ino, int, fuse_file_info* fi) {
    FuseOps* s = Self(req);
    Count(s, FUSE_FSYNCDIR);
    uint64_t file = fi && fi->fh ? reinterpret_cast<DirHandle*>(fi->fh)->file : 0;
    ReplyErr(req, s->core().Fsync(file, InodeId(ino)));
  }

  // Makes sure `h` holds the entries after `off` (fetching a batch if needed).
  static Status FillDir(FuseOps* s, fuse_req_t req, fuse_ino_t ino, DirHandle& h, uint64_t off) {
    uint64_t after = std::max<uint64_t>(off, 2);
    bool covered =
        !h.entries.empty() && h.after <= after && (after < h.entries.back().cookie || h.eof);
    if (covered || (h.eof && h.entries.empty() && h.after <= after)) return Status::Ok();
    Request r(req);
    auto rd = r.root.initReadDir();
    rd.setIno(ino);
    rd.setCookie(after);
    rd.setMaxEntries(s->config().readdir_batch);
    ASSIGN_OR_RETURN(RpcReply reply, s->core().Call(r.message));
    h.entries = s->core().AbsorbEntries(reply);
    h.after = after;
    h.eof = h.entries.size() < s->config().readdir_batch;
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
        e.attr = ToStat(s->core().cache().GetAttr(attr.ino).value_or(attr));  // local changes win
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
    FsClient::KernelHold hold(s->core(), InodeId(ino));
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
    if (plus) pins.emplace(s->core());
    DirPacker p{s, req, InodeId(ino), plus, std::vector<char>(size), 0, {}};
    Attr dot{};
    dot.ino = InodeId(ino);
    dot.mode = S_IFDIR;
    bool room = pos > 0 || p.Add(".", dot, 1, false);
    if (room && pos <= 1) room = p.Add("..", dot, 2, false);
    for (size_t i = 0; room && i < window.size(); i++) {
      room = p.Add(window[i].name, window[i].attr, window[i].cookie, true);
    }
    for (InodeId i : p.counted) s->core().cache().AddLookup(i);
    fuse_reply_buf(req, p.buf.data(), p.used);
  }
  static void ReadDir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
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
    auto reply = s->core().Call(r.message);
    if (!reply.ok()) return ReplyErr(req, reply.status());
    FsStat fs = cohfs::FromWire(reply->root().getFsStat());
    struct statvfs v {};
    v.f_bsize = v.f_frsize = fs.block_bytes;
    v.f_blocks = fs.total_blocks;
    v.f_bfree = v.f_bavail = fs.free_blocks;
    v.f_files = fs.total_inodes;
    v.f_ffree = v.f_favail = fs.free_inodes;
    v.f_namemax = fs.max_name_bytes;
    fuse_reply_statfs(req, &v);
  }

  // getxattr answered from attributes this client knows, by the server's rules.
  static Result<std::string> KnownXattr(const Caller& c, const Attr& attr,
                                        const ObjectCache::Xattrs& known, const char* name) {
    ASSIGN_OR_RETURN(XattrNs ns, ParseXattrName(name));
    RETURN_IF_ERROR(XattrPermission(c, attr, ns, /*write=*/false));
    auto it = known.find(name);
    if (it == known.end()) return Status::Error(ENODATA);
    return it->second;
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
    if (auto local = s->core().SetXattrLocally(InodeId(ino), name, std::string(value, size), flags,
                                               CallerOf(req))) {
      if (local->ok()) s->core().WaitForSendWindow();
      return ReplyErr(req, *local);
    }
    if (Status fst = s->core().FlushData(InodeId(ino)); !fst.ok()) return ReplyErr(req, fst);
    Request r(req);
    auto x = r.root.initSetXattr();
    x.setIno(ino);
    x.setName(AsData(name));
    x.setValue(AsData(std::string_view(value, size)));
    x.setFlags(flags);
    auto reply = s->core().Call(r.message);
    if (!reply.ok()) return ReplyErr(req, reply.status());
    LockMode lock;
    s->core().AbsorbAttr(*reply, &lock);
    fuse_reply_err(req, 0);
  }

  static void GetXattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
    FuseOps* s = Self(req);
    Count(s, FUSE_GETXATTR);
    if (ino == FUSE_ROOT_ID && std::strcmp(name, kStatsXattr) == 0) {
      return ReplySized(req, s->stats().Format(), size);
    }
    if (Status st = s->core().AwaitLease(); !st.ok()) return ReplyErr(req, st);
    auto known = s->core().cache().KnownXattrs(InodeId(ino));
    auto attr = s->core().cache().GetAttr(InodeId(ino));
    if (known && attr) {
      s->stats().cache_hits++;  // e.g. security.capability, asked on every write
      Result<std::string> value = KnownXattr(CallerOf(req), *attr, *known, name);
      if (!value.ok()) return ReplyErr(req, value.status());
      return ReplySized(req, *value, size);
    }
    Request r(req);
    auto x = r.root.initGetXattr();
    x.setIno(ino);
    x.setName(AsData(name));
    auto reply = s->core().Call(r.message);
    if (!reply.ok()) return ReplyErr(req, reply.status());
    ReplySized(req, std::string(AsView(reply->root().getValue())), size);
  }

  static void ListXattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
    FuseOps* s = Self(req);
    Count(s, FUSE_LISTXATTR);
    if (auto known = s->core().cache().KnownXattrs(InodeId(ino))) {
      s->stats().cache_hits++;
      std::string names;
      for (const auto& [n, v] : *known) {
        if (n.starts_with("trusted.") && CallerOf(req).uid != 0) continue;  // as the server lists
        names.append(n);
        names.push_back('\0');
      }
      return ReplySized(req, names, size);
    }
    Request r(req);
    r.root.setListXattr(ino);
    auto reply = s->core().Call(r.message);
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
    if (auto local = s->core().RemoveXattrLocally(InodeId(ino), name, CallerOf(req))) {
      if (local->ok()) s->core().WaitForSendWindow();
      return ReplyErr(req, *local);
    }
    if (Status fst = s->core().FlushData(InodeId(ino)); !fst.ok()) return ReplyErr(req, fst);
    Request r(req);
    auto x = r.root.initRemoveXattr();
    x.setIno(ino);
    x.setName(AsData(name));
    auto reply = s->core().Call(r.message);
    if (!reply.ok()) return ReplyErr(req, reply.status());
    LockMode lock;
    s->core().AbsorbAttr(*reply, &lock);
    fuse_reply_err(req, 0);
  }

  static void Access(fuse_req_t req, fuse_ino_t ino, int mask) {
    FuseOps* s = Self(req);
    Count(s, FUSE_ACCESS);
    Request r(req);
    auto a = r.root.initAccess();
    a.setIno(ino);
    a.setMask(mask);
    auto reply = s->core().Call(r.message);
    fuse_reply_err(req, reply.ok() ? 0 : reply.errno_value());
  }
};

}  // namespace

void AddDirOps(fuse_lowlevel_ops& o) {
  o.opendir = Gated<DirOps::OpenDir>::Run;
  o.readdir = Gated<DirOps::ReadDir>::Run;
  o.readdirplus = Gated<DirOps::ReadDirPlus>::Run;
  o.releasedir = DirOps::ReleaseDir;
  o.fsyncdir = Gated<DirOps::FsyncDir>::Run;
  o.statfs = Gated<DirOps::StatFs>::Run;
  o.setxattr = Gated<DirOps::SetXattr>::Run;
  o.getxattr = DirOps::GetXattr;
  o.listxattr = Gated<DirOps::ListXattr>::Run;
  o.removexattr = Gated<DirOps::RemoveXattr>::Run;
  o.access = Gated<DirOps::Access>::Run;
}

}  // namespace cohfs::fuse
