#include "server/server_metrics.h"

#include <capnp/schema.h>

#include "protocol/cohfs.capnp.h"

namespace cohfs {

ServerMetrics::ServerMetrics(MetricsRegistry& r)
    : received_bytes(r.AddCounter("cohfs_server_received_bytes_total",
                                  "Bytes received from clients (on the wire).")),
      sent_bytes(
          r.AddCounter("cohfs_server_sent_bytes_total", "Bytes sent to clients (on the wire).")),
      connections(r.AddGauge("cohfs_server_connections", "Client connections open.")),
      recalls_sent(r.AddCounter("cohfs_server_recalls_sent_total",
                                "Recalls sent to clients holding locks others need.")),
      syncs(r.AddCounter("cohfs_server_syncs_total",
                         "Group commits: device flush plus one WAL fsync.")),
      sessions(r.AddGauge("cohfs_server_sessions", "Client sessions (attached or detached).")),
      locked_inodes(
          r.AddGauge("cohfs_server_locked_inodes", "Inodes some client holds a lock on.")),
      locks_held(r.AddGauge("cohfs_server_locks_held", "Locks held, summed over clients.")),
      parked_requests(
          r.AddGauge("cohfs_server_parked_requests", "Requests waiting for other clients' locks.")),
      grace(r.AddGauge("cohfs_server_grace", "1 during the grace period after a restart.")),
      free_bytes(r.AddGauge("cohfs_server_free_bytes", "Free space on the device.")),
      granted_bytes(r.AddGauge("cohfs_server_granted_bytes",
                               "Free space reserved for clients' write-behind (space grants).")) {
  auto fields = capnp::Schema::from<wire::Request>().getUnionFields();
  kinds_ = std::min<size_t>(fields.size(), kMaxRequestKinds);
  for (size_t i = 0; i < kinds_; i++) {
    MetricLabels type = {{"type", fields[static_cast<unsigned>(i)].getProto().getName().cStr()}};
    requests_[i] = &r.AddCounter("cohfs_server_requests_total", "Requests handled, by type.", type);
    errors_[i] = &r.AddCounter("cohfs_server_request_errors_total",
                               "Requests answered with an error, by type.", type);
    latency_[i] = &r.AddHistogram("cohfs_server_request_duration_seconds",
                                  "Time to handle a request on the executor, by type.",
                                  LatencyBucketsSeconds(), type);
  }
}

void RegisterVolumeMetrics(MetricsRegistry& r, Volume& volume) {
  const DeviceIoStats& io = volume.device().io_stats();
  auto counter = [&](const char* name, const char* help, const std::atomic<uint64_t>& v) {
    r.AddCounterFn(name, help, {}, [&v] { return static_cast<double>(v.load()); });
  };
  counter("cohfs_device_reads_total", "Device reads (O_DIRECT, io_uring).", io.reads);
  counter("cohfs_device_writes_total", "Device writes (O_DIRECT, io_uring).", io.writes);
  counter("cohfs_device_read_bytes_total", "Bytes read from the device.", io.read_bytes);
  counter("cohfs_device_written_bytes_total", "Bytes written to the device.", io.written_bytes);
  counter("cohfs_device_flushes_total", "Device flushes (fdatasync).", io.flushes);
  ItemStore* items = &volume.items();
  auto prop = [&](const char* name, const char* help, const char* property) {
    r.AddGaugeFn(name, help, {}, [items, property] {
      auto v = items->IntProperty(property);
      return v ? static_cast<double>(*v) : 0.0;
    });
  };
  prop("cohfs_rocksdb_estimate_num_keys", "rocksdb.estimate-num-keys", "rocksdb.estimate-num-keys");
  prop("cohfs_rocksdb_total_sst_files_bytes", "rocksdb.total-sst-files-size",
       "rocksdb.total-sst-files-size");
  prop("cohfs_rocksdb_live_sst_files_bytes", "rocksdb.live-sst-files-size",
       "rocksdb.live-sst-files-size");
  prop("cohfs_rocksdb_memtable_bytes", "rocksdb.cur-size-all-mem-tables",
       "rocksdb.cur-size-all-mem-tables");
  prop("cohfs_rocksdb_block_cache_usage_bytes", "rocksdb.block-cache-usage",
       "rocksdb.block-cache-usage");
  prop("cohfs_rocksdb_estimate_pending_compaction_bytes",
       "rocksdb.estimate-pending-compaction-bytes", "rocksdb.estimate-pending-compaction-bytes");
}

}  // namespace cohfs
