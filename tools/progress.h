// Progress of a long pass (format's discard, fsck's checksums) on stderr:
// percent, rate and time left, redrawn in place at most ~10 times a second,
// and only when stderr is a terminal: a log or a pipe gets nothing.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace cohfs {

// "fsck: 42.0% (1.2 GiB of 2.9 GiB), 350.0 MiB/s, 5 s left"; without a rate
// yet (nothing done, no time passed) the rate and time left read "-".
std::string RenderProgress(const std::string& what, uint64_t done_bytes, uint64_t total_bytes,
                           double elapsed_s);
std::string HumanBytes(double bytes);  // "512 B", "1.5 KiB", ..., "2.0 TiB"

class ProgressMeter {
 public:
  // `enabled` false: every call does nothing (see ForStderr).
  ProgressMeter(std::string what, FILE* out, bool enabled);
  static ProgressMeter ForStderr(std::string what);  // enabled when stderr is a tty
  void Update(uint64_t done_bytes, uint64_t total_bytes);
  void Finish();  // the last state, then a newline, if anything was drawn
  bool enabled() const { return enabled_; }

 private:
  void Draw();
  std::string what_;
  FILE* out_;
  bool enabled_;
  bool drawn_ = false;
  uint64_t done_ = 0, total_ = 0;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace cohfs
