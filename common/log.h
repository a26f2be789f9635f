// Minimal leveled logging to stderr: LOG(Info) << "text"; levels Debug, Info, Warn, Error.
#pragma once

#include <sstream>

namespace cohfs {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

void SetLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);

class LogLine {
 public:
  LogLine(LogLevel level, const char* file, int line);
  ~LogLine();
  template <typename T>
  LogLine& operator<<(const T& v) {
    out_ << v;
    return *this;
  }

 private:
  LogLevel level_;
  std::ostringstream out_;
};

}  // namespace cohfs

#define LOG(level)                                                  \
  if (!::cohfs::LogEnabled(::cohfs::LogLevel::k##level)) {          \
  } else                                                            \
    ::cohfs::LogLine(::cohfs::LogLevel::k##level, __FILE__, __LINE__)
