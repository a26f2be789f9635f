// FsClient's side of the coherency protocol: recalls from the server, the
// kernel invalidations they cause, and the gates that keep replies and reads
// from outliving a lock (see fs_client.h).
#include <chrono>
#include <memory>
#include <utility>

#include "client/fs_client.h"
#include "common/check.h"
#include "common/log.h"

namespace cohfs {
namespace {

// A recall waits this long for reads of the inode already on the wire (they
// never wait for another client, so this is a bound, not a timing).
constexpr auto kReadDrainDeadline = std::chrono::seconds(30);
constexpr auto kInvalidateDeadline = std::chrono::seconds(1);
constexpr int kMaxReleaseAttempts = 4;  // then the release goes regardless

}  // namespace

void FsClient::OnRecall(InodeId ino, LockMode keep) {
  stats_.recalls++;
  Post(Task{ino, keep, Task::Kind::kRecall});
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
    RunTask(t);
  }
}

void FsClient::RunTask(const Task& t) {
  switch (t.kind) {
    case Task::Kind::kRecall:
      HandleRecall(t.ino, t.keep);
      break;
    case Task::Kind::kInvalidate:
      InvalidateKernel(t.ino, t.names);
      break;
    case Task::Kind::kFlushOldData:
      write_behind_.FlushOlderThan(MonoNow() - kDataDelayNs);
      break;
  }
}

bool FsClient::RunPendingTask() {
  CHECK(!options_.own_threads);
  Task t;
  {
    std::lock_guard<std::mutex> l(tasks_mu_);
    if (tasks_.empty()) return false;
    t = tasks_.front();
    if (t.kind == Task::Kind::kRecall) {
      std::lock_guard<std::mutex> g(gate_mu_);
      auto it = gates_.find(t.ino);
      if (it != gates_.end() && it->second.reads > 0) return false;  // WaitForReads would block
    }
    tasks_.pop_front();
  }
  RunTask(t);
  return true;
}

void FsClient::HandleRecall(InodeId ino, LockMode keep) {
  std::vector<std::string> names;
  uint64_t giving = 0;  // none (tokens start at 1)
  {
    // Replies already built from the lock are out; later ones see it gone.
    std::unique_lock<std::shared_mutex> pin(Stripe(ino));
    std::lock_guard<std::mutex> l(send_mu_);
    if (LockMode held = cache_.lock(ino); held > keep) giving = NoteGivingBack({{ino, held}});
    names = cache_.Revoke(ino, keep, rpc_.last_request_id());
    {
      std::lock_guard<std::mutex> g(gate_mu_);
      gates_[ino].recalling = true;
    }
    ShipLogLocked();  // every change made before the recall, in order
  }
  // Written-behind data (new writes go through the server now).
  Status st = write_behind_.Flush(ino);
  if (!st.ok()) errors_.Record(ino, st);  // still reported by the next fsync or close
  WaitForReads(ino);
  if (keep == LockMode::kNone) InvalidateKernel(ino, std::move(names));
  SendRelease(ino, keep, giving);
  {
    std::lock_guard<std::mutex> g(gate_mu_);
    auto it = gates_.find(ino);
    it->second.recalling = false;
    if (it->second.reads == 0 && it->second.kernel_holds == 0) gates_.erase(it);
  }
  gate_cv_.notify_all();
}

// The release (or downgrade) gives back every grant on `ino` in replies to
// requests sent before it, so those are voided with it, in one hold of the
// send order lock (no request slips in between). A grant that came back in the
// meantime (a recall that crossed an earlier release, then a new request)
// may have let the kernel cache something: drop that first.
void FsClient::SendRelease(InodeId ino, LockMode keep, uint64_t giving) {
  for (int attempt = 0;; attempt++) {
    std::unique_lock<std::shared_mutex> pin(Stripe(ino));
    std::unique_lock<std::mutex> l(send_mu_);
    bool regained = cache_.lock(ino) > keep;
    std::vector<std::string> names = cache_.Revoke(ino, keep, rpc_.last_request_id());
    if ((regained || !names.empty()) && keep == LockMode::kNone && attempt < kMaxReleaseAttempts) {
      l.unlock();
      pin.unlock();
      InvalidateKernel(ino, std::move(names));
      continue;
    }
    ShipLogLocked();
    ChangesSent(giving, rpc_.last_request_id());
    capnp::MallocMessageBuilder m;
    auto root = m.initRoot<wire::Request>();
    ToWire(Caller{}, root.initCaller());
    // An inode the kernel still has keeps a reference on the server (an
    // unlinked file open here stays readable); its forget sends the release.
    auto list = keep != LockMode::kNone ? root.initDowngrade(1)
                : cache_.KernelHas(ino) ? root.initUnlock(1)
                                        : root.initRelease(1);
    list.set(0, ino.value);
    rpc_.Post(m, GivenBack(giving));
    return;
  }
}

void FsClient::InvalidateKernel(InodeId ino, std::vector<std::string> names) {
  auto invalidate = [this, ino, names = std::move(names)] {
    if (KernelCache* k = kernel_.load()) {
      k->InvalInode(ino);
      for (const std::string& name : names) k->InvalEntry(ino, name);
    }
  };
  if (!options_.own_threads) return invalidate();  // no kernel waits on this thread
  auto done = std::make_shared<bool>(false);       // guarded by gate_mu_
  std::thread t([this, invalidate = std::move(invalidate), done] {
    invalidate();
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
  // request on another inode (rename holds two directories); it costs only a
  // short window in which this client may still see what it is giving back.
  std::unique_lock<std::mutex> g(gate_mu_);
  bool clean = gate_cv_.wait_for(g, kInvalidateDeadline, [&] {
    auto it = gates_.find(ino);
    return *done || (it != gates_.end() && it->second.kernel_holds > 0);
  });
  if (!clean)
    LOG(Warn) << "recall of inode " << ino.value << ": kernel caches not dropped yet, releasing";
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

void FsClient::BeginKernelHold(InodeId ino) {
  {
    std::lock_guard<std::mutex> g(gate_mu_);
    gates_[ino].kernel_holds++;
  }
  gate_cv_.notify_all();
}

void FsClient::EndKernelHold(InodeId ino) { LeaveGate(ino, &Gate::kernel_holds); }

void FsClient::LeaveGate(InodeId ino, int Gate::*counter) {
  {
    std::lock_guard<std::mutex> g(gate_mu_);
    auto it = gates_.find(ino);
    Gate& gate = it->second;
    --(gate.*counter);
    if (gate.reads == 0 && gate.kernel_holds == 0 && !gate.recalling) gates_.erase(it);
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
