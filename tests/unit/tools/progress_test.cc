#include "tools/progress.h"

#include <gtest/gtest.h>
#include <stdio.h>

#include <algorithm>
#include <map>
#include <sstream>

#include "tools/stats_watch.h"

namespace cohfs {
namespace {

TEST(Progress, RendersPercentRateAndTimeLeft) {
  EXPECT_EQ(RenderProgress("fsck", 1ull << 30, 4ull << 30, 2.0),
            "fsck:  25.0% (1.0 GiB of 4.0 GiB), 512.0 MiB/s, 6 s left");
  EXPECT_EQ(RenderProgress("fsck", 4ull << 30, 4ull << 30, 8.0),
            "fsck: 100.0% (4.0 GiB of 4.0 GiB), 512.0 MiB/s, 0 s left");
}

TEST(Progress, WithoutARateYetSaysSo) {
  EXPECT_EQ(RenderProgress("format", 0, 1ull << 20, 0.5),
            "format:   0.0% (0 B of 1.0 MiB), -, - left");
  EXPECT_EQ(RenderProgress("format", 0, 0, 0), "format: 100.0% (0 B of 0 B), -, - left");
}

TEST(Progress, HumanBytes) {
  EXPECT_EQ(HumanBytes(512), "512 B");
  EXPECT_EQ(HumanBytes(1536), "1.5 KiB");
  EXPECT_EQ(HumanBytes(3.0 * (1ull << 40)), "3.0 TiB");
}

// A meter drawn to a pipe (not a tty) writes nothing; an enabled one redraws in place.
TEST(Progress, DisabledMeterIsSilentAndEnabledOneRedrawsInPlace) {
  char* buf = nullptr;
  size_t len = 0;
  FILE* out = open_memstream(&buf, &len);
  ProgressMeter quiet("fsck", out, false);
  quiet.Update(1, 2);
  quiet.Finish();
  ProgressMeter loud("fsck", out, true);
  loud.Update(1, 2);
  loud.Update(2, 2);  // within 100 ms of the first: not drawn
  loud.Finish();
  fclose(out);
  std::string text(buf, len);
  free(buf);
  EXPECT_EQ(text.find("\rfsck:  50.0%"), 0u) << text;
  EXPECT_NE(text.find("\rfsck: 100.0%"), std::string::npos) << text;
  EXPECT_EQ(text.back(), '\n');
  EXPECT_EQ(std::count(text.begin(), text.end(), '\r'), 2);
}

TEST(StatsWatch, RatesPerSecondUnderTheHeader) {
  StatsSample a = ParseStats("fuse_total 100\nrpc_total 10\nbytes_sent 1024\nfuse.lookup 5\n");
  StatsSample b = ParseStats("fuse_total 300\nrpc_total 10\nbytes_sent 5120\ngarbage\n");
  EXPECT_EQ(a.at("fuse.lookup"), 5u);
  EXPECT_EQ(b.count("garbage"), 0u);
  std::string header = StatsWatchHeader(), line = StatsWatchLine("12:00:00", a, b, 2.0);
  std::istringstream h(header), l(line);
  std::map<std::string, std::string> row;
  for (std::string col, v; h >> col && l >> v;) row[col] = v;
  EXPECT_EQ(row.at("time"), "12:00:00");
  EXPECT_EQ(row.at("fuse/s"), "100.0");
  EXPECT_EQ(row.at("rpc/s"), "0.0");
  EXPECT_EQ(row.at("sent_KiB/s"), "2.0");
  EXPECT_EQ(row.size(), 10u);
  // A counter that went down (a daemon restarted) is no negative rate.
  EXPECT_NE(StatsWatchLine("t", b, a, 1.0).find(" 0.0"), std::string::npos);
  EXPECT_EQ(StatsWatchLine("t", b, a, 1.0).find('-'), std::string::npos);
}

}  // namespace
}  // namespace cohfs
