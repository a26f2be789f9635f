// The server's metrics (`cohfs serve --metrics HOST:PORT`, docs in README):
// what the reactor, the executor and the dispatcher count, registered once at
// startup in the process's MetricsRegistry. Components hold a pointer that is
// null where no registry is wired (unit tests, the simulation, fuzzing).
// Updates are relaxed atomics; the gauges of executor state are set by the
// executor after each batch, so a scrape never touches executor-owned maps.
#pragma once

#include <array>
#include <cstdint>

#include "common/metrics.h"
#include "storage/volume.h"

namespace cohfs {

class ServerMetrics {
 public:
  explicit ServerMetrics(MetricsRegistry& registry);
  static constexpr size_t kMaxRequestKinds = 64;

  // Thread: the executor. `which`: wire::Request::Which.
  void ObserveRequest(unsigned which, bool error, double seconds) {
    if (which >= kinds_) which = kinds_ - 1;  // never past the registered ones
    requests_[which]->Add();
    if (error) errors_[which]->Add();
    latency_[which]->Observe(seconds);
  }

  Counter& received_bytes;
  Counter& sent_bytes;
  Gauge& connections;
  Counter& recalls_sent;
  Counter& syncs;
  Gauge& sessions;
  Gauge& locked_inodes;
  Gauge& locks_held;
  Gauge& parked_requests;
  Gauge& grace;
  Gauge& free_bytes;
  Gauge& granted_bytes;

 private:
  size_t kinds_ = 0;
  std::array<Counter*, kMaxRequestKinds> requests_{};
  std::array<Counter*, kMaxRequestKinds> errors_{};
  std::array<Histogram*, kMaxRequestKinds> latency_{};
};

// Device I/O and RocksDB figures, read at scrape time (both thread-safe).
// `volume` must outlive the registry's scrapes.
void RegisterVolumeMetrics(MetricsRegistry& registry, Volume& volume);

}  // namespace cohfs
