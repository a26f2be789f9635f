#include "client/writeback_log.h"

namespace cohfs {

uint64_t WritebackLog::Append(Op op) {
  if (ops_.empty()) oldest_ns_ = op.now_ns;
  // A group opens with a create; attribute changes of that inode right after it join it.
  bool joins = !ops_.empty() && group_ino_.valid() && op.kind == Op::Kind::kSetAttr &&
               op.ino == group_ino_ && group_size_ < kMaxGroupOps;
  if (joins) {
    ops_.back().with_next = true;
    group_size_++;
  } else {
    group_ino_ = op.kind == Op::Kind::kCreate ? op.ino : InodeId();
    group_size_ = 1;
  }
  ops_.push_back(std::move(op));
  return ++last_seq_;
}

std::vector<WritebackLog::Op> WritebackLog::Drain() {
  std::vector<Op> out;
  out.swap(ops_);
  group_ino_ = InodeId();
  group_size_ = 0;
  return out;
}

}  // namespace cohfs
