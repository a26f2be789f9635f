#include "client/stats.h"

#include <capnp/schema.h>

#include "client/fuse_uring_abi.h"
#include "protocol/cohfs.capnp.h"

namespace cohfs {

// Names of the FUSE opcodes we answer, indexed by opcode (linux/fuse.h).
const char* FuseOpName(size_t op) {
  static const char* const kNames[] = {
      nullptr,        "lookup",    "forget",      "getattr",  "setattr",  "readlink",
      "symlink",      nullptr,     "mknod",       "mkdir",    "unlink",   "rmdir",
      "rename",       "link",      "open",        "read",     "write",    "statfs",
      "release",      nullptr,     "fsync",       "setxattr", "getxattr", "listxattr",
      "removexattr",  "flush",     "init",        "opendir",  "readdir",  "releasedir",
      "fsyncdir",     "getlk",     "setlk",       "setlkw",   "access",   "create",
      "interrupt",    "bmap",      "destroy",     "ioctl",    "poll",     "notify_reply",
      "batch_forget", "fallocate", "readdirplus", "rename2",  "lseek",    "copy_file_range"};
  if (op < sizeof(kNames) / sizeof(kNames[0]) && kNames[op]) return kNames[op];
  return nullptr;
}

std::string ClientStats::Format() const {
  std::string out;
  auto line = [&](const std::string& name, uint64_t v) {
    out += name + " " + std::to_string(v) + "\n";
  };
  uint64_t total_fuse = 0;
  for (size_t i = 0; i < kMaxFuseOpcode; i++) total_fuse += fuse_ops[i];
  line("fuse_total", total_fuse);
  for (size_t i = 0; i < kMaxFuseOpcode; i++) {
    if (fuse_ops[i] == 0) continue;
    const char* n = FuseOpName(i);
    line(std::string("fuse.") + (n ? n : std::to_string(i).c_str()), fuse_ops[i]);
  }
  uint64_t total_rpc = 0;
  for (size_t i = 0; i < kMaxRequestKinds; i++) total_rpc += rpcs[i];
  line("rpc_total", total_rpc);
  line("round_trips", round_trips);
  auto fields = capnp::Schema::from<wire::Request>().getUnionFields();
  for (size_t i = 0; i < kMaxRequestKinds; i++) {
    if (rpcs[i] == 0) continue;
    std::string name =
        i < fields.size() ? fields[i].getProto().getName().cStr() : std::to_string(i);
    line("rpc." + name, rpcs[i]);
  }
  line("bytes_sent", bytes_sent);
  line("bytes_received", bytes_received);
  line("cache_hits", cache_hits);
  line("negative_hits", negative_hits);
  line("local_changes", local_changes);
  line("rpc_errors", rpc_errors);
  line("recalls", recalls);
  line("lru_releases", lru_releases);
  line("writes_through", writes_through);
  line("space_grant_bytes", space_grant_bytes);
  line("fuse_init_added", fuse_init_added);
  if (metrics_port != 0) line("metrics_port", metrics_port);
  // The INIT reply asked for rings and the kernel took their registration.
  const bool uring = (fuse_init_added & kFuseOverIoUring) && fuse_uring_register_errno == 0;
  out += std::string("fuse_transport ") + (uring ? "uring" : "dev") + "\n";
  line("fuse_uring_requests", fuse_uring_requests);
  line("fuse_uring_entries", fuse_uring_entries);
  line("fuse_uring_errors", fuse_uring_errors);
  line("fuse_uring_register_errno", fuse_uring_register_errno);
  return out;
}

}  // namespace cohfs
