#include "io/metrics_http.h"

#include <httplib.h>
#include <sys/socket.h>

#include "io/ring.h"

namespace cohfs {

Result<std::unique_ptr<MetricsHttp>> MetricsHttp::Start(const std::string& host_port,
                                                        const MetricsRegistry& registry) {
  std::string host, port_text;
  RETURN_IF_ERROR(SplitHostPort(host_port, &host, &port_text));
  char* end = nullptr;
  long port = std::strtol(port_text.c_str(), &end, 10);
  if (port_text.empty() || *end != '\0' || port < 0 || port > 65535) {
    return Status::Error(EINVAL, "bad metrics port in " + host_port);
  }
  std::unique_ptr<MetricsHttp> m(new MetricsHttp());
  m->http_ = std::make_unique<httplib::Server>();
  m->http_->new_task_queue = [] { return new httplib::ThreadPool(1); };
  // SO_REUSEADDR only: httplib's default adds SO_REUSEPORT, which would let a
  // second process share the port silently.
  m->http_->set_socket_options([](int fd) {
    int yes = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  m->http_->Get("/metrics", [&registry](const httplib::Request&, httplib::Response& res) {
    res.set_content(registry.Render(), kContentType);
  });
  if (port == 0) {
    m->port_ = m->http_->bind_to_any_port(host);
  } else if (m->http_->bind_to_port(host, static_cast<int>(port))) {
    m->port_ = static_cast<int>(port);
  }
  if (m->port_ <= 0) return Status::Error(EADDRINUSE, "cannot listen for metrics on " + host_port);
  httplib::Server* http = m->http_.get();
  m->thread_ = std::thread([http] { http->listen_after_bind(); });
  // httplib's stop() does nothing before the loop runs: wait for it (it
  // starts at once, the socket being bound already).
  while (!http->is_running()) std::this_thread::yield();
  return m;
}

MetricsHttp::~MetricsHttp() {
  http_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace cohfs
