// Client counters, read by `cohfs stats MOUNTPOINT` (through the virtual
// xattr "cohfs.stats" on the mount root). Lock-free; any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

namespace cohfs {

inline constexpr size_t kMaxFuseOpcode = 64;
inline constexpr size_t kMaxRequestKinds = 64;

struct ClientStats {
  std::atomic<uint64_t> fuse_ops[kMaxFuseOpcode] = {};
  std::atomic<uint64_t> rpcs[kMaxRequestKinds] = {};  // frames sent, by request kind
  std::atomic<uint64_t> round_trips{0};  // requests someone waited for (not commits, releases)
  std::atomic<uint64_t> bytes_sent{0};
  std::atomic<uint64_t> bytes_received{0};
  std::atomic<uint64_t> cache_hits{0};         // answered from the object cache
  std::atomic<uint64_t> negative_hits{0};      // ENOENT answered from a complete directory
  std::atomic<uint64_t> local_changes{0};      // changes answered locally, shipped in a commit
  std::atomic<uint64_t> rpc_errors{0};         // transport failures (not errno replies)
  std::atomic<uint64_t> recalls{0};            // locks the server asked back
  std::atomic<uint64_t> lru_releases{0};       // locks given back to stay under the bound
  std::atomic<uint64_t> writes_through{0};     // writes that waited for the server (not owned, or
                                               // past the space grant)
  std::atomic<uint64_t> space_grant_bytes{0};  // the space grant, as of the last write's reply
  std::atomic<uint64_t> fuse_init_added{0};    // INIT flags libfuse left out and we added
  std::atomic<uint64_t> metrics_port{0};       // -o metrics: the port it serves (0: none)
  // FUSE over io_uring (FuseUring): requests answered through a ring, ring
  // entries that took a request, entries ended by an error, and the errno of
  // a refused REGISTER (the kernel then uses /dev/fuse).
  std::atomic<uint64_t> fuse_uring_requests{0};
  std::atomic<uint64_t> fuse_uring_entries{0};
  std::atomic<uint64_t> fuse_uring_errors{0};
  std::atomic<uint64_t> fuse_uring_register_errno{0};

  // "name value" lines; rpc_total is the sum of all requests sent;
  // fuse_transport is "uring" or "dev" (/dev/fuse).
  std::string Format() const;
};

// A FUSE opcode's name (linux/fuse.h), or null for one we do not name.
const char* FuseOpName(size_t op);

}  // namespace cohfs
