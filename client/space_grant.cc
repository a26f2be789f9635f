#include "client/space_grant.h"

#include <algorithm>

#include "common/check.h"

namespace cohfs {

bool SpaceGrant::TryCharge(uint64_t bytes) {
  std::lock_guard<std::mutex> l(mu_);
  if (charged_ + bytes > granted_) return false;
  charged_ += bytes;
  return true;
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
