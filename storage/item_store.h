// ItemStore: the metadata items in RocksDB. The only file that includes RocksDB
// headers is item_store.cc; rocksdb::Status is translated to errno there.
//
// Thread: one owner thread (the server's storage executor, or fsck).
// A write or sync failure makes the store read-only: every later write is EIO.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "storage/keys.h"

namespace cohfs {

class ItemIterator {
 public:
  virtual ~ItemIterator() = default;
  virtual void Seek(const ItemKey& key) = 0;
  virtual void SeekToFirst() = 0;  // the very first stored key, even a malformed one
  virtual bool Valid() const = 0;
  virtual void Next() = 0;
  virtual ItemKey key() const = 0;  // CHECKs on a malformed key in the database
  // The current key without the CHECK: EIO when the stored bytes are not a key (fsck).
  virtual Status DecodedKey(ItemKey* key) const = 0;
  virtual std::string_view raw_key() const = 0;
  virtual std::string_view value() const = 0;
  virtual Status status() const = 0;
};

// A transaction: reads see the transaction's own writes; applied atomically by
// ItemStore::Commit (one RocksDB WriteBatch). Dropped uncommitted, it runs its
// abort hooks (in reverse order) so in-memory state can be undone.
class Txn {
 public:
  virtual ~Txn() = default;
  virtual Result<std::optional<std::string>> Get(const ItemKey& key) = 0;
  virtual void Put(const ItemKey& key, std::string_view value) = 0;
  virtual void Delete(const ItemKey& key) = 0;
  virtual std::unique_ptr<ItemIterator> NewIterator() = 0;
  virtual size_t op_count() const = 0;
  virtual void OnAbort(std::function<void()> undo) = 0;
};

struct ItemStoreOptions {
  std::string dir;         // RocksDB directory
  bool create = false;     // create a new, empty store (fails if one exists)
  bool read_only = false;  // fsck opens read-only
};

class ItemStore {
 public:
  // Table files RocksDB keeps open at most (the server reserves descriptors for them).
  static constexpr int kMaxOpenFiles = 128;

  virtual ~ItemStore() = default;
  static Result<std::unique_ptr<ItemStore>> Open(const ItemStoreOptions& options);

  virtual Result<std::optional<std::string>> Get(const ItemKey& key) = 0;
  virtual std::unique_ptr<ItemIterator> NewIterator() = 0;
  virtual std::unique_ptr<Txn> BeginTxn() = 0;
  // Applies the whole transaction or nothing. sync=false: in the WAL (survives
  // a crash of this process), durable after the next SyncWal.
  virtual Status Commit(Txn& txn, bool sync) = 0;
  // Makes every earlier Commit durable (one WAL fsync: the group commit).
  virtual Status SyncWal() = 0;
  virtual bool read_only() const = 0;
  // A RocksDB integer property ("rocksdb.estimate-num-keys", ...); nullopt
  // when unknown. Thread-safe: a metrics scrape reads it from its own thread.
  virtual std::optional<uint64_t> IntProperty(const std::string& name) = 0;
};

}  // namespace cohfs
