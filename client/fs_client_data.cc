// FsClient's file data: writes behind (within the space grant) or through,
// fsync, and the grant given back when idle.
#include "client/fs_client.h"
#include "client/fs_client_internal.h"
#include "common/inode_flags.h"
#include "common/log.h"

namespace cohfs {
namespace {

// A write of file data (the data travels as the frame's bulk payload).
// `grant_bytes`: what it takes out of this client's space grant (written
// behind); `want_grant`: the grant to be topped up to in the reply;
// `mtime_ns`: what the server stores as the file's mtime (0: its clock).
void BuildWrite(capnp::MallocMessageBuilder& m, InodeId ino, const Caller& c, uint64_t offset,
                bool append, uint64_t grant_bytes, uint64_t want_grant, int64_t mtime_ns = 0) {
  auto root = m.initRoot<wire::Request>();
  ToWire(c, root.initCaller());
  auto w = root.initWrite();
  w.setIno(ino.value);
  w.setOffset(offset);
  w.setAppend(append);
  w.setGrantBytes(grant_bytes);
  w.setWantGrant(want_grant);
  w.setMtimeNs(mtime_ns);
}

}  // namespace

Status FsClient::Write(InodeId ino, const Caller& c, uint64_t offset, std::string_view data,
                       bool append) {
  RETURN_IF_ERROR(TakeDeferredError(ino));
  // Owned: answer from memory and send behind. The lock is checked under the
  // inode's buffer lock, which a recall takes to flush after dropping the lock.
  auto owned = [&]() -> std::optional<uint64_t> {
    if (cache_.lock(ino) != LockMode::kExclusive) return std::nullopt;
    auto a = cache_.GetAttr(ino);  // the kernel serializes writes to one inode
    // chattr +i / +a: the server decides each write (common/inode_flags.h).
    if (a && Guarded(a->flags)) return std::nullopt;
    if (!append) return offset;
    return a ? std::optional<uint64_t>(a->size) : std::nullopt;
  };
  uint64_t at = offset;
  auto buffered = write_behind_.Write(ino, c, data, [&]() -> std::optional<uint64_t> {
    auto where = owned();
    if (where) at = *where;
    return where;
  });
  if (!buffered.ok()) return buffered.status();
  if (!*buffered) return WriteThrough(ino, c, offset, data, append);
  // Replies to requests sent before this write (e.g. of earlier data still in
  // flight) must not shrink the size it set.
  std::lock_guard<std::mutex> l(send_mu_);
  cache_.NoteLocalWrite(ino, c, at + data.size(), Now(), log_.NoteLocalChange());
  return Status::Ok();
}

// Also the way of a write to an owned inode past the space grant: it gets
// ENOSPC here, and its reply may bring the grant that lets the next ones go
// behind again.
Status FsClient::WriteThrough(InodeId ino, const Caller& c, uint64_t offset, std::string_view data,
                              bool append) {
  RETURN_IF_ERROR(FlushData(ino));
  capnp::MallocMessageBuilder m;
  const bool owned = cache_.lock(ino) == LockMode::kExclusive;
  // What is left of the grant (too little for this write to go behind) is
  // the write's to use too: else a nearly full device refuses it while
  // space granted to this very client lies unused.
  const uint64_t grant_bytes = owned ? grant_.ChargeRest() : 0;
  BuildWrite(m, ino, c, offset, append, grant_bytes, owned ? SpaceGrant::kWantBytes : 0);
  stats_.writes_through++;
  Result<RpcReply> called = Call(m, std::string(data));
  grant_.Settle(grant_bytes);  // the server took it out, whatever the outcome
  ASSIGN_OR_RETURN(RpcReply reply, std::move(called));
  if (!reply.stale_grants()) grant_.Add(reply.root().getGrantAdded());
  stats_.space_grant_bytes = grant_.granted();
  LockMode lock;
  AbsorbAttr(reply, &lock);
  return Status::Ok();
}

Status FsClient::Fsync(uint64_t file, InodeId ino) {
  RETURN_IF_ERROR(FlushData(ino));
  OwnRequest r;
  r.root.setFsync(ino.value);
  auto reply = Call(r.message);
  // Every write and commit sent before the fsync has been answered by now.
  if (!reply.ok()) return reply.status();
  return errors_.TakeForFsync(file, ino);
}

// Sends one range of file data behind the log without waiting (the
// WriteBehind sender), charged `grant_bytes` of the space grant; a failure is
// reported as a deferred error (errors_).
Status FsClient::PostWrite(InodeId ino, const Caller& c, uint64_t offset, std::string data,
                           uint64_t grant_bytes) {
  const size_t n = data.size();
  {
    std::lock_guard<std::mutex> l(flight_mu_);
    bytes_in_flight_ += n;
  }
  // The server takes the mtime this cache shows (the local write's, or a
  // later utimes'), so that every client sees the one this one does.
  auto cached = cache_.GetAttr(ino);
  capnp::MallocMessageBuilder m;
  BuildWrite(m, ino, c, offset, /*append=*/false, grant_bytes, SpaceGrant::kWantBytes,
             cached ? cached->mtime_ns : 0);
  {
    std::lock_guard<std::mutex> l(send_mu_);
    cache_.NoteLocalChange(ino, log_.NoteLocalChange());  // replies sent before lack this data
    uint64_t seq = ShipLogLocked();
    rpc_.Post(
        m,
        [this, ino, n, seq, grant_bytes](Result<RpcReply> reply) {
          OnWritten(ino, seq, grant_bytes, std::move(reply));
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
void FsClient::OnWritten(InodeId ino, uint64_t seq, uint64_t grant_bytes, Result<RpcReply> reply) {
  grant_.Settle(grant_bytes);  // the server took it out of the grant, stored or not
  if (!reply.ok()) {
    LOG(Warn) << "deferred write of inode " << ino.value
              << " failed: " << reply.status().ToString();
    errors_.Record(ino, reply.status());
    return;
  }
  if (!reply->stale_grants()) grant_.Add(reply->root().getGrantAdded());
  stats_.space_grant_bytes = grant_.granted();
  reply->set_log_seq(seq);
  LockMode lock;
  AbsorbAttr(*reply, &lock);
}

// A grant unused for a lease goes back, so that an idle mount keeps no free
// space from the others (its next write tops it up again, through the server).
void FsClient::ReturnIdleGrant(int64_t now_ns) {
  const int64_t lease_ns = std::max<int64_t>(rpc_.welcome().lease_ms, 1000) * 1000000;
  uint64_t bytes = grant_.TakeIdle(now_ns, lease_ns);
  if (bytes == 0) return;
  OwnRequest r;
  r.root.setReturnGrant(bytes);
  rpc_.Post(r.message, [this, bytes](Result<RpcReply>) {
    grant_.Settle(bytes);  // the server took it out, whatever the reply says
    stats_.space_grant_bytes = grant_.granted();
  });
}

}  // namespace cohfs
