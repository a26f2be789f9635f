#include "server/scheduler.h"

#include "common/log.h"

namespace cohfs {

void Scheduler::OnRequest(ConnectionId conn, std::unique_ptr<DecodedRequest> request,
                          int64_t now_ms, Out& out) {
  Work w{conn, std::move(request)};
  Admit(w, now_ms, out);
}

void Scheduler::OnClosed(ConnectionId conn, int64_t now_ms, Out& out) {
  auto it = sessions_.find(conn);
  if (it == sessions_.end()) return;
  // A disconnect and an expired lease end a session alike: what it had not
  // shipped is lost, what others wait for goes on.
  LOG(Info) << "client " << it->second.client.value << " (connection " << conn
            << ") gone: its locks are broken, its file locks dropped, " << parked_.size()
            << " parked requests to retry";
  dispatcher_.EndSession(it->second);
  conn_of_.erase(it->second.client);
  sessions_.erase(it);
  RetryParked(now_ms, out);
}

void Scheduler::Trim(int64_t now_ms, Out& out) { SendRecalls(dispatcher_.TrimLocks(now_ms), out); }

void Scheduler::EndAll() {
  for (auto& [conn, session] : sessions_) dispatcher_.EndSession(session);
  sessions_.clear();
  conn_of_.clear();
  parked_.clear();
}

ClientId Scheduler::ClientOf(ConnectionId conn) const {
  auto it = sessions_.find(conn);
  return it == sessions_.end() ? ClientId() : it->second.client;
}

void Scheduler::Admit(Work& w, int64_t now_ms, Out& out) {
  auto [it, inserted] = sessions_.try_emplace(w.conn);
  if (inserted) {
    it->second.client = ClientId(next_client_++);
    conn_of_[it->second.client] = w.conn;
  }
  // With one client nobody else holds locks: no need to work out what it needs.
  std::vector<LockManager::Conflict> recalls;
  bool runnable = dispatcher_.Admit(it->second, *w.request, now_ms, sessions_.size() > 1, &recalls);
  SendRecalls(recalls, out);
  if (!runnable) {
    parked_.push_back(std::move(w));
    return;
  }
  Run(w, it->second, now_ms, out);
}

void Scheduler::Run(Work& w, Session& session, int64_t now_ms, Out& out) {
  Dispatcher::Outcome o = dispatcher_.Handle(session, *w.request, now_ms);
  out.mutated |= o.mutated;
  if (o.needs_sync) {
    out.after_sync.emplace_back(w.conn, w.request->frame().header.request_id);
  } else {
    out.frames.push_back(OutgoingReply{w.conn, std::move(o.reply)});
  }
  if (o.released) RetryParked(now_ms, out);
}

void Scheduler::RetryParked(int64_t now_ms, Out& out) {
  std::deque<Work> waiting;
  waiting.swap(parked_);
  // A retried request may release nothing, so one pass is enough; requests
  // it lets through that release locks retry the rest themselves.
  while (!waiting.empty()) {
    Work w = std::move(waiting.front());
    waiting.pop_front();
    if (sessions_.count(w.conn) == 0) continue;  // its connection closed
    Admit(w, now_ms, out);
  }
}

void Scheduler::SendRecalls(const std::vector<LockManager::Conflict>& recalls, Out& out) {
  for (const auto& r : recalls) {
    auto conn = conn_of_.find(r.holder);
    if (conn == conn_of_.end()) continue;
    out.frames.push_back(OutgoingReply{conn->second, EncodeRecall(r.ino, r.keep), false});
  }
}

}  // namespace cohfs
