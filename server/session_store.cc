#include "server/session_store.h"

namespace cohfs {
namespace {

ItemKey SessionKey(uint64_t id) { return ItemKey{0, ItemType::kSession, id}; }
ItemKey ReplayKey(uint64_t id, uint64_t request) {
  return ItemKey{0, ItemType::kReplay, ReplayOffset(id, request)};
}
constexpr uint64_t kRequestMask = (1ull << kReplaySeqBits) - 1;

}  // namespace

Result<std::vector<SessionStore::Stored>> SessionStore::LoadAll() {
  std::vector<Stored> out;
  auto it = items_.NewIterator();
  for (it->Seek(SessionKey(1)); it->Valid(); it->Next()) {
    ItemKey k = it->key();
    if (k.objectid != 0 || k.type != ItemType::kSession) break;
    Stored s;
    s.id = k.offset;
    RETURN_IF_ERROR(DecodeSession(it->value(), &s.item));
    out.push_back(std::move(s));
  }
  RETURN_IF_ERROR(it->status());
  for (Stored& s : out) {
    for (it->Seek(ReplayKey(s.id, 0)); it->Valid(); it->Next()) {
      ItemKey k = it->key();
      if (k.objectid != 0 || k.type != ItemType::kReplay || k.offset >> kReplaySeqBits != s.id) {
        break;
      }
      s.replays.insert(k.offset & kRequestMask);
    }
    RETURN_IF_ERROR(it->status());
  }
  return out;
}

Result<uint64_t> SessionStore::NewId() {
  ASSIGN_OR_RETURN(std::optional<std::string> v, items_.Get(SessionKey(0)));
  SessionItem next;
  if (v) RETURN_IF_ERROR(DecodeSession(*v, &next));
  uint64_t id = std::max<uint64_t>(next.key, 1);
  if (id > kMaxSessionId) return Status::Error(EUSERS, "out of session ids");
  next.key = id + 1;
  auto txn = items_.BeginTxn();
  txn->Put(SessionKey(0), EncodeSession(next));
  RETURN_IF_ERROR(items_.Commit(*txn, /*sync=*/false));
  return id;
}

Status SessionStore::Put(uint64_t id, const SessionItem& item) {
  auto txn = items_.BeginTxn();
  txn->Put(SessionKey(id), EncodeSession(item));
  return items_.Commit(*txn, /*sync=*/false);
}

Status SessionStore::Drop(uint64_t id, const std::set<uint64_t>& replays) {
  auto txn = items_.BeginTxn();
  txn->Delete(SessionKey(id));
  for (uint64_t r : replays) txn->Delete(ReplayKey(id, r));
  return items_.Commit(*txn, /*sync=*/false);
}

Result<std::optional<ReplayItem>> SessionStore::GetReplay(uint64_t id, uint64_t request) {
  ASSIGN_OR_RETURN(std::optional<std::string> v, items_.Get(ReplayKey(id, request)));
  if (!v) return std::optional<ReplayItem>();
  ReplayItem item;
  RETURN_IF_ERROR(DecodeReplay(*v, &item));
  return std::optional<ReplayItem>(std::move(item));
}

void SessionStore::PutReplay(Txn& txn, uint64_t id, uint64_t request, const ReplayItem& item) {
  txn.Put(ReplayKey(id, request), EncodeReplay(item));
}

Status SessionStore::Record(uint64_t id, uint64_t request, const ReplayItem& item,
                            std::set<uint64_t>* replays, uint64_t replied_below) {
  auto txn = items_.BeginTxn();
  PutReplay(*txn, id, request, item);
  while (!replays->empty() && *replays->begin() < replied_below) {
    txn->Delete(ReplayKey(id, *replays->begin()));
    replays->erase(replays->begin());
  }
  RETURN_IF_ERROR(items_.Commit(*txn, /*sync=*/false));
  replays->insert(request);
  return Status::Ok();
}

}  // namespace cohfs
