// The FUSE-over-io_uring kernel ABI (protocol 7.42, Linux 6.14+), which
// Debian 12's <linux/fuse.h> (7.38) predates. Written from the kernel's
// include/uapi/linux/fuse.h and fs/fuse/dev_uring.c; sizes checked below.
//
// One ring entry = a header buffer (fuse_uring_req_header) and a payload
// buffer, given to the kernel as iov[2] in a REGISTER command. For a request
// the kernel fills in_out with the fuse_in_header, op_in with the request's
// first argument (its fixed struct; empty for name-first requests such as
// LOOKUP), and the payload with the rest; ring_ent_in_out.payload_sz says how
// many payload bytes. A reply puts the fuse_out_header in in_out and all the
// out arguments in the payload, then COMMIT_AND_FETCH hands the entry back.
#pragma once

#include <linux/fuse.h>

#include <cstdint>

namespace cohfs {

// FUSE_INIT flag (in flags2): the kernel can, and the daemon will, use rings.
inline constexpr uint64_t kFuseOverIoUring = 1ull << 41;

inline constexpr uint32_t kFuseIoUringCmdRegister = 1;
inline constexpr uint32_t kFuseIoUringCmdCommitAndFetch = 2;

struct FuseUringEntInOut {
  uint64_t flags;
  uint64_t commit_id;  // the request's unique, echoed in FuseUringCmdReq
  uint32_t payload_sz;
  uint32_t padding;
  uint64_t reserved;
};

inline constexpr size_t kFuseUringInOutBytes = 128;
inline constexpr size_t kFuseUringOpInBytes = 128;

struct FuseUringReqHeader {
  char in_out[kFuseUringInOutBytes];  // fuse_in_header / fuse_out_header
  char op_in[kFuseUringOpInBytes];
  FuseUringEntInOut ring_ent_in_out;
};

// The command area of a 128-byte SQE.
struct FuseUringCmdReq {
  uint64_t flags;
  uint64_t commit_id;
  uint16_t qid;
  uint8_t padding[6];
};

static_assert(sizeof(FuseUringEntInOut) == 32);
static_assert(sizeof(FuseUringReqHeader) == 288);
static_assert(sizeof(FuseUringCmdReq) == 24);
static_assert(sizeof(fuse_in_header) <= kFuseUringInOutBytes);
static_assert(sizeof(fuse_out_header) <= kFuseUringInOutBytes);

}  // namespace cohfs
