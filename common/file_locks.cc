#include "common/file_locks.h"

#include <algorithm>

namespace cohfs {
namespace {

bool SameOwner(const FileLock& a, const FileLock& b) {
  return a.client == b.client && a.owner == b.owner && a.flock == b.flock;
}

bool Overlap(const FileLock& a, const FileLock& b) { return a.start <= b.end && b.start <= a.end; }

bool Conflicts(const FileLock& held, const FileLock& want) {
  if (held.flock != want.flock || SameOwner(held, want) || !Overlap(held, want)) return false;
  return held.type == FileLock::Type::kWrite || want.type == FileLock::Type::kWrite;
}

}  // namespace

std::optional<FileLock> FileLocks::Test(InodeId ino, const FileLock& want) const {
  auto it = locks_.find(ino);
  if (it == locks_.end()) return std::nullopt;
  for (const FileLock& l : it->second) {
    if (Conflicts(l, want)) return l;
  }
  return std::nullopt;
}

bool FileLocks::Set(InodeId ino, const FileLock& want) {
  if (want.type != FileLock::Type::kUnlock && Test(ino, want)) return false;
  std::vector<FileLock>& list = locks_[ino];
  // Cut the owner's ranges out of [start, end], keeping what lies outside.
  std::vector<FileLock> kept;
  for (const FileLock& l : list) {
    if (!SameOwner(l, want) || !Overlap(l, want)) {
      kept.push_back(l);
      continue;
    }
    if (l.start < want.start) {
      FileLock left = l;
      left.end = want.start - 1;
      kept.push_back(left);
    }
    if (want.end != FileLock::kToEnd && l.end > want.end) {
      FileLock right = l;
      right.start = want.end + 1;
      kept.push_back(right);
    }
  }
  if (want.type != FileLock::Type::kUnlock) kept.push_back(want);
  if (kept.empty()) {
    locks_.erase(ino);
  } else {
    list.swap(kept);
  }
  return true;
}

void FileLocks::ReleaseClient(ClientId client) {
  for (auto it = locks_.begin(); it != locks_.end();) {
    std::erase_if(it->second, [&](const FileLock& l) { return l.client == client; });
    it = it->second.empty() ? locks_.erase(it) : std::next(it);
  }
}

std::vector<std::pair<InodeId, FileLock>> FileLocks::Held(ClientId client) const {
  std::vector<std::pair<InodeId, FileLock>> out;
  for (const auto& [ino, list] : locks_) {
    for (const FileLock& l : list) {
      if (l.client == client) out.emplace_back(ino, l);
    }
  }
  return out;
}

bool FileLocks::HoldsRecordLock(InodeId ino, ClientId client, uint64_t owner) const {
  auto it = locks_.find(ino);
  if (it == locks_.end()) return false;
  return std::any_of(it->second.begin(), it->second.end(), [&](const FileLock& l) {
    return l.client == client && l.owner == owner && !l.flock;
  });
}

size_t FileLocks::count(InodeId ino) const {
  auto it = locks_.find(ino);
  return it == locks_.end() ? 0 : it->second.size();
}

}  // namespace cohfs
