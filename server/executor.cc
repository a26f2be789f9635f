#include "server/executor.h"

#include <chrono>

#include "common/log.h"

namespace cohfs {

Executor::Executor(Dispatcher& dispatcher, FileSystem& fs, uint32_t sync_interval_ms,
                   uint32_t lease_ms, uint32_t grace_ms)
    : dispatcher_(dispatcher), fs_(fs), sync_interval_ms_(sync_interval_ms), scheduler_(dispatcher, lease_ms, grace_ms) {}

Executor::~Executor() { CHECK_MSG(!thread_.joinable(), "StopAndSync not called"); }

Status Executor::Start(Reactor& reactor) {
  reactor_ = &reactor;
  scheduler_.set_peer_lookup([&reactor](ConnectionId conn) { return reactor.PeerOf(conn); });
  RETURN_IF_ERROR(scheduler_.Start(NowMs()));
  thread_ = std::thread([this] { Loop(); });
  return Status::Ok();
}

void Executor::StopAndSync() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void Executor::OnRequest(ConnectionId conn, std::unique_ptr<DecodedRequest> request) {
  {
    std::lock_guard<std::mutex> l(mu_);
    queue_.push_back(Work{conn, std::move(request)});
  }
  cv_.notify_one();
}

void Executor::OnClosed(ConnectionId conn, bool lease_expired) {
  {
    std::lock_guard<std::mutex> l(mu_);
    queue_.push_back(Work{conn, nullptr, lease_expired});
  }
  cv_.notify_one();
}

void Executor::Loop() {
  auto last_sync = std::chrono::steady_clock::now();
  while (true) {
    std::deque<Work> batch;
    bool stop;
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait_for(l, std::chrono::milliseconds(std::min(sync_interval_ms_, kTickMs)),
                   [this] { return stop_ || !queue_.empty(); });
      size_t n = std::min(queue_.size(), kMaxBatch);
      for (size_t i = 0; i < n; i++) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      stop = stop_ && queue_.empty();
    }
    RunBatch(batch);
    auto now = std::chrono::steady_clock::now();
    bool interval_due = now - last_sync >= std::chrono::milliseconds(sync_interval_ms_);
    if (dirty_ && (interval_due || stop)) {
      if (metrics_) metrics_->syncs.Add();
      Status st = fs_.Sync();
      if (!st.ok()) LOG(Error) << "periodic sync failed: " << st.ToString();
      dirty_ = false;
      last_sync = now;
    }
    if (stop) break;
  }
  scheduler_.EndAll();
  Status st = fs_.Sync();
  if (!st.ok()) LOG(Error) << "final sync failed: " << st.ToString();
}

// O(clients): cheap next to a batch; a scrape reads the gauges, never the maps.
void Executor::UpdateGauges() {
  metrics_->sessions.Set(static_cast<int64_t>(scheduler_.session_count()));
  metrics_->locked_inodes.Set(static_cast<int64_t>(dispatcher_.locks().resource_count()));
  metrics_->locks_held.Set(static_cast<int64_t>(dispatcher_.locks().CountHeld()));
  metrics_->parked_requests.Set(static_cast<int64_t>(scheduler_.parked()));
  metrics_->grace.Set(scheduler_.in_grace() ? 1 : 0);
  metrics_->free_bytes.Set(static_cast<int64_t>(fs_.free_bytes()));
  metrics_->granted_bytes.Set(static_cast<int64_t>(dispatcher_.space_grants().total()));
}

int64_t Executor::NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void Executor::RunBatch(std::deque<Work>& batch) {
  Scheduler::Out out;
  for (Work& w : batch) {
    if (w.request) {
      scheduler_.OnRequest(w.conn, std::move(w.request), NowMs(), out);
    } else {
      scheduler_.OnClosed(w.conn, NowMs(), w.lease_expired, out);
    }
  }
  dirty_ |= out.mutated;
  if (!out.after_sync.empty()) {
    // One sync for every durability request in the batch: the group commit.
    Status st = fs_.Sync();
    if (st.ok()) dirty_ = false;
    for (auto& [conn, id] : out.after_sync) {
      out.frames.push_back(OutgoingReply{conn, Dispatcher::SyncReply(id, st)});
    }
  }
  scheduler_.Tick(NowMs(), out);
  if (metrics_) {
    for (const OutgoingReply& r : out.frames) metrics_->recalls_sent.Add(r.is_reply ? 0 : 1);
    if (!out.after_sync.empty()) metrics_->syncs.Add();
    UpdateGauges();
  }
  if (!out.frames.empty()) reactor_->PostReplies(std::move(out.frames));
  for (ConnectionId conn : out.closes) reactor_->PostClose(conn);
}

}  // namespace cohfs
