#include "server/leases.h"

#include <algorithm>

#include "common/check.h"

namespace cohfs {

Leases::Leases(int64_t lease_ms) : lease_ms_(lease_ms) { CHECK(lease_ms > 0); }

void Leases::Renew(ConnectionId conn, int64_t now_ms) { last_heard_ms_[conn] = now_ms; }

void Leases::Forget(ConnectionId conn) { last_heard_ms_.erase(conn); }

// A scan of every connection: a few thousand sessions at most, a few times a
// second, is cheaper than keeping them ordered on every received chunk.
std::vector<Leases::Expiry> Leases::TakeExpired(int64_t now_ms) {
  std::vector<Expiry> expired;
  for (auto it = last_heard_ms_.begin(); it != last_heard_ms_.end();) {
    int64_t silent_ms = now_ms - it->second;
    if (silent_ms > lease_ms_) {
      expired.push_back(Expiry{it->first, silent_ms});
      it = last_heard_ms_.erase(it);
    } else {
      ++it;
    }
  }
  return expired;
}

int64_t Leases::check_interval_ms() const { return std::clamp<int64_t>(lease_ms_ / 8, 10, 1000); }

}  // namespace cohfs
