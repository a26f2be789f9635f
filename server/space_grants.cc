#include "server/space_grants.h"

#include <algorithm>

#include "common/limits.h"
#include "common/log.h"

namespace cohfs {

uint64_t SpaceGrants::of(ClientId client) const {
  auto it = granted_.find(client);
  return it == granted_.end() ? 0 : it->second;
}

uint64_t SpaceGrants::ReservedAgainst(ClientId client, uint64_t own_bytes) const {
  return total_ - std::min(own_bytes, of(client));
}

uint64_t SpaceGrants::Consume(ClientId client, uint64_t bytes) {
  auto it = granted_.find(client);
  uint64_t held = it == granted_.end() ? 0 : it->second;
  uint64_t taken = std::min(bytes, held);
  if (taken < bytes) {
    LOG(Warn) << "client " << client.value << " wrote " << bytes << " bytes under a grant of "
              << held;
  }
  if (taken == 0) return 0;
  it->second -= taken;
  total_ -= taken;
  if (it->second == 0) granted_.erase(it);
  return taken;
}

uint64_t SpaceGrants::TopUp(ClientId client, uint64_t want_bytes, uint64_t free_bytes) {
  uint64_t held = of(client);
  uint64_t want = std::min(want_bytes, max_grant_bytes_);
  if (held >= want || free_bytes <= total_) return 0;
  // At most half of what nobody holds: near full, grants shrink with it and
  // writers without a grant still find some space.
  uint64_t add = std::min(want - held, (free_bytes - total_) / 2);
  add -= add % kBlockBytes;
  if (add == 0) return 0;
  granted_[client] += add;
  total_ += add;
  return add;
}

uint64_t SpaceGrants::Restore(ClientId client, uint64_t bytes, uint64_t free_bytes) {
  uint64_t add = std::min(bytes, free_bytes > total_ ? free_bytes - total_ : 0);
  if (add == 0) return 0;
  granted_[client] += add;
  total_ += add;
  return add;
}

void SpaceGrants::Drop(ClientId client) {
  auto it = granted_.find(client);
  if (it == granted_.end()) return;
  total_ -= it->second;
  granted_.erase(it);
}

}  // namespace cohfs
