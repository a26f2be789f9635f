#include "tools/commands.h"

#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "client/mount.h"
#include "common/log.h"
#include "server/server.h"
#include "storage/fsck.h"
#include "storage/volume.h"
#include "tools/args.h"
#include "tools/mount_options.h"
#include "tools/progress.h"

namespace cohfs {

int KeygenCommand(int argc, char** argv) {
  Args a = Parse(argc, argv, {}, {"--force"});
  int rc = CheckArgs(a, 1,
                     "usage: cohfs keygen FILE [--force]\n"
                     "  Writes a new random key to FILE (mode 0600) for serve --key and\n"
                     "  mount --key. Copy it to each client over a channel you trust.\n"
                     "  --force   replace an existing FILE\n");
  if (rc >= 0) return rc;
  Status st = WriteNewKeyFile(a.positional[0], a.Has("--force"));
  if (!st.ok()) {
    std::fprintf(stderr, "cohfs keygen: %s\n", st.ToString().c_str());
    if (st.errno_value() == EEXIST) std::fprintf(stderr, "  (use --force to replace it)\n");
    return 1;
  }
  std::printf("wrote a new key to %s\n", a.positional[0].c_str());
  return 0;
}

int FormatCommand(int argc, char** argv) {
  Args a = Parse(argc, argv, {"--meta"}, {"--force", "--no-discard"});
  int rc = CheckArgs(a, 1,
                     "usage: cohfs format DEVICE [--force] [--meta DIR] [--no-discard]\n"
                     "  DEVICE    a block device or an existing image file (its size is used)\n"
                     "  --force   overwrite an existing cohfs file system\n"
                     "  --meta    metadata directory (default: DEVICE.meta for an image,\n"
                     "            /var/lib/cohfs/<uuid> for a block device)\n"
                     "  --no-discard  keep the old blocks (default: discard them, as mkfs;\n"
                     "            an image file gets its space back)\n"
                     "Shows progress on stderr when it is a terminal.\n");
  if (rc >= 0) return rc;
  FormatOptions o;
  o.device = a.positional[0];
  o.meta_dir = a.Get("--meta");
  o.force = a.Has("--force");
  o.discard = !a.Has("--no-discard");
  ProgressMeter meter = ProgressMeter::ForStderr("format: discarding");
  o.progress = [&meter](uint64_t done, uint64_t total) { meter.Update(done, total); };
  Status st = Volume::Format(o);
  if (meter.enabled()) meter.Finish();
  if (!st.ok()) {
    std::fprintf(stderr, "cohfs format: %s: %s\n", o.device.c_str(), st.ToString().c_str());
    if (st.errno_value() == EEXIST) std::fprintf(stderr, "  (use --force to overwrite it)\n");
    return 1;
  }
  std::printf("formatted %s\n", o.device.c_str());
  return 0;
}

int ServeCommand(int argc, char** argv) {
  Args a = Parse(argc, argv,
                 {"--listen", "--meta", "--sync-interval-ms", "--max-locks", "--lease", "--grace",
                  "--peer-timeout", "--max-connections", "--key", "--metrics"},
                 {"--verbose", "--root-squash", "--all-squash", "--insecure"});
  int rc = CheckArgs(a, 1,
                     "usage: cohfs serve DEVICE --listen HOST:PORT (--key FILE | --insecure)\n"
                     "                   [--meta DIR] [--lease SECONDS]\n"
                     "  --key FILE          clients must prove they hold this key (cohfs keygen);\n"
                     "                      everything on the wire is encrypted\n"
                     "  --insecure          no key: frames in clear, any peer served; only on a\n"
                     "                      loopback --listen address\n"
                     "  --listen            address to listen on (default 127.0.0.1:7420;\n"
                     "                      port 0 picks a free port and prints it)\n"
                     "  --meta              metadata directory (default as for format)\n"
                     "  --sync-interval-ms  unsynced changes become durable at least this often\n"
                     "  --max-locks         inodes locked by clients at most (default 1048576);\n"
                     "                      past it the oldest locks are recalled\n"
                     "  --lease SECONDS     a client silent this long is declared dead: its\n"
                     "                      connection closes, its locks go (default 15); a\n"
                     "                      client that disconnected has this long to come back\n"
                     "  --grace SECONDS     after a restart, the clients' time to reconnect and\n"
                     "                      reclaim their locks (default: one lease)\n"
                     "  --peer-timeout SECONDS  a peer that does not finish a frame it began,\n"
                     "                      or read its replies, this long is disconnected\n"
                     "                      (default 30)\n"
                     "  --max-connections N open at once, at most (default 1024; fewer if the\n"
                     "                      file descriptor limit leaves less room)\n"
                     "  --root-squash       requests from uid 0 act as nobody (65534), gid 0\n"
                     "                      as nogroup (65534), as NFS's root_squash\n"
                     "  --all-squash        every request acts as nobody:nogroup\n"
                     "  --metrics HOST:PORT serve Prometheus metrics at http://HOST:PORT/metrics\n"
                     "                      (port 0 picks a free port and logs it)\n"
                     "  --verbose           debug logging\n"
                     "Runs in the foreground; SIGINT or SIGTERM stop it after a final sync.\n");
  if (rc >= 0) return rc;
  if (a.Has("--verbose")) SetLogLevel(LogLevel::kDebug);
  ServeOptions o;
  if (a.Has("--key") == a.Has("--insecure")) {
    std::fprintf(stderr,
                 "cohfs serve: give --key FILE (make one with cohfs keygen FILE), or "
                 "--insecure to serve in clear on a loopback address\n");
    return 2;
  }
  if (a.Has("--key") && !LoadKey("serve", a.Get("--key"), &o.key)) return 1;
  o.device = a.positional[0];
  o.meta_dir = a.Get("--meta");
  o.listen = a.Get("--listen", o.listen);
  o.metrics_listen = a.Get("--metrics");
  if (!ParseCount(a.Get("--sync-interval-ms", "5000"), &o.sync_interval_ms) ||
      !ParseCount(a.Get("--max-locks", "1048576"), &o.config.max_locked_inodes)) {
    std::fprintf(stderr,
                 "cohfs serve: --sync-interval-ms and --max-locks want a number, at least 1\n");
    return 2;
  }
  int64_t lease_ms = ParseSecondsMs(a.Get("--lease", "15"), 3600);
  if (lease_ms < 0) {
    std::fprintf(stderr, "cohfs serve: --lease wants seconds, more than 0 and at most 3600\n");
    return 2;
  }
  o.config.lease_ms = static_cast<uint32_t>(lease_ms);
  int64_t grace_ms = ParseSecondsMs(a.Get("--grace", a.Get("--lease", "15")), 3600);
  if (grace_ms < 0) {
    std::fprintf(stderr, "cohfs serve: --grace wants seconds, more than 0 and at most 3600\n");
    return 2;
  }
  o.grace_ms = static_cast<uint32_t>(grace_ms);
  int64_t peer_timeout_ms = ParseSecondsMs(a.Get("--peer-timeout", "30"), 3600);
  if (peer_timeout_ms < 0) {
    std::fprintf(stderr,
                 "cohfs serve: --peer-timeout wants seconds, more than 0 and at most 3600\n");
    return 2;
  }
  o.peer_timeout_ms = static_cast<uint32_t>(peer_timeout_ms);
  if (!ParseCount(a.Get("--max-connections", "1024"), &o.max_connections)) {
    std::fprintf(stderr, "cohfs serve: --max-connections wants a number, at least 1\n");
    return 2;
  }
  o.config.squash = a.Has("--all-squash")    ? Squash::kAll
                    : a.Has("--root-squash") ? Squash::kRoot
                                             : Squash::kNone;
  Status st = Serve(o, [](int port) {
    std::printf("listening on port %d\n", port);
    std::fflush(stdout);
  });
  if (!st.ok()) {
    std::fprintf(stderr, "cohfs serve: %s\n", st.ToString().c_str());
    return 1;
  }
  return 0;
}

int MountCommand(int argc, char** argv) {
  Args a = Parse(argc, argv, {"--log", "--max-locks", "--timeout", "-o", "--key", "--metrics"},
                 {"-f", "--foreground", "-d", "--debug"});
  int rc =
      CheckArgs(a, 2,
                "usage: cohfs mount HOST:PORT MOUNTPOINT [-f] [-d] [--log FILE] [--max-locks N]\n"
                "                   [--timeout SECONDS] [-o OPTIONS] [--key FILE]\n"
                "  --key FILE        the server's key (cohfs keygen): authenticate and encrypt\n"
                "  -f, --foreground  keep the client daemon in the foreground\n"
                "  -d, --debug       trace FUSE requests (implies -f)\n"
                "  --log FILE        the background daemon's log\n"
                "  --max-locks N     cached inodes at most (default 1048576); past it the\n"
                "                    least recently used locks are given back\n"
                "  --timeout SECONDS connecting and the handshake give up after this\n"
                "                    (default 30)\n"
                "  -o hard           (the default) calls wait while the server is away;\n"
                "                    the client reconnects and resends by itself\n"
                "  -o soft,timeo=S   calls fail with EIO once the server has been\n"
                "                    unreachable for S seconds (default 30)\n"
                "  -o metrics=HOST:PORT, --metrics HOST:PORT  serve the client's counters\n"
                "                    for Prometheus at http://HOST:PORT/metrics (port 0: a\n"
                "                    free one, shown by cohfs stats as metrics_port)\n"
                "  -o OPTIONS        also key=FILE, timeout=S, max_locks=N, log=FILE and\n"
                "                    kernel flags (ro, noexec, nosuid, nodev, noatime...),\n"
                "                    as mount.cohfs takes them (man mount.cohfs)\n"
                "  -o uring          (the default) FUSE over io_uring when the kernel offers\n"
                "                    it (fuse module parameter enable_uring), else /dev/fuse\n"
                "  -o nouring        /dev/fuse only\n"
                "  -o uring_threads=N ring threads per CPU (default 4), one request each\n"
                "Returns once the mount is live. Unmount with umount or fusermount3 -u.\n");
  if (rc >= 0) return rc;
  // The daemon keeps no descriptor it was born with: a caller's open file on
  // another mount would keep that mount busy for as long as this one lives.
  close_range(3, ~0U, 0);
  MountOptions o;
  o.server = a.positional[0];
  o.mountpoint = a.positional[1];
  o.debug = a.Has("-d") || a.Has("--debug");
  o.foreground = o.debug || a.Has("-f") || a.Has("--foreground");
  o.log_file = a.Get("--log");
  if (!ParseCount(a.Get("--max-locks", "1048576"), &o.max_locks)) {
    std::fprintf(stderr, "cohfs mount: --max-locks wants a number, at least 1\n");
    return 2;
  }
  int64_t timeout_ms = ParseSecondsMs(a.Get("--timeout", "30"), 3600);
  if (timeout_ms < 0) {
    std::fprintf(stderr, "cohfs mount: --timeout wants seconds, more than 0 and at most 3600\n");
    return 2;
  }
  o.timeout_ms = static_cast<int>(timeout_ms);
  MountOptionList list;
  std::string err = ParseMountOptionList(a.Get("-o"), false, &o, &list);
  if (!err.empty()) {
    std::fprintf(stderr, "cohfs mount: %s\n", err.c_str());
    return 2;
  }
  if ((!list.key_file.empty() || list.insecure) && a.Has("--key")) {
    std::fprintf(stderr, "cohfs mount: give --key, -o key= or -o insecure, one of them\n");
    return 2;
  }
  if (a.Has("--metrics")) o.metrics_listen = a.Get("--metrics");
  std::string key_file = a.Has("--key") ? a.Get("--key") : list.key_file;
  if (!key_file.empty() && !LoadKey("mount", key_file, &o.key)) return 1;
  return RunMount(o);
}

int FsckCommand(int argc, char** argv) {
  Args a = Parse(argc, argv, {"--meta"}, {"--no-checksums"});
  int rc = CheckArgs(a, 1,
                     "usage: cohfs fsck DEVICE [--meta DIR] [--no-checksums]\n"
                     "Checks every invariant of an unmounted (not served) file system; refused\n"
                     "while a server has the device.\n"
                     "Exit status 0 only when all hold; otherwise each problem is printed.\n");
  if (rc >= 0) return rc;
  VolumeOptions vo;
  vo.device = a.positional[0];
  vo.meta_dir = a.Get("--meta");
  vo.read_only = true;
  auto volume = Volume::Open(vo);
  if (!volume.ok()) {
    std::fprintf(stderr, "cohfs fsck: %s: %s\n", vo.device.c_str(),
                 volume.status().ToString().c_str());
    return 1;
  }
  ProgressMeter meter = ProgressMeter::ForStderr("fsck: checksums");
  auto report = Fsck(**volume, !a.Has("--no-checksums"),
                     [&meter](uint64_t done, uint64_t total) { meter.Update(done, total); });
  if (meter.enabled() && !a.Has("--no-checksums")) meter.Finish();
  if (!report.ok()) {
    std::fprintf(stderr, "cohfs fsck: %s\n", report.status().ToString().c_str());
    return 1;
  }
  for (const std::string& p : report->problems) std::printf("problem: %s\n", p.c_str());
  std::printf(
      "%s: %lu inodes, %lu directories, %lu extents, %lu data bytes, %lu free bytes: %s\n",
      vo.device.c_str(), (unsigned long)report->inodes, (unsigned long)report->directories,
      (unsigned long)report->extents, (unsigned long)report->data_bytes,
      (unsigned long)report->free_bytes,
      report->ok() ? "clean" : (std::to_string(report->problems.size()) + " problems").c_str());
  return report->ok() ? 0 : 1;
}

}  // namespace cohfs
