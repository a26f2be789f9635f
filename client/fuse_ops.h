// FuseOps: the libfuse low-level operations table, a thin adapter over the
// client core (FsClient). Every request is answered exactly once; cached
// operations are answered from the core's cache; attribute changes and
// creates under EXCLUSIVE are answered locally and logged; data under
// EXCLUSIVE is written behind; the rest become one RPC each (write-through).
// Kernel timeouts follow the locks: a name is cached while its directory is
// held, attributes while the inode is held; recalls invalidate both.
#pragma once

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "client/fs_client.h"
#include "client/fuse_init_io.h"
#include "client/rpc_client.h"

namespace cohfs {

class FuseUring;

struct FuseOpsConfig {
  double cached_timeout_s = 86400;     // kernel entry/attr timeout while a lock is held
  uint32_t readdir_batch = 1024;       // entries fetched per ReadDir round trip
  size_t max_locked_inodes = 1 << 20;  // cached inodes; past it LRU locks go back
};

class FuseOps : public KernelCache {
 public:
  FuseOps(RpcClient& rpc, ClientStats& stats, const FuseOpsConfig& config);
  ~FuseOps() override;

  static const fuse_lowlevel_ops& Table();
  // The session's io (fuse_session_custom_io): /dev/fuse as is, but for the
  // INIT flags libfuse 3.14 leaves out (FuseInitIo).
  static const fuse_custom_io& CustomIo();
  // Starts the core's thread (recalls); before the connection's network thread.
  void Start() { core_.Start(); }
  // Called once the kernel's INIT has been answered (the mount is live).
  void set_on_init(std::function<void()> f) { on_init_ = std::move(f); }
  void Initialized() {
    if (on_init_) on_init_();
  }

  // Network thread hook: ships the writeback log and queued lock releases.
  void Tick() { core_.Tick(); }
  // FUSE over io_uring, prepared before the session loop (FuseInitIo).
  void set_uring(FuseUring* uring) { init_io_.set_uring(uring); }
  // For kernel invalidations (recalls, refused changes); nullptr once the
  // mount is gone.
  void set_session(fuse_session* se) { session_ = se; }

  // KernelCache (the core's thread):
  void InvalInode(InodeId ino) override;
  void InvalEntry(InodeId dir, const std::string& name) override;

  // For the operations (fuse_ops.cc, fuse_data_ops.cc, fuse_dir_ops.cc).
  FsClient& core() { return core_; }
  const FuseOpsConfig& config() const { return config_; }
  ClientStats& stats() { return stats_; }
  fuse_session* session() { return session_.load(); }

 private:
  ClientStats& stats_;
  FuseOpsConfig config_;
  FsClient core_;
  FuseInitIo init_io_;
  std::function<void()> on_init_;
  std::atomic<fuse_session*> session_{nullptr};  // read by the core's thread
};

}  // namespace cohfs
