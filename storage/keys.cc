#include "storage/keys.h"

namespace cohfs {

std::string EncodeKey(const ItemKey& key) {
  std::string s(kEncodedKeyBytes, '\0');
  for (int i = 0; i < 8; i++) s[i] = static_cast<char>(key.objectid >> (56 - 8 * i));
  s[8] = static_cast<char>(key.type);
  for (int i = 0; i < 8; i++) s[9 + i] = static_cast<char>(key.offset >> (56 - 8 * i));
  return s;
}

Status DecodeKey(std::string_view bytes, ItemKey* key) {
  if (bytes.size() != kEncodedKeyBytes) return Status::Error(EIO, "bad key length");
  uint8_t type = static_cast<uint8_t>(bytes[8]);
  if (type < static_cast<uint8_t>(ItemType::kInode) ||
      type > static_cast<uint8_t>(ItemType::kInodeRef)) {
    return Status::Error(EIO, "unknown item type " + std::to_string(type));
  }
  uint64_t obj = 0, off = 0;
  for (int i = 0; i < 8; i++) obj = (obj << 8) | static_cast<uint8_t>(bytes[i]);
  for (int i = 0; i < 8; i++) off = (off << 8) | static_cast<uint8_t>(bytes[9 + i]);
  key->objectid = obj;
  key->type = static_cast<ItemType>(type);
  key->offset = off;
  return Status::Ok();
}

uint64_t NameHash(std::string_view name) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a 64
  for (char c : name) h = (h ^ static_cast<uint8_t>(c)) * 1099511628211ull;
  return (h ^ (h >> 63)) & ((1ull << 63) - 1);
}

}  // namespace cohfs
