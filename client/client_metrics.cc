#include "client/client_metrics.h"

#include <capnp/schema.h>

#include "protocol/cohfs.capnp.h"

namespace cohfs {
namespace {

void AddCounter(MetricsRegistry& r, const char* name, const char* help,
                const std::atomic<uint64_t>& v, MetricLabels labels = {}) {
  r.AddCounterFn(name, help, std::move(labels), [&v] { return static_cast<double>(v.load()); });
}

}  // namespace

void RegisterClientMetrics(MetricsRegistry& r, const ClientStats& s) {
  for (size_t op = 0; op < kMaxFuseOpcode; op++) {
    if (const char* name = FuseOpName(op)) {
      AddCounter(r, "cohfs_client_fuse_requests_total", "FUSE requests from the kernel, by opcode.",
                 s.fuse_ops[op], {{"op", name}});
    }
  }
  auto fields = capnp::Schema::from<wire::Request>().getUnionFields();
  for (unsigned i = 0; i < fields.size() && i < kMaxRequestKinds; i++) {
    AddCounter(r, "cohfs_client_rpcs_total", "Requests sent to the server, by type.", s.rpcs[i],
               {{"type", fields[i].getProto().getName().cStr()}});
  }
  AddCounter(r, "cohfs_client_round_trips_total", "Requests someone waited for.", s.round_trips);
  AddCounter(r, "cohfs_client_sent_bytes_total", "Bytes sent to the server.", s.bytes_sent);
  AddCounter(r, "cohfs_client_received_bytes_total", "Bytes received from the server.",
             s.bytes_received);
  AddCounter(r, "cohfs_client_cache_hits_total", "Answered from the object cache.", s.cache_hits);
  AddCounter(r, "cohfs_client_negative_hits_total", "ENOENT answered from a complete directory.",
             s.negative_hits);
  AddCounter(r, "cohfs_client_local_changes_total", "Changes answered locally, shipped in commits.",
             s.local_changes);
  AddCounter(r, "cohfs_client_rpc_errors_total", "Transport failures.", s.rpc_errors);
  AddCounter(r, "cohfs_client_recalls_total", "Locks the server asked back.", s.recalls);
  AddCounter(r, "cohfs_client_lru_releases_total", "Locks given back to stay under the bound.",
             s.lru_releases);
  AddCounter(r, "cohfs_client_writes_through_total", "Writes that waited for the server.",
             s.writes_through);
  r.AddGaugeFn("cohfs_client_space_grant_bytes", "The space grant, as of the last write's reply.",
               {}, [&s] { return static_cast<double>(s.space_grant_bytes.load()); });
}

}  // namespace cohfs
