// Strong id types: an inode number can never be passed where a client id goes.
#pragma once

#include <cstdint>
#include <functional>

namespace cohfs {

template <typename Tag>
struct StrongId {
  uint64_t value = 0;
  constexpr StrongId() = default;
  constexpr explicit StrongId(uint64_t v) : value(v) {}
  constexpr bool operator==(const StrongId&) const = default;
  constexpr auto operator<=>(const StrongId&) const = default;
  constexpr bool valid() const { return value != 0; }
};

using InodeId = StrongId<struct InodeTag>;
using ClientId = StrongId<struct ClientTag>;
using RequestId = StrongId<struct RequestTag>;
using SessionId = StrongId<struct SessionTag>;

// Inode 1 is the root, as FUSE_ROOT_ID; inode numbers are never reused.
inline constexpr InodeId kRootInode{1};

}  // namespace cohfs

template <typename Tag>
struct std::hash<cohfs::StrongId<Tag>> {
  size_t operator()(const cohfs::StrongId<Tag>& id) const noexcept {
    return std::hash<uint64_t>()(id.value);
  }
};
