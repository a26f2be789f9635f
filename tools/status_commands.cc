// `cohfs status` (the server, through the protocol) and `cohfs stats` (a
// mount's counters, once or --watch).
#include <signal.h>
#include <sys/xattr.h>
#include <time.h>

#include <chrono>
#include <cstring>

#include "client/server_status.h"
#include "tools/args.h"
#include "tools/commands.h"
#include "tools/stats_watch.h"

namespace cohfs {
namespace {

// The mount's counters (the virtual xattr cohfs.stats); false after saying why.
bool ReadStats(const std::string& mnt, std::string* out) {
  std::vector<char> buf(64 * 1024);
  ssize_t n = getxattr(mnt.c_str(), "cohfs.stats", buf.data(), buf.size());
  if (n < 0) {
    std::fprintf(stderr, "cohfs stats: %s is not a cohfs mount (%s)\n", mnt.c_str(),
                 std::strerror(errno));
    return false;
  }
  out->assign(buf.data(), static_cast<size_t>(n));
  return true;
}

std::string ClockNow() {
  time_t t = time(nullptr);
  tm local{};
  localtime_r(&t, &local);
  char buf[16];
  strftime(buf, sizeof(buf), "%H:%M:%S", &local);
  return buf;
}

// A line per interval until SIGINT/SIGTERM or `count` lines (0: no end).
// The signals are blocked and waited for, so an interrupt ends it between
// lines, with a clean exit status.
int Watch(const std::string& mnt, int64_t interval_ms, long count) {
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  sigprocmask(SIG_BLOCK, &stop, nullptr);
  std::string text;
  if (!ReadStats(mnt, &text)) return 1;
  StatsSample before = ParseStats(text);
  auto t0 = std::chrono::steady_clock::now();
  std::fputs(StatsWatchHeader().c_str(), stdout);
  std::fflush(stdout);
  for (long lines = 0; count == 0 || lines < count; lines++) {
    auto due = t0 + std::chrono::milliseconds(interval_ms);
    while (true) {
      auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(
          due - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      timespec ts{static_cast<time_t>(left.count() / 1000000000),
                  static_cast<long>(left.count() % 1000000000)};
      int sig = sigtimedwait(&stop, nullptr, &ts);
      if (sig == SIGINT || sig == SIGTERM) return 0;
    }
    if (!ReadStats(mnt, &text)) return 1;
    StatsSample after = ParseStats(text);
    auto t1 = std::chrono::steady_clock::now();
    double seconds = std::chrono::duration<double>(t1 - t0).count();
    std::fputs(StatsWatchLine(ClockNow(), before, after, seconds).c_str(), stdout);
    std::fflush(stdout);
    before = std::move(after);
    t0 = t1;
  }
  return 0;
}

}  // namespace

int StatsCommand(int argc, char** argv) {
  Args a = Parse(argc, argv, {"--interval", "--count"}, {"--watch"});
  int rc = CheckArgs(a, 1,
                     "usage: cohfs stats MOUNTPOINT [--watch [--interval SECONDS] [--count N]]\n"
                     "Prints the client's counters as 'name value' lines: FUSE requests by\n"
                     "opcode (fuse.*), server round trips by message (rpc.*, total rpc_total),\n"
                     "bytes each way and cache hits.\n"
                     "  --watch             a line of per-second rates every interval, under a\n"
                     "                      header, until SIGINT (Ctrl-C)\n"
                     "  --interval SECONDS  between lines (default 1)\n"
                     "  --count N           stop after N lines\n");
  if (rc >= 0) return rc;
  const std::string& mnt = a.positional[0];
  if (a.Has("--watch")) {
    int64_t interval_ms = ParseSecondsMs(a.Get("--interval", "1"), 3600);
    char* end = nullptr;
    std::string count_text = a.Get("--count", "0");
    long count = std::strtol(count_text.c_str(), &end, 10);
    if (interval_ms < 0 || *end != '\0' || count < 0) {
      std::fprintf(stderr, "cohfs stats: --interval wants seconds (0.001 to 3600), --count N\n");
      return 2;
    }
    return Watch(mnt, interval_ms, count);
  }
  std::string text;
  if (!ReadStats(mnt, &text)) return 1;
  std::fwrite(text.data(), 1, text.size(), stdout);
  return 0;
}

int StatusCommand(int argc, char** argv) {
  Args a = Parse(argc, argv, {"--key", "--timeout"}, {});
  int rc = CheckArgs(a, 1,
                     "usage: cohfs status HOST:PORT [--key FILE] [--timeout SECONDS]\n"
                     "Asks the server (through the protocol, authenticated and encrypted with\n"
                     "--key as a mount is) for its sessions, their leases and locks, recalls in\n"
                     "flight, the grace period and space. Opens no session.\n");
  if (rc >= 0) return rc;
  std::optional<ChannelKey> key;
  if (a.Has("--key") && !LoadKey("status", a.Get("--key"), &key)) return 1;
  int64_t timeout_ms = ParseSecondsMs(a.Get("--timeout", "10"), 3600);
  if (timeout_ms < 0) {
    std::fprintf(stderr, "cohfs status: --timeout wants seconds, more than 0 and at most 3600\n");
    return 2;
  }
  const std::string& server = a.positional[0];
  auto report = QueryServerStatus(server, key ? &*key : nullptr, static_cast<int>(timeout_ms));
  if (!report.ok()) {
    std::fprintf(stderr, "cohfs status: %s: %s\n", server.c_str(),
                 report.status().ToString().c_str());
    return 1;
  }
  std::fputs(FormatServerReport(server, *report).c_str(), stdout);
  return 0;
}

}  // namespace cohfs
