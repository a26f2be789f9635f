#include "common/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <thread>

namespace cohfs {
namespace {

std::map<std::string, double> Parsed(const MetricsRegistry& r) {
  std::map<std::string, double> m;
  EXPECT_TRUE(ParseMetricsText(r.Render(), &m)) << r.Render();
  return m;
}

TEST(Metrics, CounterAndGaugeRenderWithHelpAndType) {
  MetricsRegistry r;
  Counter& c = r.AddCounter("cohfs_requests_total", "Requests answered.", {{"type", "lookup"}});
  Gauge& g = r.AddGauge("cohfs_sessions", "Sessions open.");
  c.Add(3);
  c.Add();
  g.Set(7);
  g.Add(-2);
  EXPECT_EQ(r.Render(),
            "# HELP cohfs_requests_total Requests answered.\n"
            "# TYPE cohfs_requests_total counter\n"
            "cohfs_requests_total{type=\"lookup\"} 4\n"
            "# HELP cohfs_sessions Sessions open.\n"
            "# TYPE cohfs_sessions gauge\n"
            "cohfs_sessions 5\n");
}

TEST(Metrics, SeriesOfOneNameShareOneHeader) {
  MetricsRegistry r;
  r.AddCounter("x_total", "X.", {{"type", "a"}}).Add(1);
  r.AddCounter("x_total", "X.", {{"type", "b"}}).Add(2);
  std::string text = r.Render();
  EXPECT_EQ(text.find("# TYPE x_total"), text.rfind("# TYPE x_total"));
  auto m = Parsed(r);
  EXPECT_EQ(m.at("x_total{type=\"a\"}"), 1);
  EXPECT_EQ(m.at("x_total{type=\"b\"}"), 2);
}

TEST(Metrics, HistogramBucketsAreCumulativeWithSumAndCount) {
  MetricsRegistry r;
  Histogram& h = r.AddHistogram("lat_seconds", "Latency.", {0.1, 1, 10}, {{"type", "read"}});
  for (double v : {0.05, 0.1, 0.5, 0.7, 5.0, 50.0}) h.Observe(v);
  auto m = Parsed(r);
  // le is inclusive: 0.1 falls in the first bucket.
  EXPECT_EQ(m.at("lat_seconds_bucket{type=\"read\",le=\"0.1\"}"), 2);
  EXPECT_EQ(m.at("lat_seconds_bucket{type=\"read\",le=\"1\"}"), 4);
  EXPECT_EQ(m.at("lat_seconds_bucket{type=\"read\",le=\"10\"}"), 5);
  EXPECT_EQ(m.at("lat_seconds_bucket{type=\"read\",le=\"+Inf\"}"), 6);
  EXPECT_EQ(m.at("lat_seconds_count{type=\"read\"}"), 6);
  EXPECT_DOUBLE_EQ(m.at("lat_seconds_sum{type=\"read\"}"), 56.35);
  EXPECT_NE(r.Render().find("# TYPE lat_seconds histogram\n"), std::string::npos);
}

TEST(Metrics, BucketsStayCumulativeUnderConcurrentObservers) {
  MetricsRegistry r;
  Histogram& h = r.AddHistogram("h_seconds", "H.", LatencyBucketsSeconds());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; t++) {
    threads.emplace_back([&h, t] {
      for (int i = 0; i < 20000; i++) h.Observe(1e-6 * ((i * 7 + t) % 100000));
    });
  }
  for (auto& t : threads) t.join();
  Histogram::Snapshot s = h.Read();
  for (size_t i = 1; i < s.cumulative.size(); i++) EXPECT_LE(s.cumulative[i - 1], s.cumulative[i]);
  EXPECT_EQ(s.cumulative.back(), 80000u);
}

TEST(Metrics, LabelValuesAreEscapedAndParseBack) {
  MetricsRegistry r;
  r.AddGauge("g", "Help with \\ and\nnewline.", {{"path", "a\"b\\c\nd"}}).Set(1);
  std::string text = r.Render();
  EXPECT_NE(text.find("g{path=\"a\\\"b\\\\c\\nd\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("# HELP g Help with \\\\ and\\nnewline.\n"), std::string::npos) << text;
  auto m = Parsed(r);
  EXPECT_EQ(m.count("g{path=\"" + EscapeLabelValue("a\"b\\c\nd") + "\"}"), 1u);
  EXPECT_EQ(EscapeLabelValue("plain"), "plain");
}

TEST(Metrics, CallbacksAreReadAtRenderTime) {
  MetricsRegistry r;
  double v = 1.5;
  r.AddGaugeFn("fn_value", "F.", {}, [&] { return v; });
  EXPECT_EQ(Parsed(r).at("fn_value"), 1.5);
  v = 1e18;
  EXPECT_EQ(Parsed(r).at("fn_value"), 1e18);
}

TEST(Metrics, ValuesFormat) {
  EXPECT_EQ(FormatMetricValue(42), "42");
  EXPECT_EQ(FormatMetricValue(-3), "-3");
  EXPECT_EQ(FormatMetricValue(0.25), "0.25");
  EXPECT_EQ(FormatMetricValue(1e-5), "1e-05");
  EXPECT_EQ(FormatMetricValue(HUGE_VAL), "+Inf");
  EXPECT_EQ(FormatMetricValue(NAN), "NaN");
}

TEST(Metrics, ParserRejectsGarbage) {
  std::map<std::string, double> m;
  EXPECT_FALSE(ParseMetricsText("x{a=\"1\" 2\n", &m));
  EXPECT_FALSE(ParseMetricsText("x notanumber\n", &m));
  EXPECT_FALSE(ParseMetricsText("9x 1\n", &m));
  EXPECT_TRUE(ParseMetricsText("# comment\n\nx 1\n", &m));
}

TEST(MetricsDeathTest, CounterNamesEndInTotal) {
  MetricsRegistry r;
  EXPECT_DEATH(r.AddCounter("requests", "R."), "requests");
  EXPECT_DEATH(r.AddGauge("bad-name", "B."), "bad-name");
}

}  // namespace
}  // namespace cohfs
