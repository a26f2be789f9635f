// Explicit limits shared by every layer; how they relate is asserted here.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cohfs {

inline constexpr uint32_t kBlockBytes = 4096;         // checksum and allocation unit
inline constexpr uint32_t kInlineMaxBytes = 4096;     // files up to this size live in an INLINE item
inline constexpr uint32_t kMaxNameBytes = 255;        // NAME_MAX
inline constexpr uint32_t kMaxSymlinkBytes = 4095;    // PATH_MAX - 1
inline constexpr uint32_t kMaxXattrNameBytes = 255;   // XATTR_NAME_MAX
inline constexpr uint32_t kMaxXattrValueBytes = 65536;  // XATTR_SIZE_MAX
inline constexpr uint32_t kMaxIoBytes = 1u << 20;     // FUSE max_write / max_read (>1 MiB breaks)
inline constexpr uint32_t kMaxExtentBytes = 1u << 20; // one EXTENT item covers at most this
inline constexpr uint32_t kMaxMessageBytes = 8u << 20;  // one Cap'n Proto message in a frame
inline constexpr uint32_t kMaxBulkBytes = kMaxIoBytes;  // one bulk payload in a frame
inline constexpr uint64_t kMaxFileBytes = 1ull << 50;   // s_maxbytes we advertise (1 PiB)
inline constexpr uint32_t kMaxLinks = 65000;          // EXT4_LINK_MAX
inline constexpr uint32_t kMaxCommitGroupOps = 64;    // changes in one `withNext` group of a commit
inline constexpr uint32_t kMaxCommitOps = 8192;       // changes in one commit (bounds its reply)

static_assert(kInlineMaxBytes <= kBlockBytes, "inline data must fit one block");
static_assert(kMaxIoBytes % kBlockBytes == 0, "I/O size must be whole blocks");
static_assert(kMaxExtentBytes >= kMaxIoBytes, "one write fits one extent");
static_assert(kMaxBulkBytes >= kMaxIoBytes, "a bulk payload carries one full write");
static_assert(uint64_t{kMaxCommitOps} * 1024 <= kMaxMessageBytes,
              "a commit's reply (a failure of under 1 KiB per change) fits one message");

}  // namespace cohfs
