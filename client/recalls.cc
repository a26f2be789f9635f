// FsClient's side of the coherency protocol: recalls from the server, the
// kernel invalidations they cause, and the gates that keep replies and reads
// from outliving a lock (see fs_client.h).
#include <chrono>
#include <utility>

#include "client/fs_client.h"
#include "common/log.h"

namespace cohfs {
namespace {

// A recall waits this long for reads of the inode already on the wire (they
// never wait for another client, so this is a bound, not a timing).
constexpr auto kReadDrainDeadline = std::chrono::seconds(30);

}  // namespace

void FsClient::OnRecall(InodeId ino, LockMode keep) {
  stats_.recalls++;
  Post(Task{ino, keep, true});
}

void FsClient::Post(Task t) {
  {
    std::lock_guard<std::mutex> l(tasks_mu_);
    tasks_.push_back(t);
  }
  tasks_cv_.notify_one();
}

void FsClient::TaskLoop() {
  while (true) {
    Task t;
    {
      std::unique_lock<std::mutex> l(tasks_mu_);
      tasks_cv_.wait(l, [&] { return stop_ || !tasks_.empty(); });
      if (stop_) return;
      t = tasks_.front();
      tasks_.pop_front();
    }
    if (t.recall) {
      HandleRecall(t.ino, t.keep);
    } else if (KernelCache* k = kernel_.load()) {
      k->InvalInode(t.ino);
    }
  }
}

void FsClient::HandleRecall(InodeId ino, LockMode keep) {
  std::vector<std::string> names;
  {
    // Replies already built from the lock are out; later ones see it gone.
    std::unique_lock<std::shared_mutex> pin(Stripe(ino));
    std::lock_guard<std::mutex> l(send_mu_);
    names = cache_.Revoke(ino, keep, rpc_.last_request_id());
    {
      std::lock_guard<std::mutex> g(gate_mu_);
      gates_[ino].recalling = true;
    }
    ShipLogLocked();  // every change made before the recall, in order
  }
  // Written-behind data (new writes go through the server now).
  Status st = write_behind_.Flush(ino);
  if (!st.ok()) log_.RecordFailure(ino, st);  // still reported by the next fsync or close
  WaitForReads(ino);
  if (KernelCache* k = kernel_.load(); k && keep == LockMode::kNone) {
    k->InvalInode(ino);
    for (const std::string& name : names) k->InvalEntry(ino, name);
  }
  {
    std::lock_guard<std::mutex> l(send_mu_);
    ShipLogLocked();
    capnp::MallocMessageBuilder m;
    auto root = m.initRoot<wire::Request>();
    ToWire(Caller{}, root.initCaller());
    auto list = keep == LockMode::kNone ? root.initRelease(1) : root.initDowngrade(1);
    list.set(0, ino.value);
    rpc_.Post(m);
  }
  {
    std::lock_guard<std::mutex> g(gate_mu_);
    auto it = gates_.find(ino);
    it->second.recalling = false;
    if (it->second.reads == 0) gates_.erase(it);
  }
  gate_cv_.notify_all();
}

void FsClient::WaitForReads(InodeId ino) {
  std::unique_lock<std::mutex> g(gate_mu_);
  if (!gate_cv_.wait_for(g, kReadDrainDeadline, [&] { return gates_[ino].reads == 0; })) {
    LOG(Warn) << "recall of inode " << ino.value << ": reads still unanswered, releasing anyway";
  }
}

void FsClient::BeginRead(InodeId ino) {
  std::unique_lock<std::mutex> g(gate_mu_);
  gate_cv_.wait(g, [&] {
    auto it = gates_.find(ino);
    return it == gates_.end() || !it->second.recalling;
  });
  gates_[ino].reads++;
}

void FsClient::EndRead(InodeId ino) {
  {
    std::lock_guard<std::mutex> g(gate_mu_);
    auto it = gates_.find(ino);
    if (--it->second.reads == 0 && !it->second.recalling) gates_.erase(it);
  }
  gate_cv_.notify_all();
}

FsClient::ReplyPin::ReplyPin(FsClient& c, InodeId a, InodeId b)
    : first_(&c.Stripe(a)), second_(b.valid() ? &c.Stripe(b) : nullptr) {
  if (second_ == first_) second_ = nullptr;
  if (second_ && second_ < first_) std::swap(first_, second_);  // one order: no deadlock
  first_->lock_shared();
  if (second_) second_->lock_shared();
}

FsClient::ReplyPin::~ReplyPin() {
  if (second_) second_->unlock_shared();
  first_->unlock_shared();
}

}  // namespace cohfs
