// Executor: the commit pipeline. One thread takes every queued request and
// hands it to the Scheduler (which runs it through the Dispatcher, or parks it
// behind recalls of other clients' locks) (each change a non-synced RocksDB commit), and
// when any request of the batch needs durability (fsync, syncfs) makes the
// whole batch durable with one FileSystem::Sync (device flush + one WAL fsync:
// group commit) before those replies go out. Unsynced changes are also synced
// every sync_interval_ms, and at shutdown.
#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "server/dispatch.h"
#include "server/reactor.h"
#include "server/scheduler.h"

namespace cohfs {

class Executor : public FrameSink {
 public:
  Executor(Dispatcher& dispatcher, FileSystem& fs, uint32_t sync_interval_ms, uint32_t lease_ms,
           uint32_t grace_ms);
  ~Executor() override;

  // Sessions, locks, recalls, syncs, space (null: not counted). Before Start().
  void set_metrics(ServerMetrics* metrics) { metrics_ = metrics; }
  // Loads the stored sessions (Scheduler::Start), then starts the thread.
  Status Start(Reactor& reactor);
  // Finishes queued work, syncs, and joins the thread.
  void StopAndSync();

  // FrameSink (reactor thread):
  void OnRequest(ConnectionId conn, std::unique_ptr<DecodedRequest> request) override;
  void OnClosed(ConnectionId conn, bool lease_expired) override;

  static constexpr size_t kMaxBatch = 1024;
  static constexpr uint32_t kTickMs = 50;  // sessions and the grace period end on time

 private:
  struct Work {
    ConnectionId conn = 0;
    std::unique_ptr<DecodedRequest> request;  // null: the connection closed
    bool lease_expired = false;               // ... because its client was silent
  };
  void Loop();
  void RunBatch(std::deque<Work>& batch);
  void UpdateGauges();
  static int64_t NowMs();

  Dispatcher& dispatcher_;
  FileSystem& fs_;
  ServerMetrics* metrics_ = nullptr;
  uint32_t sync_interval_ms_;
  Reactor* reactor_ = nullptr;
  std::thread thread_;

  std::mutex mu_;  // guards queue_ and stop_ (rank: leaf)
  std::condition_variable cv_;
  std::deque<Work> queue_;
  bool stop_ = false;

  // Executor thread only:
  Scheduler scheduler_;
  bool dirty_ = false;  // changes committed since the last sync
};

}  // namespace cohfs
