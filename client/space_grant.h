// SpaceGrant: this client's share of the server's free space (its space
// grant, docs/wire-protocol.md "Space grants"). Data is acknowledged from
// memory (written behind) only while the bytes it may allocate on the server
// fit in the grant, so an acknowledged write is always stored.
//
// Accounting, in bytes: `granted` is what the server added (Reply.grantAdded)
// less what granted writes took out of it (each write's grantBytes, counted
// once its reply, or its failure, is here); `charged` is what data
// acknowledged here and not yet answered may still allocate. TryCharge keeps
// charged <= granted. The server takes a write's grantBytes out when it
// handles the write, before the reply leaves, so its count of this grant is
// at least granted - (grantBytes of writes it handled whose replies are on
// their way) >= charged - those same bytes: it always has room for the data
// charged and not yet sent or handled.
// Thread-safe (mu_ is a leaf).
#pragma once

#include <cstdint>
#include <mutex>

#include "common/limits.h"

namespace cohfs {

class SpaceGrant {
 public:
  // The grant a client asks for: its 64 MiB of data in flight
  // (FsClient::kMaxDataInFlight) and as much again to buffer while the
  // replies that top it up come back.
  static constexpr uint64_t kWantBytes = 128ull << 20;

  // The most of the server's space a write of [offset, offset + bytes) may
  // allocate: every block it touches (copy-on-write) and one more (an inline
  // file becoming extents).
  static uint64_t ChargeFor(uint64_t offset, uint64_t bytes) {
    if (bytes == 0) return 0;
    uint64_t first = offset / kBlockBytes, end = (offset + bytes + kBlockBytes - 1) / kBlockBytes;
    return (end - first + 1) * kBlockBytes;
  }

  // Charges `bytes` for data about to be acknowledged; false (nothing
  // charged) when the grant cannot cover them.
  bool TryCharge(uint64_t bytes);
  // A granted write's reply (or its failure) came: the server took its
  // `bytes` out of the grant, and the data is no longer this client's to cover.
  void Settle(uint64_t bytes);
  // The server grew the grant (a write's reply).
  void Add(uint64_t bytes);
  // After a server restart: the grant is what the server gave back (never
  // less than what acknowledged data is charged; false when it gave less).
  bool Reset(uint64_t bytes);
  // Charges what is left of the grant (for a write through the server,
  // which may then allocate it as well as free space nobody holds); returns
  // its bytes, to be settled when the write's reply comes.
  uint64_t ChargeRest();
  // Called about once a second: a grant nothing was charged to for
  // `idle_ns` (and nothing is charged now) is charged whole, to be given
  // back (returnGrant) and settled like a write; returns its bytes (0: none).
  uint64_t TakeIdle(int64_t now_ns, int64_t idle_ns);
  uint64_t granted() const;
  uint64_t charged() const;

 private:
  mutable std::mutex mu_;  // guards the two below (rank: leaf)
  uint64_t granted_ = 0;
  uint64_t charged_ = 0;
  bool used_ = false;        // charged since the last TakeIdle
  int64_t idle_since_ = -1;  // ns; -1: not looked at yet
};

}  // namespace cohfs
