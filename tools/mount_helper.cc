// mount.cohfs: what mount(8) runs for `mount -t cohfs` and fstab lines of
// type cohfs, as `mount.cohfs SPEC DIR [-sfnv] [-o OPTIONS]`. It is the cohfs
// binary called by that name (a symlink); it daemonizes like `cohfs mount`
// and exits with mount(8)'s codes: 0 mounted, 1 usage, 32 mount failure.
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "client/mount.h"
#include "protocol/channel_key.h"
#include "tools/commands.h"
#include "tools/mount_options.h"

namespace cohfs {
namespace {

constexpr int kUsageExit = 1;   // mount(8): incorrect invocation or permissions
constexpr int kMountExit = 32;  // mount(8): mount failure

struct HelperArgs {
  std::vector<std::string> positional;
  std::string options;
  bool sloppy = false, fake = false, verbose = false;
  std::string error;
};

HelperArgs ParseHelperArgs(int argc, char** argv) {
  HelperArgs h;
  for (int i = 1; i < argc && h.error.empty(); i++) {
    std::string s = argv[i];
    if (s.size() < 2 || s[0] != '-') {
      h.positional.push_back(s);
      continue;
    }
    // Short flags may be bundled (-sv) and -o/-t take the rest or the next argument.
    for (size_t j = 1; j < s.size(); j++) {
      char c = s[j];
      if (c == 'o' || c == 't') {
        std::string value = j + 1 < s.size() ? s.substr(j + 1) : (i + 1 < argc ? argv[++i] : "");
        if (value.empty()) h.error = std::string("-") + c + " needs a value";
        if (c == 'o') h.options += (h.options.empty() ? "" : ",") + value;
        break;  // -t's type is ours by construction
      }
      if (c == 's') h.sloppy = true;
      if (c == 'f') h.fake = true;
      if (c == 'v') h.verbose = true;
      if (c != 's' && c != 'f' && c != 'v' && c != 'n') h.error = "unknown flag -" + s.substr(j, 1);
    }
  }
  if (h.error.empty() && h.positional.size() != 2) h.error = "wants HOST:PORT and a directory";
  return h;
}

const char kUsage[] =
    "usage: mount.cohfs HOST:PORT DIR [-sfnv] [-o OPTIONS]   (or mount -t cohfs ...)\n"
    "  -o key=FILE      the server's key (cohfs keygen); or -o insecure for none\n"
    "     soft,timeo=S  fail calls with EIO after S s without the server (default hard)\n"
    "     timeout=S     connecting and the handshake give up after S s (default 30)\n"
    "     max_locks=N   cached inodes at most; log=FILE  the daemon's log\n"
    "     ro,noexec,nosuid,nodev,noatime,...  kernel mount flags\n"
    "     _netdev,nofail,defaults,auto,noauto,user,x-*  fstab's own, ignored\n"
    "  -s  ignore unknown options   -f  check everything but do not mount\n"
    "  -n  (no mtab: ignored)       -v  say what is done\n";

}  // namespace

int MountHelperCommand(int argc, char** argv) {
  HelperArgs h = ParseHelperArgs(argc, argv);
  if (!h.error.empty()) {
    std::fprintf(stderr, "mount.cohfs: %s\n%s", h.error.c_str(), kUsage);
    return kUsageExit;
  }
  MountOptions o;
  o.server = h.positional[0];
  o.mountpoint = h.positional[1];
  MountOptionList list;
  std::string err = ParseMountOptionList(h.options, h.sloppy, &o, &list);
  if (err.empty() && list.key_file.empty() && !list.insecure) {
    err = "give -o key=FILE (the server's key), or -o insecure for a server without one";
  }
  if (!err.empty()) {
    std::fprintf(stderr, "mount.cohfs: %s\n", err.c_str());
    return kUsageExit;
  }
  if (!list.key_file.empty()) {
    auto k = ReadKeyFile(list.key_file);
    if (!k.ok()) {
      std::fprintf(stderr, "mount.cohfs: %s\n", k.status().ToString().c_str());
      return kUsageExit;
    }
    o.key = *k;
  }
  if (h.verbose) {
    std::fprintf(stderr, "mount.cohfs: mounting %s on %s (%s)\n", o.server.c_str(),
                 o.mountpoint.c_str(), o.key ? "with a key" : "insecure");
  }
  if (h.fake) return 0;
  // As `cohfs mount`: the daemon keeps no descriptor it was born with.
  close_range(3, ~0U, 0);
  return RunMount(o) == 0 ? 0 : kMountExit;
}

}  // namespace cohfs
