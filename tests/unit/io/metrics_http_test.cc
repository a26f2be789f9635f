#include "io/metrics_http.h"

#include <gtest/gtest.h>
#include <httplib.h>

namespace cohfs {
namespace {

TEST(MetricsHttp, ServesTheRegistryAtMetrics) {
  MetricsRegistry r;
  Counter& c = r.AddCounter("scrapes_seen_total", "S.");
  auto http = MetricsHttp::Start("127.0.0.1:0", r);
  ASSERT_TRUE(http.ok()) << http.status().ToString();
  ASSERT_GT((*http)->port(), 0);
  httplib::Client client("127.0.0.1", (*http)->port());
  c.Add(5);
  auto res = client.Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), MetricsHttp::kContentType);
  std::map<std::string, double> m;
  ASSERT_TRUE(ParseMetricsText(res->body, &m)) << res->body;
  EXPECT_EQ(m.at("scrapes_seen_total"), 5);
  c.Add(1);
  res = client.Get("/metrics");
  ASSERT_TRUE(res);
  m.clear();
  ASSERT_TRUE(ParseMetricsText(res->body, &m));
  EXPECT_EQ(m.at("scrapes_seen_total"), 6);
  auto missing = client.Get("/nothing");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
}

TEST(MetricsHttp, RefusesAPortInUseAndBadAddresses) {
  MetricsRegistry r;
  auto first = MetricsHttp::Start("127.0.0.1:0", r);
  ASSERT_TRUE(first.ok());
  auto second = MetricsHttp::Start("127.0.0.1:" + std::to_string((*first)->port()), r);
  EXPECT_FALSE(second.ok());
  EXPECT_FALSE(MetricsHttp::Start("127.0.0.1:notaport", r).ok());
  EXPECT_FALSE(MetricsHttp::Start("noport", r).ok());
}

}  // namespace
}  // namespace cohfs
