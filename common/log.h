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
  std::ostringstream out_;
};

}  // namespace cohfs

// `LogVoidify() & line` binds looser than <<, so LOG(x) << a << b is one expression.
namespace cohfs {
struct LogVoidify {
  void operator&(const cohfs::LogLine&) {}
};
}  // namespace cohfs

#define LOG(level)                                             \
  !::cohfs::LogEnabled(::cohfs::LogLevel::k##level)            \
      ? (void)0                                                \
      : ::cohfs::LogVoidify() & ::cohfs::LogLine(::cohfs::LogLevel::k##level, __FILE__, __LINE__)
