#include "common/log.h"

#include <sys/stat.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace cohfs {
namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};  // process-wide verbosity knob
const char* kNames[] = {"D", "I", "W", "E"};
// sd-daemon(3) priority prefixes journald turns into PRIORITY=: debug, info, warning, err.
const char* kJournalPrefixes[] = {"<7>", "<6>", "<4>", "<3>"};

// Whether stderr is a journald stream: systemd sets JOURNAL_STREAM to its
// "device:inode"; a redirected stderr of a child keeps the variable but not the inode.
bool StderrIsJournal() {
  const char* env = std::getenv("JOURNAL_STREAM");
  unsigned long long dev = 0, ino = 0;
  struct stat st;
  if (!env || std::sscanf(env, "%llu:%llu", &dev, &ino) != 2 || fstat(2, &st) != 0) return false;
  return st.st_dev == dev && st.st_ino == ino;
}

}  // namespace

void SetLogLevel(LogLevel level) { g_level = static_cast<int>(level); }
bool LogEnabled(LogLevel level) { return static_cast<int>(level) >= g_level; }

LogLine::LogLine(LogLevel level, const char* file, int line) {
  // Decided once: journald stamps each line itself and reads the priority prefix.
  static const bool journal = StderrIsJournal();
  const char* base = std::strrchr(file, '/');
  if (journal) {
    out_ << kJournalPrefixes[static_cast<int>(level)] << (base ? base + 1 : file) << ":" << line
         << "] ";
    return;
  }
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  tm t;
  gmtime_r(&ts.tv_sec, &t);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%H:%M:%S", &t);
  out_ << kNames[static_cast<int>(level)] << " " << buf << "." << (ts.tv_nsec / 1000000) << " "
       << (base ? base + 1 : file) << ":" << line << "] ";
}

LogLine::~LogLine() {
  out_ << "\n";
  std::string s = out_.str();
  std::fwrite(s.data(), 1, s.size(), stderr);
}

}  // namespace cohfs
