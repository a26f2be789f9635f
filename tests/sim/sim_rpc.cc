#include "tests/sim/sim_rpc.h"

#include <cstring>
#include <vector>

#include "common/check.h"

namespace cohfs::sim {

std::shared_ptr<const OutFrame> SimRpc::TakeToServer() {
  auto f = std::move(to_server_.front());
  to_server_.pop_front();
  return f;
}

void SimRpc::Cut() {
  connected_ = false;
  to_server_.clear();
  to_client_.clear();
}

void SimRpc::Resume(ConnectionId conn, const Welcome& w, bool restarted) {
  CHECK(!connected_ && w.resumed && w.session_id == welcome_.session_id);
  restarts_ += restarted;
  conn_ = conn;
  connected_ = true;
  for (auto& [id, frame] : unanswered_) to_server_.push_back(frame);
}

uint64_t SimRpc::oldest_unanswered_id() {
  return pending_.empty() ? next_id_ : pending_.begin()->first;
}

SimRpc::Ticket SimRpc::Enqueue(capnp::MallocMessageBuilder& request, std::string bulk,
                               bool want_reply, ReplyHandler on_reply) {
  const uint64_t id = next_id_++;
  auto root = request.getRoot<wire::Request>();
  root.setRepliedBelow(unanswered_.empty() ? id : unanswered_.begin()->first);
  if (on_send_) on_send_(id, root.asReader(), bulk);
  kinds_[id] = root.which();
  if (root.isCommit()) commits_unanswered_++;
  Ticket p = want_reply ? std::make_shared<Pending>() : nullptr;
  if (p) {
    p->on_reply = std::move(on_reply);
    pending_[id] = p;
  }
  auto frame = std::make_shared<const OutFrame>(
      EncodeFrame(FrameKind::kRequest, RequestId(id), request, std::move(bulk)));
  unanswered_[id] = frame;
  if (connected_) to_server_.push_back(std::move(frame));
  return p;
}

SimRpc::Ticket SimRpc::DoSend(capnp::MallocMessageBuilder& request, std::string bulk) {
  return Enqueue(request, std::move(bulk), true, {});
}

void SimRpc::DoPost(capnp::MallocMessageBuilder& request, ReplyHandler on_reply, std::string bulk) {
  bool want_reply = static_cast<bool>(on_reply);
  Enqueue(request, std::move(bulk), want_reply, std::move(on_reply));
}

// As RpcClient's Wait, except that an unanswered ticket moves the simulation
// (only the final unmount waits; every other request completes in a step).
Result<RpcReply> SimRpc::DoWait(const Ticket& p, int) {
  while (!p->done && pump_ && pump_()) {
  }
  if (!p->done) return Status::Error(EIO, "the simulation cannot answer this request");
  if (!p->error.ok()) return p->error;
  Status st = GuardDecode([&] { return ReplyStatus(p->reply->root()); });
  if (!st.ok()) return st;
  RpcReply reply(std::move(p->reply));
  if (p->restarts != restarts_) reply.set_stale_grants();
  return reply;
}

void SimRpc::DeliverToClient() {
  InFrame frame = ThroughWire(to_client_.front());
  to_client_.pop_front();
  if (frame.header.kind == FrameKind::kRecall) {
    auto recall = DecodedRecall::Decode(std::move(frame));
    CHECK(recall.ok());
    auto r = (*recall)->root();
    if (recall_handler_) recall_handler_(InodeId(r.getIno()), FromWire(r.getMode()));
    return;
  }
  CHECK(frame.header.kind == FrameKind::kReply);
  const uint64_t id = frame.header.request_id.value;
  auto kind = kinds_.find(id);
  CHECK_MSG(kind != kinds_.end(), "a reply to no request");
  auto decoded = DecodedReply::Decode(std::move(frame));
  CHECK(decoded.ok());
  if (kind->second == wire::Request::COMMIT) commits_unanswered_--;
  if (on_reply_) on_reply_(id, kind->second, (*decoded)->root());
  kinds_.erase(kind);
  unanswered_.erase(id);
  auto it = pending_.find(id);
  if (it == pending_.end()) return;  // a Post without a handler
  Ticket p = it->second;
  pending_.erase(it);
  if (p->on_reply) {
    Status st = GuardDecode([&] { return ReplyStatus((*decoded)->root()); });
    if (!st.ok()) return p->on_reply(st);
    return p->on_reply(RpcReply(std::move(decoded).value()));
  }
  p->reply = std::move(decoded).value();
  p->restarts = restarts_;
  p->done = true;
}

}  // namespace cohfs::sim
