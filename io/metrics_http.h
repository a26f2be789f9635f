// MetricsHttp: serves a MetricsRegistry at GET /metrics (Prometheus text
// format) with cpp-httplib, on its own thread with one worker: a scrape never
// runs on an io_uring loop, and a slow scraper holds one thread, not the
// server. Owns its thread; the registry must outlive it.
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "common/metrics.h"
#include "common/status.h"

namespace httplib {
class Server;
}

namespace cohfs {

class MetricsHttp {
 public:
  // Binds HOST:PORT (port 0: a free one, see port()) and starts serving.
  static Result<std::unique_ptr<MetricsHttp>> Start(const std::string& host_port,
                                                    const MetricsRegistry& registry);
  ~MetricsHttp();  // stops and joins
  int port() const { return port_; }

  static constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

 private:
  MetricsHttp() = default;
  std::unique_ptr<httplib::Server> http_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace cohfs
