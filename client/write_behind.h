// WriteBehind: file data written under an EXCLUSIVE lock is answered from
// memory and sent later (DESIGN §6): contiguous writes to one inode gather in
// one buffer of at most `max_bytes_per_inode` and go to the Sender as one Write
// when the buffer is full, the writes stop being contiguous, or something
// needs the server to have the data (close, fsync, read, setattr, getattr from
// the server, link, fallocate, lseek). FuseOps's Sender posts the Write behind
// the writeback log without waiting for it (fsync waits: its request is
// answered after every earlier one); a failure comes back later and is
// reported as a deferred error (FsClient, client/error_seq.h). An error the Sender
// returns itself is reported by the next Write or Flush of that inode.
//
// Space grants: a write is taken only if the SpaceGrant can cover what it may
// allocate on the server (SpaceGrant::ChargeFor); each buffer carries its
// charge to the Sender, which settles it once the server has answered.
//
// Buffers older than about a second are sent by FlushOlderThan (the client's
// own thread calls it), so data in a file kept open reaches the server soon.
// Locks: mu_ guards the map (rank 1); each Buffer::mu guards its buffer
// (rank 2) and is held across the send so one inode's data reaches the server
// in order. No other lock is taken under them.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "client/space_grant.h"
#include "common/fs_types.h"
#include "common/ids.h"
#include "common/status.h"

namespace cohfs {

class WriteBehind {
 public:
  // `grant_bytes`: what the data was charged to the grant (0 without one).
  using Sender = std::function<Status(InodeId ino, const Caller& caller, uint64_t offset,
                                      std::string data, uint64_t grant_bytes)>;
  // `clock_ns`: now for data ages (empty: NowNs; a simulation's clock).
  // `grant`: what acknowledged data may take on the server (null: no limit).
  WriteBehind(Sender send, size_t max_bytes_per_inode, std::function<int64_t()> clock_ns = {},
              SpaceGrant* grant = nullptr);

  // Where a write goes while the inode is owned, asked under the buffer's
  // lock (nullopt: not owned any more; the caller writes through).
  using OwnedAt = std::function<std::optional<uint64_t>()>;
  // Buffers the write at the offset `owned_at` gives (or sends it at once when
  // it is as large as a buffer); false when the inode is not owned or the
  // grant cannot cover it (the caller writes through; what was buffered
  // before stays, for the caller to flush first).
  Result<bool> Write(InodeId ino, const Caller& caller, std::string_view data,
                     const OwnedAt& owned_at);
  // Sends whatever is pending for `ino`; returns a deferred error, once.
  Status Flush(InodeId ino);
  // Flush, then forget the buffer (last close of the file).
  Status FlushAndDrop(InodeId ino);
  size_t buffered_inodes() const;
  // Whether data of `ino` is held here, not sent yet (the server's
  // attributes of it are then older than this client's).
  bool Holds(InodeId ino) const;
  // Sends every buffer holding data written before `before_ns` (a file kept
  // open does not hold its data back for long); errors stay for the next flush.
  void FlushOlderThan(int64_t before_ns);
  static int64_t NowNs();

 private:
  struct Buffer {
    std::mutex mu;
    uint64_t offset = 0;
    std::string data;
    Caller caller;  // who wrote the buffered bytes (the server clears setuid for non-root)
    uint64_t charge = 0;  // of the grant: SpaceGrant::ChargeFor(offset, data.size())
    Status error;
    bool dropped = false;  // removed from the map: holders must look again
    int64_t since_ns = 0;  // when the oldest buffered byte was written
    std::atomic<bool> holding{false};  // !data.empty(), readable without `mu`
  };
  std::shared_ptr<Buffer> Get(InodeId ino);
  Status SendPending(InodeId ino, Buffer& b);
  bool Charge(uint64_t bytes);  // of the grant, if any

  Sender send_;
  size_t max_bytes_;
  std::function<int64_t()> clock_ns_;
  SpaceGrant* grant_;
  mutable std::mutex mu_;
  std::unordered_map<InodeId, std::shared_ptr<Buffer>> buffers_;
};

}  // namespace cohfs
