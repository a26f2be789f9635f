#include "client/writeback_log.h"

namespace cohfs {

uint64_t WritebackLog::Append(Op op) {
  if (ops_.empty()) oldest_ns_ = op.now_ns;
  ops_.push_back(std::move(op));
  return ++last_seq_;
}

std::vector<WritebackLog::Op> WritebackLog::Drain() {
  std::vector<Op> out;
  out.swap(ops_);
  return out;
}

void WritebackLog::RecordFailure(InodeId ino, const Status& st) {
  std::lock_guard<std::mutex> l(failures_mu_);
  failures_.emplace(ino, st);
}

Status WritebackLog::TakeFailure(InodeId ino) {
  std::lock_guard<std::mutex> l(failures_mu_);
  auto it = failures_.find(ino);
  if (it == failures_.end()) return Status::Ok();
  Status st = it->second;
  failures_.erase(it);
  return st;
}

}  // namespace cohfs
