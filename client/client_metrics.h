// The client daemon's metrics (`cohfs mount -o metrics=HOST:PORT`): its
// ClientStats, the same counters `cohfs stats` prints, read at scrape time.
#pragma once

#include "client/stats.h"
#include "common/metrics.h"

namespace cohfs {

// `stats` must outlive the registry's scrapes.
void RegisterClientMetrics(MetricsRegistry& registry, const ClientStats& stats);

}  // namespace cohfs
