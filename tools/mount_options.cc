#include "tools/mount_options.h"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <string_view>

#include "tools/args.h"

namespace cohfs {
namespace {

// Flags libfuse hands to mount(2) itself (fuse_session_new's mount options).
constexpr std::array<std::string_view, 14> kKernelFlags = {
    "ro",     "rw",    "suid",    "nosuid",     "dev",  "nodev", "exec",
    "noexec", "atime", "noatime", "nodiratime", "sync", "async", "dirsync"};

// Options fstab and mount(8) use for themselves; they mean nothing to the mount.
constexpr std::array<std::string_view, 9> kFstabOnly = {
    "defaults", "auto", "noauto", "_netdev", "nofail", "user", "nouser", "users", "owner"};

bool IsFstabOnly(const std::string& opt) {
  if (opt.rfind("x-", 0) == 0 || opt.rfind("comment=", 0) == 0) return true;
  return std::find(kFstabOnly.begin(), kFstabOnly.end(), opt) != kFstabOnly.end() || opt == "group";
}

// One NAME=VALUE option; returns "" or what is wrong, *known false if NAME is not ours.
std::string ParseValued(const std::string& name, const std::string& value, MountOptions* o,
                        MountOptionList* list, int64_t* timeo_ms, bool* known) {
  *known = true;
  if (name == "key") {
    if (value.empty()) return "key wants a file (key=FILE)";
    list->key_file = value;
  } else if (name == "timeo" || name == "timeout") {
    int64_t ms = ParseSecondsMs(value, 3600);
    if (ms < 0) return name + " wants seconds, more than 0 and at most 3600";
    if (name == "timeo") *timeo_ms = ms;
    if (name == "timeout") o->timeout_ms = static_cast<int>(ms);
  } else if (name == "max_locks") {
    if (!ParseCount(value, &o->max_locks)) return "max_locks wants a count above 0";
  } else if (name == "uring_threads") {
    if (!ParseCount(value, &o->uring_threads) || o->uring_threads > 64) {
      return "uring_threads wants 1 to 64";
    }
  } else if (name == "metrics") {
    if (value.empty()) return "metrics wants HOST:PORT (metrics=HOST:PORT)";
    o->metrics_listen = value;
  } else if (name == "log") {
    if (value.empty()) return "log wants a file (log=FILE)";
    o->log_file = value;
  } else {
    *known = false;
  }
  return "";
}

}  // namespace

std::string ParseMountOptionList(const std::string& text, bool sloppy, MountOptions* o,
                                 MountOptionList* list) {
  bool soft = o->soft_timeout_ms > 0;
  int64_t timeo_ms = soft ? o->soft_timeout_ms : 30000;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = std::min(text.find(',', start), text.size());
    std::string opt = text.substr(start, end - start);
    start = end + 1;
    size_t eq = opt.find('=');
    bool known = true;
    if (opt.empty()) continue;
    if (opt == "soft" || opt == "hard") {
      soft = opt == "soft";
    } else if (opt == "insecure") {
      list->insecure = true;
    } else if (opt == "uring" || opt == "nouring") {
      o->fuse_uring = opt == "uring";  // FUSE over io_uring when the kernel offers it
    } else if (std::find(kKernelFlags.begin(), kKernelFlags.end(), opt) != kKernelFlags.end()) {
      o->fuse_options += (o->fuse_options.empty() ? "" : ",") + opt;
    } else if (IsFstabOnly(opt)) {
      list->ignored.push_back(opt);
    } else if (eq != std::string::npos) {
      std::string err =
          ParseValued(opt.substr(0, eq), opt.substr(eq + 1), o, list, &timeo_ms, &known);
      if (!err.empty()) return err;
    } else {
      known = false;
    }
    if (!known && !sloppy) return "unknown option -o " + opt;
    if (!known) list->ignored.push_back(opt);
  }
  if (!list->key_file.empty() && list->insecure) return "give key=FILE or insecure, not both";
  o->soft_timeout_ms = soft ? timeo_ms : 0;
  return "";
}

}  // namespace cohfs
