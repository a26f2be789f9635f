// `cohfs stats MOUNTPOINT --watch`: per-second rates of the client's counters,
// one line per interval under a header (as `juicefs stats`).
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace cohfs {

using StatsSample = std::map<std::string, uint64_t>;

// "name value" lines (the cohfs.stats xattr) into a sample; unparsable lines are skipped.
StatsSample ParseStats(const std::string& text);
// The header line, and one line of rates between two samples `seconds` apart
// (the same columns, counters that went down count as 0).
std::string StatsWatchHeader();
std::string StatsWatchLine(const std::string& time, const StatsSample& before,
                           const StatsSample& after, double seconds);

}  // namespace cohfs
