#include "server/scheduler.h"

#include "common/log.h"
#include "server/lock_needs.h"

namespace cohfs {

Status Scheduler::Start(int64_t now_ms) {
  ASSIGN_OR_RETURN(auto stored, dispatcher_.session_store().LoadAll());
  for (SessionStore::Stored& st : stored) {
    Session s;
    s.client = ClientId(st.id);
    s.key = st.item.key;
    s.name = st.item.client_name;
    for (auto& [first, count] : st.item.inode_ranges) s.inode_ranges.push_back({first, count});
    s.reclaiming = true;
    s.replays = std::move(st.replays);
    sessions_.emplace(s.client, std::move(s));
  }
  if (sessions_.empty()) {
    dispatcher_.ReclaimOrphans();
    return Status::Ok();
  }
  grace_ = true;
  grace_ends_ms_ = now_ms + grace_ms_;
  dispatcher_.set_grace(true);
  LOG(Info) << "grace period of " << grace_ms_ << " ms: waiting for " << sessions_.size()
            << " clients to reconnect and reclaim their locks";
  return Status::Ok();
}

void Scheduler::OnRequest(ConnectionId conn, std::unique_ptr<DecodedRequest> request,
                          int64_t now_ms, Out& out) {
  Work w{conn, std::move(request)};
  auto c = client_of_.find(conn);
  if (c == client_of_.end()) return OnHello(w, now_ms, out);
  Session& s = sessions_.at(c->second);
  s.last_request_ms = now_ms;
  // Decoding a request validated it whole, so reading its root is safe below.
  Status st = GuardDecode([&] { return s.goodbye |= w.request->root().isGoodbye(), Status::Ok(); });
  if (!st.ok()) {
    out.frames.push_back(
        OutgoingReply{conn, Dispatcher::ErrorReply(w.request->frame().header.request_id, st)});
    return;
  }
  if (auto replayed = dispatcher_.Replay(s, *w.request)) {
    out.frames.push_back(OutgoingReply{conn, std::move(*replayed)});
    return;
  }
  Admit(w, s, now_ms, out);
}

// A resumable session: (id, key) match one the server has.
Session* Scheduler::Resumable(wire::Request::Hello::Reader h) {
  if (h.getResumeSession() == 0) return nullptr;
  auto it = sessions_.find(ClientId(h.getResumeSession()));
  if (it == sessions_.end() || it->second.key != h.getResumeKey()) {
    LOG(Info) << "a client asked to resume session " << h.getResumeSession()
              << ", which has ended: it gets a new one";
    return nullptr;
  }
  return &it->second;
}

// A connection's first request: a hello, which opens or resumes a session.
void Scheduler::OnHello(Work& w, int64_t now_ms, Out& out) {
  RequestId id = w.request->frame().header.request_id;
  Session* s = nullptr;
  bool resumed = false;
  bool status = false;
  Status st = GuardDecode([&]() -> Status {
    auto req = w.request->root();
    if (req.isServerStatus()) return status = true, Status::Ok();
    if (!req.isHello()) return Status::Error(EPROTO, "Hello must come first");
    RETURN_IF_ERROR(Dispatcher::CheckVersion(req.getHello()));
    s = Resumable(req.getHello());
    resumed = s != nullptr;
    if (s) return Status::Ok();
    ASSIGN_OR_RETURN(Session fresh, dispatcher_.NewSession(req.getHello().getClientName().cStr()));
    ClientId client = fresh.client;
    s = &sessions_.emplace(client, std::move(fresh)).first->second;
    return Status::Ok();
  });
  if (!st.ok()) {
    out.frames.push_back(OutgoingReply{w.conn, Dispatcher::ErrorReply(id, st)});
    return;
  }
  if (status) {  // sessionless: the tool's next request (if any) must be a hello again
    out.frames.push_back(
        OutgoingReply{w.conn, StatusReply(id, w.request->root().getServerStatus(), now_ms)});
    return;
  }
  s->last_request_ms = now_ms;
  if (resumed && s->conn != 0) {  // the old connection is dead, or half so
    client_of_.erase(s->conn);
    DropParked(s->conn);
    out.closes.push_back(s->conn);
  }
  s->conn = w.conn;
  s->ends_ms = 0;
  client_of_[w.conn] = s->client;
  out.frames.push_back(OutgoingReply{w.conn, dispatcher_.Welcome(*s, *w.request, resumed)});
  if (resumed) {
    LOG(Info) << "client " << s->client.value << " resumed its session on connection " << w.conn
              << (s->reclaiming ? " (to reclaim its locks)" : "");
    SendRecalls(dispatcher_.locks().PendingRecalls(s->client), out);
    dispatcher_.locks().RestartRecallClocks(s->client, now_ms);
  }
}

void Scheduler::OnClosed(ConnectionId conn, int64_t now_ms, bool lease_expired, Out& out) {
  auto c = client_of_.find(conn);
  if (c == client_of_.end()) return;
  ClientId client = c->second;
  Session& s = sessions_.at(client);
  client_of_.erase(c);
  DropParked(conn);  // the client sends them again when it reconnects
  s.conn = 0;
  if (s.goodbye) return End(client, "said goodbye", now_ms, out);
  if (lease_expired) return End(client, "silent past its lease", now_ms, out);
  s.ends_ms = now_ms + lease_ms_;
  LOG(Info) << "client " << client.value << " (connection " << conn
            << ") disconnected: its session waits " << lease_ms_ << " ms for it to reconnect";
}

// A session's end: what it had not shipped is lost, what others wait for goes on.
void Scheduler::End(ClientId client, const char* why, int64_t now_ms, Out& out) {
  auto it = sessions_.find(client);
  if (it == sessions_.end()) return;
  LOG(Info) << "client " << client.value << " gone (" << why
            << "): its locks are broken, its file locks dropped, " << parked_.size()
            << " parked requests to retry";
  if (it->second.conn != 0) {
    client_of_.erase(it->second.conn);
    DropParked(it->second.conn);
    out.closes.push_back(it->second.conn);
  }
  dispatcher_.EndSession(it->second);
  sessions_.erase(it);
  RetryParked(now_ms, out);
}

void Scheduler::Tick(int64_t now_ms, Out& out) {
  std::vector<ClientId> due;
  for (auto& [client, s] : sessions_) {
    if (s.conn == 0 && !s.reclaiming && s.ends_ms <= now_ms) due.push_back(client);
  }
  for (ClientId client : due) End(client, "did not reconnect within its lease", now_ms, out);
  // Renewing is not enough: a client that holds a recalled lock for two
  // leases stops everybody who waits for it, so it is declared dead.
  for (ClientId client : dispatcher_.locks().Unanswered(now_ms - 2 * int64_t{lease_ms_})) {
    auto it = sessions_.find(client);
    if (it == sessions_.end() || it->second.conn == 0) continue;  // its recalls go again
    End(client, "did not answer a recall within two leases", now_ms, out);
  }
  if (grace_ && now_ms >= grace_ends_ms_) EndGrace(now_ms, out);
  SendRecalls(dispatcher_.TrimLocks(now_ms), out);
}

void Scheduler::EndGrace(int64_t now_ms, Out& out) {
  grace_ = false;
  dispatcher_.set_grace(false);
  std::vector<ClientId> missing;
  for (auto& [client, s] : sessions_) {
    if (s.reclaiming) missing.push_back(client);
  }
  LOG(Info) << "grace period over; " << missing.size() << " clients did not come back";
  for (ClientId client : missing) End(client, "not back after the restart", now_ms, out);
  for (auto& [client, s] : sessions_) dispatcher_.GrantGivingBack(s);
  dispatcher_.ReclaimOrphans();  // those nobody reclaimed a reference to
  RetryParked(now_ms, out);
}

void Scheduler::EndAll() {
  for (auto& [client, session] : sessions_) dispatcher_.EndSession(session, /*forget=*/false);
  sessions_.clear();
  client_of_.clear();
  parked_.clear();
}

ClientId Scheduler::ClientOf(ConnectionId conn) const {
  auto it = client_of_.find(conn);
  return it == client_of_.end() ? ClientId() : it->second;
}

// During the grace period a request runs only if the locks it needs are its
// client's already (reclaimed): the others may belong to a client not back yet.
bool Scheduler::RunnableInGrace(const Session& session, DecodedRequest& request) {
  bool runnable = false;
  Status st = GuardDecode([&] {
    auto req = request.root();
    if (req.isReclaim()) return runnable = true, Status::Ok();
    if (session.reclaiming) return Status::Ok();  // reclaim first
    // Locks it was giving back come at the end: its requests wait, in order.
    if (!session.giving_back.empty()) return Status::Ok();
    // File locks not reclaimed yet may be in the way of any file lock call.
    if (req.isSetLock() || req.isGetLock()) return Status::Ok();
    runnable = true;
    for (const LockNeed& n : LockNeedsOf(dispatcher_.fs(), req)) {
      runnable &= dispatcher_.locks().HeldBy(session.client, n.ino) >= n.mode;
    }
    return Status::Ok();
  });
  return runnable || !st.ok();  // Handle answers a malformed request
}

void Scheduler::Admit(Work& w, Session& session, int64_t now_ms, Out& out) {
  bool runnable;
  if (grace_) {
    runnable = RunnableInGrace(session, *w.request);
  } else {
    // With one client nobody else holds locks: no need to work out what it needs.
    std::vector<LockManager::Conflict> recalls;
    runnable = dispatcher_.Admit(session, *w.request, now_ms, sessions_.size() > 1, &recalls);
    SendRecalls(recalls, out);
  }
  if (!runnable) {
    parked_.push_back(std::move(w));
    return;
  }
  Run(w, session, now_ms, out);
}

void Scheduler::Run(Work& w, Session& session, int64_t now_ms, Out& out) {
  Dispatcher::Outcome o = dispatcher_.Handle(session, *w.request, now_ms);
  out.mutated |= o.mutated;
  if (o.needs_sync) {
    out.after_sync.emplace_back(w.conn, w.request->frame().header.request_id);
  } else {
    out.frames.push_back(OutgoingReply{w.conn, std::move(o.reply)});
  }
  if (grace_ && !session.reclaiming) {
    bool all_back = true;
    for (auto& [client, s] : sessions_) all_back &= !s.reclaiming;
    if (all_back) return EndGrace(now_ms, out);  // retries the parked requests
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
    auto c = client_of_.find(w.conn);
    if (c == client_of_.end()) continue;  // its connection closed
    Admit(w, sessions_.at(c->second), now_ms, out);
  }
}

void Scheduler::DropParked(ConnectionId conn) {
  std::erase_if(parked_, [&](const Work& w) { return w.conn == conn; });
}

void Scheduler::SendRecalls(const std::vector<LockManager::Conflict>& recalls, Out& out) {
  for (const auto& r : recalls) {
    auto s = sessions_.find(r.holder);
    if (s == sessions_.end() || s->second.conn == 0) continue;  // sent again on resume
    out.frames.push_back(OutgoingReply{s->second.conn, EncodeRecall(r.ino, r.keep), false});
  }
}

}  // namespace cohfs
