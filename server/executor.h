// Executor: the commit pipeline. One thread takes every queued request, asks
// the Dispatcher whether other clients' locks are in its way (then it sends
// them recalls and parks the request until they give way), runs it through
// the Dispatcher (each change a non-synced RocksDB commit), and
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

namespace cohfs {

class Executor : public FrameSink {
 public:
  Executor(Dispatcher& dispatcher, FileSystem& fs, uint32_t sync_interval_ms);
  ~Executor() override;

  void Start(Reactor& reactor);
  // Finishes queued work, syncs, and joins the thread.
  void StopAndSync();

  // FrameSink (reactor thread):
  void OnRequest(ConnectionId conn, std::unique_ptr<DecodedRequest> request) override;
  void OnClosed(ConnectionId conn) override;

  static constexpr size_t kMaxBatch = 1024;

 private:
  struct Work {
    ConnectionId conn = 0;
    std::unique_ptr<DecodedRequest> request;  // null: the connection closed
  };
  // The batch's replies, recalls and durability requests, in send order.
  struct Out {
    std::vector<OutgoingReply> frames;
    std::vector<std::pair<ConnectionId, RequestId>> after_sync;
  };
  void Loop();
  void RunBatch(std::deque<Work>& batch);
  // Runs the request now, or parks it behind recalls of other clients' locks.
  void Admit(Work& w, Out& out);
  void Run(Work& w, Session& session, Out& out);
  // Retries parked requests (after a lock was given back), oldest first.
  void RetryParked(Out& out);
  void EndSession(ConnectionId conn);
  void SendRecalls(const std::vector<LockManager::Conflict>& recalls, Out& out);
  static int64_t NowMs();

  Dispatcher& dispatcher_;
  FileSystem& fs_;
  uint32_t sync_interval_ms_;
  Reactor* reactor_ = nullptr;
  std::thread thread_;

  std::mutex mu_;  // guards queue_ and stop_ (rank: leaf)
  std::condition_variable cv_;
  std::deque<Work> queue_;
  bool stop_ = false;

  // Executor thread only:
  std::unordered_map<ConnectionId, Session> sessions_;
  std::unordered_map<ClientId, ConnectionId> conn_of_;
  // Requests waiting for other clients to give back locks, in arrival order.
  // Each client has at most its FUSE threads' worth parked (its log commits,
  // releases and data under its own locks never wait), well under the
  // reactor's per-connection in-flight limit, so its releases are always read.
  std::deque<Work> parked_;
  uint64_t next_client_ = 1;
  bool dirty_ = false;  // changes committed since the last sync
};

}  // namespace cohfs
