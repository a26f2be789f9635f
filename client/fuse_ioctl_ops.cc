// FUSE ioctl: FS_IOC_GETFLAGS / FS_IOC_SETFLAGS (lsattr, chattr) and their
// FS_IOC_FSGETXATTR / FS_IOC_FSSETXATTR form (xfs_io; and Linux 6.18's
// vfs_fileattr_set reads the old attributes that way before a SETFLAGS). The
// kernel sends these through its fileattr_get/set (fs/fuse/ioctl.c
// fuse_priv_ioctl) after checking owner and CAP_LINUX_IMMUTABLE itself; the
// server checks again (common/inode_flags.h). Every other ioctl is ENOTTY:
// FS_IOC_FIEMAP never gets here (fs/ioctl.c ioctl_fiemap answers EOPNOTSUPP
// for an inode without i_op->fiemap, which FUSE has not).
#include <linux/fs.h>

#include <cstring>
#include <utility>

#include "client/fuse_ops_common.h"
#include "common/inode_flags.h"

namespace cohfs::fuse {
namespace {

struct IoctlOps {
  // The flags as the cache has them under a lock, else as the server does.
  static Result<Attr> Current(FuseOps* s, fuse_req_t req, fuse_ino_t ino) {
    if (auto a = s->core().cache().GetAttr(InodeId(ino))) return *a;
    Request r(req);
    r.root.setGetAttr(ino);
    auto reply = s->core().Call(r.message);
    if (!reply.ok()) return reply.status();
    LockMode lock;
    return s->core().AbsorbAttr(*reply, &lock);
  }

  static void GetFlags(FuseOps* s, fuse_req_t req, fuse_ino_t ino, size_t out_bufsz) {
    if (out_bufsz < sizeof(int)) return (void)fuse_reply_err(req, EINVAL);
    auto a = Current(s, req, ino);
    if (!a.ok()) return ReplyErr(req, a.status());
    int flags = static_cast<int>(FsFlags(a->flags));
    fuse_reply_ioctl(req, 0, &flags, sizeof(flags));
  }

  // The FS_XFLAG_* twins of the kept flags (DIRSYNC has none).
  static constexpr std::pair<uint32_t, uint32_t> kXflags[] = {{FS_XFLAG_IMMUTABLE, FS_IMMUTABLE_FL},
                                                              {FS_XFLAG_APPEND, FS_APPEND_FL},
                                                              {FS_XFLAG_SYNC, FS_SYNC_FL},
                                                              {FS_XFLAG_NOATIME, FS_NOATIME_FL},
                                                              {FS_XFLAG_NODUMP, FS_NODUMP_FL}};

  static void GetXattr(FuseOps* s, fuse_req_t req, fuse_ino_t ino, size_t out_bufsz) {
    if (out_bufsz < sizeof(fsxattr)) return (void)fuse_reply_err(req, EINVAL);
    auto a = Current(s, req, ino);
    if (!a.ok()) return ReplyErr(req, a.status());
    fsxattr x{};
    for (auto [xflag, flag] : kXflags) {
      if (a->flags & flag) x.fsx_xflags |= xflag;
    }
    fuse_reply_ioctl(req, 0, &x, sizeof(x));
  }

  static void SetXattr(FuseOps* s, fuse_req_t req, fuse_ino_t ino, const void* in_buf,
                       size_t in_bufsz) {
    if (in_bufsz < sizeof(fsxattr)) return (void)fuse_reply_err(req, EINVAL);
    fsxattr x;
    std::memcpy(&x, in_buf, sizeof(x));
    uint32_t known = 0, want = 0;
    for (auto [xflag, flag] : kXflags) {
      known |= xflag;
      if (x.fsx_xflags & xflag) want |= flag;
    }
    if ((x.fsx_xflags & ~known) || x.fsx_extsize || x.fsx_projid || x.fsx_cowextsize) {
      return (void)fuse_reply_err(req, EOPNOTSUPP);
    }
    auto a = Current(s, req, ino);
    if (!a.ok()) return ReplyErr(req, a.status());
    Send(s, req, ino, want | (a->flags & FS_DIRSYNC_FL));
  }

  // Synchronous: the inode's written-behind data and the log go first (Call
  // sends behind the log), so a +i or +a applies after every earlier write.
  static void SetFlags(FuseOps* s, fuse_req_t req, fuse_ino_t ino, const void* in_buf,
                       size_t in_bufsz) {
    if (in_bufsz < sizeof(int)) return (void)fuse_reply_err(req, EINVAL);
    int want;
    std::memcpy(&want, in_buf, sizeof(want));
    Send(s, req, ino, static_cast<uint32_t>(want));
  }

  static void Send(FuseOps* s, fuse_req_t req, fuse_ino_t ino, uint32_t want) {
    if (Status fst = s->core().FlushData(InodeId(ino)); !fst.ok()) return ReplyErr(req, fst);
    Request r(req);
    auto f = r.root.initSetFlags();
    f.setIno(ino);
    f.setFlags(want);
    auto reply = s->core().Call(r.message);
    if (!reply.ok()) return ReplyErr(req, reply.status());
    LockMode lock;
    s->core().AbsorbAttr(*reply, &lock);
    fuse_reply_ioctl(req, 0, nullptr, 0);
  }

  static void Ioctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd, void*, fuse_file_info*,
                    unsigned flags, const void* in_buf, size_t in_bufsz, size_t out_bufsz) {
    FuseOps* s = Self(req);
    Count(s, FUSE_IOCTL);
    if (flags & FUSE_IOCTL_COMPAT) return (void)fuse_reply_err(req, ENOTTY);
    switch (cmd) {
      case FS_IOC_GETFLAGS:
        return GetFlags(s, req, ino, out_bufsz);
      case FS_IOC_SETFLAGS:
        return SetFlags(s, req, ino, in_buf, in_bufsz);
      case FS_IOC_FSGETXATTR:
        return GetXattr(s, req, ino, out_bufsz);
      case FS_IOC_FSSETXATTR:
        return SetXattr(s, req, ino, in_buf, in_bufsz);
      default:
        return (void)fuse_reply_err(req, ENOTTY);
    }
  }
};

}  // namespace

void AddIoctlOps(fuse_lowlevel_ops& o) { o.ioctl = Gated<IoctlOps::Ioctl>::Run; }

}  // namespace cohfs::fuse
