// Mount options in the -o form, shared by `cohfs mount -o` and mount(8)'s
// helper mount.cohfs: one parser, so an fstab line says all a command line can.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "client/mount.h"

namespace cohfs {

// What an -o list asks for beyond the fields of MountOptions it sets.
struct MountOptionList {
  std::string key_file;              // key=FILE (read by the caller)
  bool insecure = false;             // insecure: no key, frames in clear
  std::vector<std::string> ignored;  // fstab-only options (and unknown ones when sloppy)
};

// Parses e.g. "key=/etc/cohfs/k.key,soft,timeo=5,ro,_netdev,nofail" into *o
// and *list. Returns "" or what is wrong. `sloppy` (mount -s) ignores unknown
// options instead of refusing them. Kernel mount flags (ro, noexec, ...) go to
// o->fuse_options.
std::string ParseMountOptionList(const std::string& text, bool sloppy, MountOptions* o,
                                 MountOptionList* list);

}  // namespace cohfs
