#include "client/space_grant.h"

#include <algorithm>

#include "common/check.h"

namespace cohfs {

bool SpaceGrant::TryCharge(uint64_t bytes) {
  std::lock_guard<std::mutex> l(mu_);
  used_ = true;
  if (charged_ + bytes > granted_) return false;
  charged_ += bytes;
  return true;
}

uint64_t SpaceGrant::ChargeRest() {
  std::lock_guard<std::mutex> l(mu_);
  used_ = true;
  uint64_t rest = granted_ - charged_;
  charged_ = granted_;
  return rest;
}

uint64_t SpaceGrant::TakeIdle(int64_t now_ns, int64_t idle_ns) {
  std::lock_guard<std::mutex> l(mu_);
  if (used_ || charged_ != 0 || idle_since_ < 0) {
    used_ = false;
    idle_since_ = now_ns;
    return 0;
  }
  if (now_ns - idle_since_ < idle_ns || granted_ == 0) return 0;
  charged_ = granted_;
  return granted_;
}

void SpaceGrant::Settle(uint64_t bytes) {
  std::lock_guard<std::mutex> l(mu_);
  CHECK_MSG(bytes <= charged_ && bytes <= granted_, "settling a write that was never charged");
  charged_ -= bytes;
  granted_ -= bytes;
}

void SpaceGrant::Add(uint64_t bytes) {
  std::lock_guard<std::mutex> l(mu_);
  granted_ += bytes;
}

bool SpaceGrant::Reset(uint64_t bytes) {
  std::lock_guard<std::mutex> l(mu_);
  granted_ = std::max(bytes, charged_);
  return bytes >= charged_;
}

uint64_t SpaceGrant::granted() const {
  std::lock_guard<std::mutex> l(mu_);
  return granted_;
}

uint64_t SpaceGrant::charged() const {
  std::lock_guard<std::mutex> l(mu_);
  return charged_;
}

}  // namespace cohfs
