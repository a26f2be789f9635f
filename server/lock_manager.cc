#include "server/lock_manager.h"

#include <algorithm>

namespace cohfs {
namespace {

bool Compatible(LockMode a, LockMode b) {
  return a == LockMode::kNone || b == LockMode::kNone ||
         (a == LockMode::kShared && b == LockMode::kShared);
}

constexpr size_t kMaxRecallTimes = 4096;  // then expired entries are pruned

}  // namespace

LockMode LockManager::Acquire(ClientId client, InodeId ino, LockMode wanted,
                              std::vector<ClientId>* conflicts) {
  auto& holders = resources_[ino];
  LockMode held = LockMode::kNone;
  if (auto it = holders.find(client); it != holders.end()) held = it->second.mode;
  if (wanted <= held) {
    if (holders.empty()) resources_.erase(ino);
    return held;
  }
  bool ok = true;
  for (const auto& [other, h] : holders) {
    if (other == client || Compatible(h.mode, wanted)) continue;
    ok = false;
    if (conflicts) conflicts->push_back(other);
  }
  if (!ok) {
    if (holders.empty()) resources_.erase(ino);
    return held;
  }
  if (held == LockMode::kNone) by_client_[client].insert(ino);
  if (holders.empty()) age_.push_back(ino);
  holders[client].mode = wanted;
  return wanted;
}

LockMode LockManager::Grant(ClientId client, InodeId ino, LockMode wanted, int64_t now_ms) {
  if (RecallPending(client, ino) || Contended(ino, now_ms)) return LockMode::kNone;
  return Acquire(client, ino, wanted);
}

void LockManager::Conflicts(ClientId client, InodeId ino, LockMode need,
                            std::vector<Conflict>* out) const {
  auto it = resources_.find(ino);
  if (it == resources_.end()) return;
  for (const auto& [other, h] : it->second) {
    if (other == client || Compatible(h.mode, need)) continue;
    // A reader lets an EXCLUSIVE holder keep SHARED; a writer takes it all.
    out->push_back({other, ino, need == LockMode::kShared ? LockMode::kShared : LockMode::kNone});
  }
}

bool LockManager::Recall(const Conflict& c, int64_t now_ms, bool contended) {
  if (recalled_ms_.size() >= kMaxRecallTimes) {
    std::erase_if(recalled_ms_, [&](const auto& e) { return now_ms - e.second >= contention_ms_; });
  }
  auto r = resources_.find(c.ino);
  if (r == resources_.end()) return false;
  auto h = r->second.find(c.holder);
  if (h == r->second.end()) return false;
  Holder& holder = h->second;
  if (holder.recalling && holder.recall_keep <= c.keep) return false;
  if (!holder.recalling) {  // a stronger recall keeps the first one's deadline
    holder.recall_ms = now_ms;
    recall_clocks_.push_back({c.ino, c.holder, now_ms});
  }
  holder.recalling = true;
  holder.recall_keep = c.keep;
  if (contended) recalled_ms_[c.ino] = now_ms;
  return true;
}

std::vector<LockManager::Conflict> LockManager::TrimTo(size_t max_inodes, size_t batch,
                                                       int64_t now_ms) {
  std::vector<Conflict> out;
  if (age_.size() > 2 * resources_.size() + 1024) {  // mostly stale: rebuild
    age_.clear();
    for (const auto& [ino, holders] : resources_) age_.push_back(ino);
  }
  // Inodes already recalled for the bound count as gone.
  std::erase_if(trimming_, [&](InodeId ino) { return resources_.count(ino) == 0; });
  size_t kept = resources_.size() - trimming_.size();
  size_t over = kept > max_inodes ? kept - max_inodes : 0;
  for (size_t n = 0; n < std::min(over, batch) && !age_.empty(); age_.pop_front()) {
    auto r = resources_.find(age_.front());
    if (r == resources_.end() || !trimming_.insert(r->first).second) continue;
    n++;
    for (const auto& [client, h] : r->second) {
      Conflict c{client, r->first, LockMode::kNone};
      if (!h.recalling && Recall(c, now_ms, /*contended=*/false)) out.push_back(c);
    }
  }
  return out;
}

bool LockManager::RecallPending(ClientId client, InodeId ino) const {
  auto r = resources_.find(ino);
  if (r == resources_.end()) return false;
  auto h = r->second.find(client);
  return h != r->second.end() && h->second.recalling;
}

void LockManager::Release(ClientId client, InodeId ino) {
  auto it = resources_.find(ino);
  if (it == resources_.end()) return;
  it->second.erase(client);
  if (it->second.empty()) resources_.erase(it);
  if (auto c = by_client_.find(client); c != by_client_.end()) c->second.erase(ino);
}

void LockManager::Downgrade(ClientId client, InodeId ino) {
  auto r = resources_.find(ino);
  if (r == resources_.end()) return;
  auto h = r->second.find(client);
  if (h == r->second.end()) return;
  h->second.mode = std::min(h->second.mode, LockMode::kShared);
  h->second.recalling = false;
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

void LockManager::AddRef(ClientId client, InodeId ino) { refs_[ino].insert(client); }

bool LockManager::References(ClientId client, InodeId ino) const {
  auto it = refs_.find(ino);
  return it != refs_.end() && it->second.count(client) != 0;
}

void LockManager::DropRef(ClientId client, InodeId ino) {
  auto it = refs_.find(ino);
  if (it == refs_.end()) return;
  it->second.erase(client);
  if (it->second.empty()) refs_.erase(it);
}

std::vector<InodeId> LockManager::DropRefs(ClientId client) {
  std::vector<InodeId> dropped;
  for (auto it = refs_.begin(); it != refs_.end();) {
    if (it->second.erase(client)) dropped.push_back(it->first);
    it = it->second.empty() ? refs_.erase(it) : std::next(it);
  }
  return dropped;
}

LockMode LockManager::HeldBy(ClientId client, InodeId ino) const {
  auto it = resources_.find(ino);
  if (it == resources_.end()) return LockMode::kNone;
  auto h = it->second.find(client);
  return h == it->second.end() ? LockMode::kNone : h->second.mode;
}

bool LockManager::IsHeld(InodeId ino) const { return resources_.count(ino) != 0; }

bool LockManager::Contended(InodeId ino, int64_t now_ms) const {
  auto it = recalled_ms_.find(ino);
  return it != recalled_ms_.end() && now_ms - it->second < contention_ms_;
}

std::vector<LockManager::Conflict> LockManager::PendingRecalls(ClientId client) const {
  std::vector<Conflict> out;
  auto inodes = by_client_.find(client);
  if (inodes == by_client_.end()) return out;
  for (InodeId ino : inodes->second) {
    auto r = resources_.find(ino);
    if (r == resources_.end()) continue;
    auto h = r->second.find(client);
    if (h != r->second.end() && h->second.recalling) {
      out.push_back(Conflict{client, ino, h->second.recall_keep});
    }
  }
  return out;
}

std::vector<ClientId> LockManager::Unanswered(int64_t sent_before_ms) {
  std::vector<ClientId> out;
  while (!recall_clocks_.empty()) {
    const RecallClock& clock = recall_clocks_.front();
    const Holder* h = nullptr;
    if (auto r = resources_.find(clock.ino); r != resources_.end()) {
      if (auto it = r->second.find(clock.holder); it != r->second.end()) h = &it->second;
    }
    bool outstanding = h && h->recalling && h->recall_ms == clock.sent_ms;
    if (outstanding && clock.sent_ms > sent_before_ms) break;  // the rest are younger
    if (outstanding && std::find(out.begin(), out.end(), clock.holder) == out.end()) {
      out.push_back(clock.holder);
    }
    recall_clocks_.pop_front();
  }
  return out;
}

void LockManager::RestartRecallClocks(ClientId client, int64_t now_ms) {
  for (const Conflict& c : PendingRecalls(client)) {
    resources_[c.ino][client].recall_ms = now_ms;
    recall_clocks_.push_back({c.ino, client, now_ms});
  }
}

}  // namespace cohfs
