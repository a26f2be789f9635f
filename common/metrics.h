// Metrics: counters, gauges and histograms cheap enough for hot paths, and
// their rendering in the Prometheus text exposition format, version 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/).
//
// Updating a metric is one or a few relaxed atomic operations, no lock: the
// server's reactor and executor update them per request. Registering and
// rendering take the registry's mutex (startup and a scrape, never a hot path).
// A registered metric lives as long as its registry, at a stable address.
// Callback metrics read a value at scrape time on the scraping thread: only for
// values that are safe to read from any thread (an atomic, RocksDB properties).
// Owned by whoever wires the process (main): there is no global registry.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace cohfs {

using MetricLabels = std::vector<std::pair<std::string, std::string>>;

class Counter {
 public:
  void Add(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class Gauge {
 public:
  void Set(int64_t v) { value_.store(v, std::memory_order_relaxed); }
  void Add(int64_t n) { value_.fetch_add(n, std::memory_order_relaxed); }
  int64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> value_{0};
};

// Buckets are counted apart (one increment per observation) and made
// cumulative when rendered. A scrape racing an update may see count and sum
// one observation apart, which Prometheus tolerates.
class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);  // strictly increasing, finite
  void Observe(double v);
  struct Snapshot {
    std::vector<double> upper_bounds;
    std::vector<uint64_t> cumulative;  // per bound, then +Inf (== count)
    double sum = 0;
  };
  Snapshot Read() const;

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // bounds_.size() + 1 (the +Inf one)
  std::atomic<double> sum_{0};
};

// 10 µs .. 10 s, for request latencies in seconds.
std::vector<double> LatencyBucketsSeconds();

class MetricsRegistry {
 public:
  // Names match [a-zA-Z_:][a-zA-Z0-9_:]*; counters end in _total. One name has
  // one type and help; each label set of it is registered once (CHECKed).
  Counter& AddCounter(const std::string& name, const std::string& help, MetricLabels labels = {});
  Gauge& AddGauge(const std::string& name, const std::string& help, MetricLabels labels = {});
  Histogram& AddHistogram(const std::string& name, const std::string& help,
                          std::vector<double> upper_bounds, MetricLabels labels = {});
  void AddCounterFn(const std::string& name, const std::string& help, MetricLabels labels,
                    std::function<double()> read);
  void AddGaugeFn(const std::string& name, const std::string& help, MetricLabels labels,
                  std::function<double()> read);

  // The whole exposition: families in name order, each with # HELP and # TYPE.
  std::string Render() const;

 private:
  enum class Type { kCounter, kGauge, kHistogram };
  struct Series {
    MetricLabels labels;
    std::unique_ptr<Counter> counter;
    std::unique_ptr<Gauge> gauge;
    std::unique_ptr<Histogram> histogram;
    std::function<double()> read;
  };
  struct Family {
    Type type;
    std::string help;
    std::vector<Series> series;
  };
  void Add(const std::string& name, const std::string& help, Type type, Series series);
  static void RenderFamily(const std::string& name, const Family& f, std::string* out);

  mutable std::mutex mu_;  // guards families_ (rank: leaf); never taken by an update
  std::map<std::string, Family> families_;
};

// Text format helpers, exposed for tests.
std::string EscapeLabelValue(const std::string& v);  // backslash, double quote, newline
std::string FormatMetricValue(double v);             // integers exactly; +Inf, -Inf, NaN

// Parses an exposition back into "name{a="x",b="y"}" (labels as rendered, in
// order; "name" without labels) -> value. Comments are skipped. For tests and
// tools that read a scrape; false on a line it cannot parse.
bool ParseMetricsText(const std::string& text, std::map<std::string, double>* out);

}  // namespace cohfs
