#include "server/lock_manager.h"

namespace cohfs {
namespace {

bool Compatible(LockMode a, LockMode b) {
  return a == LockMode::kNone || b == LockMode::kNone ||
         (a == LockMode::kShared && b == LockMode::kShared);
}

}  // namespace

LockMode LockManager::Acquire(ClientId client, InodeId ino, LockMode wanted,
                              std::vector<ClientId>* conflicts) {
  auto& holders = resources_[ino];
  LockMode held = LockMode::kNone;
  if (auto it = holders.find(client); it != holders.end()) held = it->second;
  if (wanted <= held) {
    if (holders.empty()) resources_.erase(ino);
    return held;
  }
  bool ok = true;
  for (const auto& [other, mode] : holders) {
    if (other == client || Compatible(mode, wanted)) continue;
    ok = false;
    if (conflicts) conflicts->push_back(other);
  }
  if (!ok) {
    if (holders.empty()) resources_.erase(ino);
    return held;
  }
  if (held == LockMode::kNone) by_client_[client].insert(ino);
  holders[client] = wanted;
  return wanted;
}

void LockManager::Release(ClientId client, InodeId ino) {
  auto it = resources_.find(ino);
  if (it == resources_.end()) return;
  it->second.erase(client);
  if (it->second.empty()) resources_.erase(it);
  if (auto c = by_client_.find(client); c != by_client_.end()) c->second.erase(ino);
}

std::vector<InodeId> LockManager::ReleaseAll(ClientId client) {
  std::vector<InodeId> released;
  auto it = by_client_.find(client);
  if (it == by_client_.end()) return released;
  released.assign(it->second.begin(), it->second.end());
  by_client_.erase(it);
  for (InodeId ino : released) {
    auto r = resources_.find(ino);
    r->second.erase(client);
    if (r->second.empty()) resources_.erase(r);
  }
  return released;
}

LockMode LockManager::HeldBy(ClientId client, InodeId ino) const {
  auto it = resources_.find(ino);
  if (it == resources_.end()) return LockMode::kNone;
  auto h = it->second.find(client);
  return h == it->second.end() ? LockMode::kNone : h->second;
}

bool LockManager::IsHeld(InodeId ino) const { return resources_.count(ino) != 0; }

}  // namespace cohfs
