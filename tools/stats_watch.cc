#include "tools/stats_watch.h"

#include <cstdio>
#include <sstream>

namespace cohfs {
namespace {

struct Column {
  const char* header;
  const char* counter;
  double scale;  // bytes columns in KiB
};

constexpr Column kColumns[] = {
    {"fuse/s", "fuse_total", 1},
    {"rpc/s", "rpc_total", 1},
    {"round_trips/s", "round_trips", 1},
    {"cache_hits/s", "cache_hits", 1},
    {"local_changes/s", "local_changes", 1},
    {"recalls/s", "recalls", 1},
    {"writes_through/s", "writes_through", 1},
    {"sent_KiB/s", "bytes_sent", 1.0 / 1024},
    {"recv_KiB/s", "bytes_received", 1.0 / 1024},
};

uint64_t Get(const StatsSample& s, const char* name) {
  auto it = s.find(name);
  return it == s.end() ? 0 : it->second;
}

}  // namespace

StatsSample ParseStats(const std::string& text) {
  StatsSample out;
  std::istringstream in(text);
  std::string name;
  uint64_t value;
  for (std::string line; std::getline(in, line);) {
    std::istringstream l(line);
    if (l >> name >> value) out[name] = value;
  }
  return out;
}

std::string StatsWatchHeader() {
  std::string out = "time    ";
  char buf[64];
  for (const Column& c : kColumns) {
    std::snprintf(buf, sizeof(buf), " %*s", static_cast<int>(std::string(c.header).size()),
                  c.header);
    out += buf;
  }
  return out + "\n";
}

std::string StatsWatchLine(const std::string& time, const StatsSample& before,
                           const StatsSample& after, double seconds) {
  std::string out = time;
  char buf[64];
  for (const Column& c : kColumns) {
    uint64_t a = Get(after, c.counter), b = Get(before, c.counter);
    double rate = a > b && seconds > 0 ? static_cast<double>(a - b) * c.scale / seconds : 0;
    std::snprintf(buf, sizeof(buf), " %*.1f", static_cast<int>(std::string(c.header).size()), rate);
    out += buf;
  }
  return out + "\n";
}

}  // namespace cohfs
