#include "common/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "common/check.h"

namespace cohfs {
namespace {

bool ValidName(const std::string& n) {
  if (n.empty()) return false;
  for (size_t i = 0; i < n.size(); i++) {
    char c = n[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

std::string EscapeHelp(const std::string& h) {
  std::string out;
  for (char c : h) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// {a="x",b="y"} plus `extra` (a histogram's le) last; "" without labels.
std::string RenderLabels(const MetricLabels& labels, const std::string& extra = "") {
  if (labels.empty() && extra.empty()) return "";
  std::string out = "{";
  for (auto& [k, v] : labels) {
    if (out.size() > 1) out += ',';
    out += k + "=\"" + EscapeLabelValue(v) + "\"";
  }
  if (!extra.empty()) out += (out.size() > 1 ? "," : "") + extra;
  return out + "}";
}

const char* TypeName(int t) {
  static const char* const kNames[] = {"counter", "gauge", "histogram"};
  return kNames[t];
}

}  // namespace

std::string EscapeLabelValue(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string FormatMetricValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    std::snprintf(buf, sizeof(buf), "%.0f", v);
    return buf;
  }
  // The shortest text that reads back as the same double (0.1, not 0.1000...01).
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, end);
}

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)),
      buckets_(std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1)) {
  for (size_t i = 0; i < bounds_.size(); i++) {
    CHECK_MSG(std::isfinite(bounds_[i]) && (i == 0 || bounds_[i - 1] < bounds_[i]),
              "histogram bounds must be finite and strictly increasing");
  }
}

void Histogram::Observe(double v) {
  // Upper bounds are inclusive (le): the first bound >= v.
  size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::Read() const {
  Snapshot s;
  s.upper_bounds = bounds_;
  uint64_t running = 0;
  for (size_t i = 0; i <= bounds_.size(); i++) {
    running += buckets_[i].load(std::memory_order_relaxed);
    s.cumulative.push_back(running);
  }
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

std::vector<double> LatencyBucketsSeconds() {
  return {1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3,
          1e-2, 2.5e-2, 5e-2, 0.1,  0.25,   0.5,  1,    2.5,    10};
}

void MetricsRegistry::Add(const std::string& name, const std::string& help, Type type,
                          Series series) {
  CHECK_MSG(ValidName(name), name.c_str());
  CHECK_MSG(type != Type::kCounter || name.ends_with("_total"), name.c_str());
  for (auto& [k, v] : series.labels) CHECK_MSG(ValidName(k) && k != "le", k.c_str());
  std::lock_guard<std::mutex> l(mu_);
  auto it = families_.find(name);
  if (it == families_.end()) it = families_.emplace(name, Family{type, help, {}}).first;
  Family& f = it->second;
  CHECK_MSG(f.type == type, ("one type per metric name: " + name).c_str());
  for (const Series& s : f.series) {
    CHECK_MSG(s.labels != series.labels,
              ("registered twice: " + name + RenderLabels(series.labels)).c_str());
  }
  f.series.push_back(std::move(series));
}

Counter& MetricsRegistry::AddCounter(const std::string& name, const std::string& help,
                                     MetricLabels labels) {
  Series s;
  s.labels = std::move(labels);
  s.counter = std::make_unique<Counter>();
  Counter& c = *s.counter;  // the object stays put when the series moves
  Add(name, help, Type::kCounter, std::move(s));
  return c;
}

Gauge& MetricsRegistry::AddGauge(const std::string& name, const std::string& help,
                                 MetricLabels labels) {
  Series s;
  s.labels = std::move(labels);
  s.gauge = std::make_unique<Gauge>();
  Gauge& g = *s.gauge;
  Add(name, help, Type::kGauge, std::move(s));
  return g;
}

Histogram& MetricsRegistry::AddHistogram(const std::string& name, const std::string& help,
                                         std::vector<double> upper_bounds, MetricLabels labels) {
  Series s;
  s.labels = std::move(labels);
  s.histogram = std::make_unique<Histogram>(std::move(upper_bounds));
  Histogram& h = *s.histogram;
  Add(name, help, Type::kHistogram, std::move(s));
  return h;
}

void MetricsRegistry::AddCounterFn(const std::string& name, const std::string& help,
                                   MetricLabels labels, std::function<double()> read) {
  Series s;
  s.labels = std::move(labels);
  s.read = std::move(read);
  Add(name, help, Type::kCounter, std::move(s));
}

void MetricsRegistry::AddGaugeFn(const std::string& name, const std::string& help,
                                 MetricLabels labels, std::function<double()> read) {
  Series s;
  s.labels = std::move(labels);
  s.read = std::move(read);
  Add(name, help, Type::kGauge, std::move(s));
}

void MetricsRegistry::RenderFamily(const std::string& name, const Family& f, std::string* out) {
  *out += "# HELP " + name + " " + EscapeHelp(f.help) + "\n";
  *out += "# TYPE " + name + " " + TypeName(static_cast<int>(f.type)) + "\n";
  for (const Series& s : f.series) {
    if (s.histogram) {
      Histogram::Snapshot snap = s.histogram->Read();
      for (size_t i = 0; i <= snap.upper_bounds.size(); i++) {
        std::string le = i < snap.upper_bounds.size() ? FormatMetricValue(snap.upper_bounds[i])
                                                      : std::string("+Inf");
        *out += name + "_bucket" + RenderLabels(s.labels, "le=\"" + le + "\"") + " " +
                std::to_string(snap.cumulative[i]) + "\n";
      }
      *out += name + "_sum" + RenderLabels(s.labels) + " " + FormatMetricValue(snap.sum) + "\n";
      *out += name + "_count" + RenderLabels(s.labels) + " " +
              std::to_string(snap.cumulative.back()) + "\n";
      continue;
    }
    double v = s.read      ? s.read()
               : s.counter ? static_cast<double>(s.counter->value())
                           : static_cast<double>(s.gauge->value());
    *out += name + RenderLabels(s.labels) + " " + FormatMetricValue(v) + "\n";
  }
}

std::string MetricsRegistry::Render() const {
  std::lock_guard<std::mutex> l(mu_);
  std::string out;
  for (auto& [name, f] : families_) RenderFamily(name, f, &out);
  return out;
}

namespace {

// `{k="v",...}` at text[*pos] into labels; false when malformed.
bool ParseLabels(const std::string& text, size_t* pos, MetricLabels* labels) {
  size_t i = *pos + 1;  // past '{'
  while (i < text.size() && text[i] != '}') {
    size_t eq = text.find('=', i);
    if (eq == std::string::npos || eq + 1 >= text.size() || text[eq + 1] != '"') return false;
    std::string key = text.substr(i, eq - i), value;
    for (i = eq + 2; i < text.size() && text[i] != '"'; i++) {
      if (text[i] == '\\' && i + 1 < text.size()) {
        char e = text[++i];
        value += e == 'n' ? '\n' : e;
      } else {
        value += text[i];
      }
    }
    if (i >= text.size()) return false;
    labels->emplace_back(key, value);
    i++;  // past the closing quote
    if (i < text.size() && text[i] == ',') i++;
  }
  if (i >= text.size()) return false;
  *pos = i + 1;
  return true;
}

}  // namespace

bool ParseMetricsText(const std::string& text, std::map<std::string, double>* out) {
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    start = end + 1;
    if (line.empty() || line[0] == '#') continue;
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') i++;
    std::string name = line.substr(0, i);
    MetricLabels labels;
    if (i < line.size() && line[i] == '{' && !ParseLabels(line, &i, &labels)) return false;
    if (!ValidName(name) || i >= line.size() || line[i] != ' ') return false;
    std::string value = line.substr(i + 1);
    char* stop = nullptr;
    double v = value == "+Inf"   ? HUGE_VAL
               : value == "-Inf" ? -HUGE_VAL
                                 : strtod(value.c_str(), &stop);
    if (stop && (stop == value.c_str() || *stop != '\0')) return false;
    (*out)[name + RenderLabels(labels)] = v;
  }
  return true;
}

}  // namespace cohfs
