// Identity squashing (exports(5) root_squash and all_squash): the server maps
// every caller a request names before it checks anything, so a client cannot
// act as root (or as anyone but nobody) however it fills the caller field.
#pragma once

#include <cstdint>

#include "common/fs_types.h"

namespace cohfs {

enum class Squash : uint8_t {
  kNone = 0,
  kRoot = 1,  // uid 0 -> nobody, gid 0 -> nogroup (also among the supplementary groups)
  kAll = 2,   // every uid -> nobody, every gid -> nogroup, no supplementary groups
};

inline constexpr uint32_t kNobodyUid = 65534;
inline constexpr uint32_t kNogroupGid = 65534;

inline Caller Squashed(Caller c, Squash squash) {
  switch (squash) {
    case Squash::kNone:
      break;
    case Squash::kRoot:
      if (c.uid == 0) c.uid = kNobodyUid;
      if (c.gid == 0) c.gid = kNogroupGid;
      for (uint32_t& g : c.groups) {
        if (g == 0) g = kNogroupGid;
      }
      break;
    case Squash::kAll:
      c.uid = kNobodyUid;
      c.gid = kNogroupGid;
      c.groups.clear();
      break;
  }
  return c;
}

}  // namespace cohfs
