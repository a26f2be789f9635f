// FUSE ioctl: FS_IOC_GETFLAGS / FS_IOC_SETFLAGS (lsattr, chattr). The kernel
// sends these through its fileattr_get/set (fs/fuse/ioctl.c fuse_priv_ioctl,
// an int each way) after checking owner and CAP_LINUX_IMMUTABLE itself; the
// server checks again (common/inode_flags.h). Every other ioctl is ENOTTY:
// FS_IOC_FIEMAP never gets here (fs/ioctl.c ioctl_fiemap answers EOPNOTSUPP
// for an inode without i_op->fiemap, which FUSE has not).
#include <linux/fs.h>

#include <cstring>

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

  // Synchronous: the inode's written-behind data and the log go first (Call
  // sends behind the log), so a +i or +a applies after every earlier write.
  static void SetFlags(FuseOps* s, fuse_req_t req, fuse_ino_t ino, const void* in_buf,
                       size_t in_bufsz) {
    if (in_bufsz < sizeof(int)) return (void)fuse_reply_err(req, EINVAL);
    int want;
    std::memcpy(&want, in_buf, sizeof(want));
    if (Status fst = s->core().FlushData(InodeId(ino)); !fst.ok()) return ReplyErr(req, fst);
    Request r(req);
    auto f = r.root.initSetFlags();
    f.setIno(ino);
    f.setFlags(static_cast<uint32_t>(want));
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
      default:
        return (void)fuse_reply_err(req, ENOTTY);
    }
  }
};

}  // namespace

void AddIoctlOps(fuse_lowlevel_ops& o) { o.ioctl = Gated<IoctlOps::Ioctl>::Run; }

}  // namespace cohfs::fuse
