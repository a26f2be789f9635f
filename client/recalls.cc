// FsClient's side of the coherency protocol: recalls from the server, the
// kernel invalidations they cause, and the gates that keep replies and reads
// from outliving a lock (see fs_client.h).
#include <chrono>
#include <memory>
#include <utility>

#include "client/fs_client.h"
#include "common/log.h"

namespace cohfs {
namespace {

// A recall waits this long for reads of the inode already on the wire (they
// never wait for another client, so this is a bound, not a timing).
constexpr auto kReadDrainDeadline = std::chrono::seconds(30);
constexpr auto kNamesDeadline = std::chrono::seconds(1);

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
    if (!names.empty()) InvalidateNames(ino, std::move(names));
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
    if (it->second.reads == 0 && it->second.dir_ops == 0) gates_.erase(it);
  }
  gate_cv_.notify_all();
}

void FsClient::InvalidateNames(InodeId dir, std::vector<std::string> names) {
  auto done = std::make_shared<bool>(false);  // guarded by gate_mu_
  std::thread t([this, dir, names = std::move(names), done] {
    if (KernelCache* k = kernel_.load()) {
      for (const std::string& name : names) k->InvalEntry(dir, name);
    }
    {
      std::lock_guard<std::mutex> g(gate_mu_);
      *done = true;
    }
    gate_cv_.notify_all();
  });
  JoinFinishedInvalidators();
  {
    std::lock_guard<std::mutex> l(inval_mu_);
    inval_threads_.push_back({std::move(t), done});
  }
  // The bound is the last resort against a lock the kernel holds for a
  // request on another directory (rename); it costs only a short window in
  // which this client may still see the names it is giving back.
  std::unique_lock<std::mutex> g(gate_mu_);
  bool clean = gate_cv_.wait_for(g, kNamesDeadline, [&] {
    auto it = gates_.find(dir);
    return *done || (it != gates_.end() && it->second.dir_ops > 0);
  });
  if (!clean) LOG(Warn) << "recall of directory " << dir.value << ": names still cached, releasing";
}

void FsClient::JoinFinishedInvalidators(bool all) {
  std::vector<std::thread> finished;
  {
    std::lock_guard<std::mutex> l(inval_mu_);
    std::lock_guard<std::mutex> g(gate_mu_);
    for (auto it = inval_threads_.begin(); it != inval_threads_.end();) {
      if (!all && !*it->done) {
        ++it;
        continue;
      }
      finished.push_back(std::move(it->thread));
      it = inval_threads_.erase(it);
    }
  }
  for (std::thread& t : finished) t.join();
}

void FsClient::BeginDirOp(InodeId dir) {
  {
    std::lock_guard<std::mutex> g(gate_mu_);
    gates_[dir].dir_ops++;
  }
  gate_cv_.notify_all();
}

void FsClient::EndDirOp(InodeId dir) { LeaveGate(dir, &Gate::dir_ops); }

void FsClient::LeaveGate(InodeId ino, int Gate::*counter) {
  {
    std::lock_guard<std::mutex> g(gate_mu_);
    auto it = gates_.find(ino);
    Gate& gate = it->second;
    --(gate.*counter);
    if (gate.reads == 0 && gate.dir_ops == 0 && !gate.recalling) gates_.erase(it);
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

void FsClient::EndRead(InodeId ino) { LeaveGate(ino, &Gate::reads); }

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
