#include "common/log.h"

#include <atomic>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace cohfs {
namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};  // process-wide verbosity knob
const char* kNames[] = {"D", "I", "W", "E"};
}  // namespace

void SetLogLevel(LogLevel level) { g_level = static_cast<int>(level); }
bool LogEnabled(LogLevel level) { return static_cast<int>(level) >= g_level; }

LogLine::LogLine(LogLevel level, const char* file, int line) {
  const char* base = std::strrchr(file, '/');
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
