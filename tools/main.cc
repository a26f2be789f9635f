// cohfs: one binary, one subcommand per job.
#include <malloc.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "tools/commands.h"
#include "tools/version.h"

namespace {

void Usage(FILE* out) {
  std::fprintf(out,
               "usage: cohfs COMMAND [ARGS]\n\n"
               "commands:\n"
               "  keygen FILE [--force]                       make a key for serve/mount --key\n"
               "  format DEVICE [--force] [--meta DIR]        make a new file system\n"
               "  serve DEVICE --listen HOST:PORT --key FILE  serve it (foreground)\n"
               "  mount HOST:PORT MOUNTPOINT --key FILE       mount it with FUSE\n"
               "  fsck DEVICE [--meta DIR] [--no-checksums]   check every invariant offline\n"
               "  stats MOUNTPOINT [--watch]                  the client's counters (or rates)\n"
               "  status HOST:PORT [--key FILE]               the server's sessions, locks, space\n"
               "  --version                                   version and commit\n\n"
               "Run 'cohfs COMMAND --help' for a command's options.\n");
}

}  // namespace

int main(int argc, char** argv) {
  // Frames of up to 9 MiB are allocated and freed all the time, on both ends.
  // glibc maps each such buffer anew and unmaps it at free (or trims the heap
  // under it), so every frame faults its pages in again: that was 40% of a
  // 1 GiB write's CPU. Keep them in the heap, and freed ones there for reuse.
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 128 << 20);
  // mount(8) runs /sbin/mount.cohfs, a symlink to this binary.
  const char* slash = std::strrchr(argv[0], '/');
  if (!std::strcmp(slash ? slash + 1 : argv[0], "mount.cohfs")) {
    return cohfs::MountHelperCommand(argc, argv);
  }
  if (argc >= 2 && !std::strcmp(argv[1], "--version")) {
    std::printf("cohfs %s (commit %s)\n", COHFS_VERSION, COHFS_GIT_COMMIT);
    return 0;
  }
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    Usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  std::string cmd = argv[1];
  int sub_argc = argc - 1;
  char** sub_argv = argv + 1;
  if (cmd == "keygen") return cohfs::KeygenCommand(sub_argc, sub_argv);
  if (cmd == "format") return cohfs::FormatCommand(sub_argc, sub_argv);
  if (cmd == "serve") return cohfs::ServeCommand(sub_argc, sub_argv);
  if (cmd == "mount") return cohfs::MountCommand(sub_argc, sub_argv);
  if (cmd == "fsck") return cohfs::FsckCommand(sub_argc, sub_argv);
  if (cmd == "stats") return cohfs::StatsCommand(sub_argc, sub_argv);
  if (cmd == "status") return cohfs::StatusCommand(sub_argc, sub_argv);
  std::fprintf(stderr, "cohfs: unknown command '%s'\n\n", cmd.c_str());
  Usage(stderr);
  return 2;
}
