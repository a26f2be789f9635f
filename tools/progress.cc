#include "tools/progress.h"

#include <unistd.h>

namespace cohfs {

std::string HumanBytes(double bytes) {
  static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  size_t u = 0;
  while (bytes >= 1024 && u + 1 < sizeof(kUnits) / sizeof(kUnits[0])) {
    bytes /= 1024;
    u++;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), u == 0 ? "%.0f %s" : "%.1f %s", bytes, kUnits[u]);
  return buf;
}

std::string RenderProgress(const std::string& what, uint64_t done_bytes, uint64_t total_bytes,
                           double elapsed_s) {
  double pct = total_bytes ? 100.0 * static_cast<double>(done_bytes) / total_bytes : 100.0;
  if (pct > 100) pct = 100;
  char buf[256];
  std::string rate = "-", left = "-";
  if (done_bytes > 0 && elapsed_s > 0) {
    double per_s = static_cast<double>(done_bytes) / elapsed_s;
    rate = HumanBytes(per_s) + "/s";
    double rest = done_bytes < total_bytes ? static_cast<double>(total_bytes - done_bytes) : 0;
    std::snprintf(buf, sizeof(buf), "%.0f s", rest / per_s);
    left = buf;
  }
  std::snprintf(buf, sizeof(buf), "%s: %5.1f%% (%s of %s), %s, %s left", what.c_str(), pct,
                HumanBytes(static_cast<double>(done_bytes)).c_str(),
                HumanBytes(static_cast<double>(total_bytes)).c_str(), rate.c_str(), left.c_str());
  return buf;
}

ProgressMeter::ProgressMeter(std::string what, FILE* out, bool enabled)
    : what_(std::move(what)),
      out_(out),
      enabled_(enabled),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

ProgressMeter ProgressMeter::ForStderr(std::string what) {
  return ProgressMeter(std::move(what), stderr, isatty(STDERR_FILENO) == 1);
}

void ProgressMeter::Update(uint64_t done_bytes, uint64_t total_bytes) {
  if (!enabled_) return;
  done_ = done_bytes;
  total_ = total_bytes;
  auto now = std::chrono::steady_clock::now();
  if (drawn_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  Draw();
}

void ProgressMeter::Draw() {
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  // \r and clear-to-end-of-line: redrawn in place.
  std::fprintf(out_, "\r%s\033[K", RenderProgress(what_, done_, total_, elapsed).c_str());
  std::fflush(out_);
  drawn_ = true;
}

void ProgressMeter::Finish() {
  if (!enabled_) return;
  Draw();
  std::fputc('\n', out_);
  std::fflush(out_);
}

}  // namespace cohfs
