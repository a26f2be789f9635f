#include "client/lease_keeper.h"

namespace cohfs {

LeaseKeeper::LeaseKeeper(int64_t lease_ms, int64_t now_ms)
    : lease_ms_(lease_ms), last_sent_ms_(now_ms), last_heard_ms_(now_ms) {}

void LeaseKeeper::OnHeard(int64_t now_ms) {
  last_heard_ms_ = now_ms;
  if (warned_) heard_back_ = true;
  warned_ = false;
}

LeaseKeeper::Step LeaseKeeper::Tick(int64_t now_ms) {
  Step s;
  if (lease_ms_ <= 0) return s;
  s.renew = now_ms - last_sent_ms_ >= renew_after_ms();
  s.silent_ms = now_ms - last_heard_ms_;
  if (s.silent_ms > lease_ms_ && !warned_) {
    warned_ = true;
    s.silent = true;
  }
  s.back = heard_back_;
  heard_back_ = false;
  return s;
}

}  // namespace cohfs
