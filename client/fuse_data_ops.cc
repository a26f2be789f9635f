// FUSE operations on file data: open, read, write (behind or through), flush,
// release, fsync, fallocate, lseek, and file locks arbitrated by the server.
#include <linux/fuse.h>
#include <sys/file.h>

#include <algorithm>

#include "client/fuse_ops_common.h"
#include "common/inode_flags.h"
#include "common/limits.h"
#include "common/log.h"

namespace cohfs::fuse {
namespace {

struct DataOps {
  static void Open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    FuseOps* s = Self(req);
    Count(s, FUSE_OPEN);
    if (fi->flags & O_TRUNC) {
      if (Status fst = s->core().FlushData(InodeId(ino)); !fst.ok()) return ReplyErr(req, fst);
    }
    LockMode lock = s->core().cache().lock(InodeId(ino));
    // The kernel has checked permissions (default_permissions); the server
    // checks again for anyone but root (not squashed), who may open anything
    // it can reach. O_TRUNC always goes to the server: with atomic_o_trunc,
    // open truncates.
    // So do opens of a chattr +i / +a file (the server applies may_open's rules).
    auto cached = s->core().cache().GetAttr(InodeId(ino));
    bool guarded = cached && Guarded(cached->flags);
    if (CallerOf(req).uid != 0 || lock == LockMode::kNone || (fi->flags & O_TRUNC) || guarded) {
      Request r(req);
      auto o = r.root.initOpen();
      o.setIno(ino);
      o.setFlags(fi->flags);
      auto reply = s->core().Call(r.message);
      if (!reply.ok()) return ReplyErr(req, reply.status());
      s->core().AbsorbAttr(*reply, &lock);
    } else {
      s->stats().cache_hits++;
    }
    fi->keep_cache = lock != LockMode::kNone;
    // O_APPEND writes go where the daemon (or the server) finds the end, not
    // where the kernel's possibly stale size says: keep them out of the page cache.
    if (fi->flags & O_APPEND) fi->direct_io = 1;
    fi->fh = s->core().OpenFile(InodeId(ino));  // its fsyncs' view of deferred errors
    if (fuse_reply_open(req, fi) != 0) s->core().CloseFile(fi->fh);
  }

  // A small file whose content came with a leaf, while it is held: no round
  // trip. Inside the read gate, so a recall waits for the reply as for any read.
  static bool ReadCached(FuseOps* s, fuse_req_t req, fuse_ino_t ino, size_t size, off_t off) {
    std::string data;
    s->core().BeginRead(InodeId(ino));
    bool hit = s->core().cache().ReadContent(InodeId(ino), static_cast<uint64_t>(off),
                                             std::min<size_t>(size, kMaxIoBytes), &data);
    if (hit) {
      s->stats().cache_hits++;
      fuse_reply_buf(req, data.data(), data.size());
    }
    s->core().EndRead(InodeId(ino));
    return hit;
  }

  static void Read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
    FuseOps* s = Self(req);
    Count(s, FUSE_READ);
    FsClient::KernelHold hold(s->core(), InodeId(ino));  // the kernel holds the pages
    if (Status fst = s->core().FlushData(InodeId(ino)); !fst.ok()) return ReplyErr(req, fst);
    if (ReadCached(s, req, ino, size, off)) return;
    Request r(req);
    auto rd = r.root.initRead();
    rd.setIno(ino);
    rd.setOffset(static_cast<uint64_t>(off));
    rd.setLength(static_cast<uint32_t>(std::min<size_t>(size, kMaxIoBytes)));
    // A recall of the inode waits for this read, and holds later ones back
    // until its release is out, so no page outlives the lock.
    s->core().BeginRead(InodeId(ino));
    auto reply = s->core().Call(r.message);
    if (!reply.ok()) {
      s->core().EndRead(InodeId(ino));
      return ReplyErr(req, reply.status());
    }
    LockMode lock = s->core().AbsorbRead(InodeId(ino), *reply);
    const std::string& data = reply->bulk();
    fuse_reply_buf(req, data.data(), data.size());
    // Not held: the kernel must not keep these pages (nobody would recall them).
    if (lock == LockMode::kNone) {
      if (fuse_session* se = s->session()) fuse_lowlevel_notify_inval_inode(se, ino, off, size);
    }
    s->core().EndRead(InodeId(ino));
  }

  static void Write(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off,
                    fuse_file_info* fi) {
    FuseOps* s = Self(req);
    Count(s, FUSE_WRITE);
    FsClient::KernelHold hold(s->core(), InodeId(ino));  // the kernel holds the pages
    if (size > kMaxIoBytes) return (void)fuse_reply_err(req, EINVAL);
    Status st = s->core().Write(InodeId(ino), CallerOf(req), static_cast<uint64_t>(off),
                                std::string_view(buf, size), (fi->flags & O_APPEND) != 0);
    if (!st.ok()) return ReplyErr(req, st);
    fuse_reply_write(req, size);
  }

  static void Flush(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    FuseOps* s = Self(req);
    Count(s, FUSE_FLUSH);
    Status st = s->core().FlushData(InodeId(ino));
    if (st.ok())
      st = s->core().TakeDeferredError(InodeId(ino));  // close() reports what failed so far
    // close() drops the closing process's record locks on the file (POSIX),
    // and FUSE leaves that to the flush. Only an owner that holds one costs a
    // round trip (any process's close, an exec's included, sends a flush).
    if (s->core().HoldsRecordLock(InodeId(ino), fi->lock_owner)) {
      struct flock all {};
      all.l_type = F_UNLCK;
      Request r(req);
      auto set = r.root.initSetLock();
      FillLock(set.initLock(), ino, fi->lock_owner, &all);
      auto reply = CallSetLock(s, r);
      if (st.ok() && !reply.ok()) st = reply.status();
    }
    fuse_reply_err(req, st.ok() ? 0 : st.errno_value());
  }

  static void Release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    FuseOps* s = Self(req);
    Count(s, FUSE_RELEASE);
    if (fi->flock_release) {  // the last close of the open file drops its flock lock
      Status st = SetFlock(s, Caller{}, ino, fi->lock_owner, LOCK_UN);
      if (!st.ok()) LOG(Warn) << "flock release of inode " << ino << ": " << st.ToString();
    }
    Status st = s->core().FlushAndDropData(InodeId(ino));
    if (!st.ok()) LOG(Warn) << "deferred write of inode " << ino << " lost: " << st.ToString();
    s->core().CloseFile(fi->fh);
    fuse_reply_err(req, 0);
  }

  static void Fsync(fuse_req_t req, fuse_ino_t ino, int, fuse_file_info* fi) {
    FuseOps* s = Self(req);
    Count(s, FUSE_FSYNC);
    ReplyErr(req, s->core().Fsync(fi ? fi->fh : 0, InodeId(ino)));
  }

  // A setLock call; what the server applied is noted in the client's copy of
  // its file locks (reclaimed after a server restart).
  static Result<RpcReply> CallSetLock(FuseOps* s, Request& r,
                                      int timeout_ms = RpcClient::kCallTimeoutMs) {
    auto reply = s->core().Call(r.message, {}, timeout_ms);
    if (reply.ok()) s->core().NoteFileLock(r.root.getSetLock().getLock().asReader());
    return reply;
  }

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
    auto reply = s->core().Call(r.message);
    if (!reply.ok()) return ReplyErr(req, reply.status());
    auto held = reply->root().getLock();
    lk->l_type = F_UNLCK;
    if (held.getType() <= 1) {
      lk->l_type = held.getType() == 0 ? F_RDLCK : F_WRLCK;
      lk->l_start = static_cast<off_t>(held.getStart());
      lk->l_len =
          held.getEnd() == UINT64_MAX ? 0 : static_cast<off_t>(held.getEnd() - held.getStart() + 1);
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
    auto reply = CallSetLock(s, r, sleep ? -1 : RpcClient::kCallTimeoutMs);
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
    return CallSetLock(s, r, wait ? -1 : RpcClient::kCallTimeoutMs).status();
  }

  static void Flock(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi, int op) {
    FuseOps* s = Self(req);
    Count(s, FUSE_SETLK);
    Status st = SetFlock(s, CallerOf(req), ino, fi->lock_owner, op);
    fuse_reply_err(req,
                   st.ok() ? 0 : (st.errno_value() == EAGAIN ? EWOULDBLOCK : st.errno_value()));
  }

  static void Fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
                        fuse_file_info*) {
    FuseOps* s = Self(req);
    Count(s, FUSE_FALLOCATE);
    if (Status fst = s->core().FlushData(InodeId(ino)); !fst.ok()) return ReplyErr(req, fst);
    Request r(req);
    auto f = r.root.initFallocate();
    f.setIno(ino);
    f.setMode(mode);
    f.setOffset(static_cast<uint64_t>(offset));
    f.setLength(static_cast<uint64_t>(length));
    auto reply = s->core().Call(r.message);
    if (!reply.ok()) return ReplyErr(req, reply.status());
    LockMode lock;
    s->core().AbsorbAttr(*reply, &lock);
    fuse_reply_err(req, 0);
  }

  static void Lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, fuse_file_info*) {
    FuseOps* s = Self(req);
    Count(s, FUSE_LSEEK);
    if (Status fst = s->core().FlushData(InodeId(ino)); !fst.ok()) return ReplyErr(req, fst);
    Request r(req);
    auto l = r.root.initLseek();
    l.setIno(ino);
    l.setOffset(static_cast<uint64_t>(off));
    l.setWhence(whence);
    auto reply = s->core().Call(r.message);
    if (!reply.ok()) return ReplyErr(req, reply.status());
    fuse_reply_lseek(req, static_cast<off_t>(reply->root().getOffset()));
  }
};

}  // namespace

void AddDataOps(fuse_lowlevel_ops& o) {
  o.open = Gated<DataOps::Open>::Run;
  o.read = Gated<DataOps::Read>::Run;
  o.write = Gated<DataOps::Write>::Run;
  o.flush = Gated<DataOps::Flush>::Run;
  o.release = DataOps::Release;
  o.fsync = Gated<DataOps::Fsync>::Run;
  o.fallocate = Gated<DataOps::Fallocate>::Run;
  o.lseek = Gated<DataOps::Lseek>::Run;
  o.getlk = Gated<DataOps::GetLk>::Run;
  o.setlk = Gated<DataOps::SetLk>::Run;
  o.flock = Gated<DataOps::Flock>::Run;
}

}  // namespace cohfs::fuse
