#include "server/executor.h"

#include <chrono>

#include "common/log.h"

namespace cohfs {

Executor::Executor(Dispatcher& dispatcher, FileSystem& fs, uint32_t sync_interval_ms)
    : dispatcher_(dispatcher), fs_(fs), sync_interval_ms_(sync_interval_ms) {}

Executor::~Executor() { CHECK_MSG(!thread_.joinable(), "StopAndSync not called"); }

void Executor::Start(Reactor& reactor) {
  reactor_ = &reactor;
  thread_ = std::thread([this] { Loop(); });
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

void Executor::OnClosed(ConnectionId conn) {
  {
    std::lock_guard<std::mutex> l(mu_);
    queue_.push_back(Work{conn, nullptr});
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
      cv_.wait_for(l, std::chrono::milliseconds(sync_interval_ms_),
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
      Status st = fs_.Sync();
      if (!st.ok()) LOG(Error) << "periodic sync failed: " << st.ToString();
      dirty_ = false;
      last_sync = now;
    }
    if (stop) break;
  }
  for (auto& [conn, session] : sessions_) dispatcher_.EndSession(session);
  sessions_.clear();
  conn_of_.clear();
  parked_.clear();
  Status st = fs_.Sync();
  if (!st.ok()) LOG(Error) << "final sync failed: " << st.ToString();
}

int64_t Executor::NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void Executor::RunBatch(std::deque<Work>& batch) {
  Out out;
  for (Work& w : batch) {
    if (!w.request) {
      EndSession(w.conn);
      RetryParked(out);
      continue;
    }
    Admit(w, out);
  }
  if (!out.after_sync.empty()) {
    // One sync for every durability request in the batch: the group commit.
    Status st = fs_.Sync();
    if (st.ok()) dirty_ = false;
    for (auto& [conn, id] : out.after_sync) {
      out.frames.push_back(OutgoingReply{conn, Dispatcher::SyncReply(id, st)});
    }
  }
  SendRecalls(dispatcher_.TrimLocks(NowMs()), out);
  if (!out.frames.empty()) reactor_->PostReplies(std::move(out.frames));
}

void Executor::SendRecalls(const std::vector<LockManager::Conflict>& recalls, Out& out) {
  for (const auto& r : recalls) {
    auto conn = conn_of_.find(r.holder);
    if (conn == conn_of_.end()) continue;
    out.frames.push_back(OutgoingReply{conn->second, EncodeRecall(r.ino, r.keep), false});
  }
}

void Executor::Admit(Work& w, Out& out) {
  auto [it, inserted] = sessions_.try_emplace(w.conn);
  if (inserted) {
    it->second.client = ClientId(next_client_++);
    conn_of_[it->second.client] = w.conn;
  }
  // With one client nobody else holds locks: no need to work out what it needs.
  std::vector<LockManager::Conflict> recalls;
  bool runnable =
      dispatcher_.Admit(it->second, *w.request, NowMs(), sessions_.size() > 1, &recalls);
  SendRecalls(recalls, out);
  if (!runnable) {
    parked_.push_back(std::move(w));
    return;
  }
  Run(w, it->second, out);
}

void Executor::Run(Work& w, Session& session, Out& out) {
  Dispatcher::Outcome o = dispatcher_.Handle(session, *w.request, NowMs());
  dirty_ |= o.mutated;
  if (o.needs_sync) {
    out.after_sync.emplace_back(w.conn, w.request->frame().header.request_id);
  } else {
    out.frames.push_back(OutgoingReply{w.conn, std::move(o.reply)});
  }
  if (o.released) RetryParked(out);
}

void Executor::RetryParked(Out& out) {
  std::deque<Work> waiting;
  waiting.swap(parked_);
  // A retried request may release nothing, so one pass is enough; requests
  // it lets through that release locks retry the rest themselves.
  while (!waiting.empty()) {
    Work w = std::move(waiting.front());
    waiting.pop_front();
    if (sessions_.count(w.conn) == 0) continue;  // its connection closed
    Admit(w, out);
  }
}

void Executor::EndSession(ConnectionId conn) {
  auto it = sessions_.find(conn);
  if (it == sessions_.end()) return;
  dispatcher_.EndSession(it->second);
  conn_of_.erase(it->second.client);
  sessions_.erase(it);
}

}  // namespace cohfs
