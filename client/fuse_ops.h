// FuseOps: the libfuse low-level operations table. Every request is answered
// exactly once; cached operations are answered from the ObjectCache, the rest
// become one RPC each through the RpcClient (write-through: the server applies
// a change before the kernel sees it succeed).
#pragma once

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include <functional>
#include <mutex>
#include <vector>

#include "client/object_cache.h"
#include "client/rpc_client.h"
#include "client/stats.h"
#include "client/write_behind.h"

namespace cohfs {

struct FuseOpsConfig {
  double cached_timeout_s = 86400;  // kernel entry/attr timeout while a lock is held
  uint32_t readdir_batch = 1024;    // entries fetched per ReadDir round trip
};

class FuseOps {
 public:
  FuseOps(RpcClient& rpc, ClientStats& stats, const FuseOpsConfig& config);

  static const fuse_lowlevel_ops& Table();
  // Called once the kernel's INIT has been answered (the mount is live).
  void set_on_init(std::function<void()> f) { on_init_ = std::move(f); }

  // Sends queued lock releases older than `min_age_ms` (network thread hook).
  void SendReleases(int64_t min_age_ms);

  // Implementation entry points, one per FUSE operation (see fuse_ops.cc).
  struct Impl;

 private:
  friend struct Impl;
  RpcClient& rpc_;
  ClientStats& stats_;
  FuseOpsConfig config_;
  ObjectCache cache_;
  WriteBehind write_behind_;
  std::function<void()> on_init_;

  // Inodes the kernel forgot, whose locks go back to the server in batches.
  std::mutex release_mu_;  // guards the two fields below (rank: leaf)
  std::vector<uint64_t> pending_release_;
  int64_t oldest_release_ns_ = 0;

  std::mutex ino_mu_;  // guards next_ino_, end_ino_ (rank: leaf)
  uint64_t next_ino_ = 0;
  uint64_t end_ino_ = 0;
};

}  // namespace cohfs
