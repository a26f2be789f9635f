#include "client/write_behind.h"

#include <time.h>

#include <utility>
#include <vector>

namespace cohfs {

WriteBehind::WriteBehind(Sender send, size_t max_bytes_per_inode, std::function<int64_t()> clock_ns,
                         SpaceGrant* grant)
    : send_(std::move(send)),
      max_bytes_(max_bytes_per_inode),
      clock_ns_(std::move(clock_ns)),
      grant_(grant) {}

bool WriteBehind::Charge(uint64_t bytes) { return grant_ == nullptr || grant_->TryCharge(bytes); }

std::shared_ptr<WriteBehind::Buffer> WriteBehind::Get(InodeId ino) {
  std::lock_guard<std::mutex> l(mu_);
  auto& b = buffers_[ino];
  if (!b) b = std::make_shared<Buffer>();
  return b;
}

Status WriteBehind::SendPending(InodeId ino, Buffer& b) {
  if (b.data.empty()) return Status::Ok();
  std::string data;
  data.swap(b.data);
  b.holding = false;
  uint64_t charge = std::exchange(b.charge, 0);
  Status st = send_(ino, b.caller, b.offset, std::move(data), charge);
  if (!st.ok() && b.error.ok()) b.error = st;
  return st;
}

Result<bool> WriteBehind::Write(InodeId ino, const Caller& caller, std::string_view data,
                                const OwnedAt& owned_at) {
  while (true) {
    std::shared_ptr<Buffer> b = Get(ino);
    std::lock_guard<std::mutex> l(b->mu);
    if (b->dropped) continue;
    if (!b->error.ok()) {
      Status st = b->error;
      b->error = Status::Ok();
      return st;
    }
    std::optional<uint64_t> at = owned_at();
    if (!at) return false;
    const uint64_t offset = *at;
    bool contiguous = !b->data.empty() && offset == b->offset + b->data.size() &&
                      caller.uid == b->caller.uid && caller.gid == b->caller.gid;
    if (!b->data.empty() && (!contiguous || b->data.size() + data.size() > max_bytes_)) {
      RETURN_IF_ERROR(SendPending(ino, *b));
      b->error = Status::Ok();
    }
    const bool fresh = b->data.empty();
    if (data.size() >= max_bytes_) {
      uint64_t charge = grant_ ? SpaceGrant::ChargeFor(offset, data.size()) : 0;
      if (!Charge(charge)) return false;
      RETURN_IF_ERROR(send_(ino, caller, offset, std::string(data), charge));
      return true;
    }
    // The buffer's charge covers it whole (shared edge blocks counted once).
    uint64_t charge = 0;
    if (grant_) {
      charge = fresh ? SpaceGrant::ChargeFor(offset, data.size())
                     : SpaceGrant::ChargeFor(b->offset, b->data.size() + data.size());
    }
    if (!Charge(charge - b->charge)) return false;
    b->charge = charge;
    if (fresh) {
      b->offset = offset;
      b->caller = caller;
      b->since_ns = clock_ns_ ? clock_ns_() : NowNs();
    }
    b->data.append(data);
    b->holding = true;
    return true;
  }
}

Status WriteBehind::Flush(InodeId ino) {
  std::shared_ptr<Buffer> b;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = buffers_.find(ino);
    if (it == buffers_.end()) return Status::Ok();
    b = it->second;
  }
  std::lock_guard<std::mutex> l(b->mu);
  Status st = SendPending(ino, *b);
  if (!b->error.ok()) st = b->error;
  b->error = Status::Ok();
  return st;
}

Status WriteBehind::FlushAndDrop(InodeId ino) {
  Status st = Flush(ino);
  std::lock_guard<std::mutex> l(mu_);
  auto it = buffers_.find(ino);
  if (it == buffers_.end()) return st;
  // Our own reference: erasing the map's must not free the mutex we hold.
  std::shared_ptr<Buffer> b = it->second;
  std::lock_guard<std::mutex> bl(b->mu);
  if (b->data.empty() && b->error.ok()) {
    b->dropped = true;
    buffers_.erase(it);
  }
  return st;
}

int64_t WriteBehind::NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

void WriteBehind::FlushOlderThan(int64_t before_ns) {
  std::vector<std::pair<InodeId, std::shared_ptr<Buffer>>> all;
  {
    std::lock_guard<std::mutex> l(mu_);
    all.assign(buffers_.begin(), buffers_.end());
  }
  for (auto& [ino, b] : all) {
    std::lock_guard<std::mutex> l(b->mu);
    if (!b->data.empty() && b->since_ns < before_ns) (void)SendPending(ino, *b);
  }
}

bool WriteBehind::Holds(InodeId ino) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = buffers_.find(ino);
  return it != buffers_.end() && it->second->holding;
}

size_t WriteBehind::buffered_inodes() const {
  std::lock_guard<std::mutex> l(mu_);
  return buffers_.size();
}

}  // namespace cohfs
