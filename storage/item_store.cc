#include "storage/item_store.h"

#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/write_batch_with_index.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <filesystem>

#include "common/log.h"

namespace cohfs {
namespace {

// The one place rocksdb::Status becomes an errno.
Status FromRocks(const rocksdb::Status& s, const char* what) {
  if (s.ok()) return Status::Ok();
  int err = EIO;  // IOError, Corruption, Incomplete, ShutdownInProgress, ...
  if (s.IsNoSpace()) {
    err = ENOSPC;
  } else if (s.IsNotFound() || s.IsPathNotFound()) {
    err = ENOENT;
  } else if (s.IsInvalidArgument()) {
    err = EINVAL;
  } else if (s.IsNotSupported()) {
    err = EOPNOTSUPP;
  } else if (s.IsBusy() || s.IsTryAgain()) {
    err = EAGAIN;
  } else if (s.IsTimedOut()) {
    err = ETIMEDOUT;
  }
  return Status::Error(err, std::string(what) + ": " + s.ToString());
}

// RocksDB's warnings and errors go to our log instead of a LOG file in the
// metadata directory. Besides keeping one log, this matters for failures: the
// Debian build keeps assertions, and its file logger aborts the process on the
// first line after a failed write to LOG (e.g. a full disk).
class RocksLogger : public rocksdb::Logger {
 public:
  RocksLogger() : rocksdb::Logger(rocksdb::InfoLogLevel::WARN_LEVEL) {}
  void Logv(const char* format, va_list ap) override {
    Logv(rocksdb::InfoLogLevel::INFO_LEVEL, format, ap);
  }
  void Logv(const rocksdb::InfoLogLevel level, const char* format, va_list ap) override {
    if (level < GetInfoLogLevel()) return;
    char buf[1024];
    int n = std::vsnprintf(buf, sizeof(buf), format, ap);
    for (size_t len = std::min<size_t>(n < 0 ? 0 : n, sizeof(buf) - 1);
         len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' ');) {
      buf[--len] = '\0';
    }
    if (level >= rocksdb::InfoLogLevel::ERROR_LEVEL) {
      LOG(Error) << "rocksdb: " << buf;
    } else {
      LOG(Warn) << "rocksdb: " << buf;
    }
  }
};

class RocksIterator : public ItemIterator {
 public:
  explicit RocksIterator(std::unique_ptr<rocksdb::Iterator> it) : it_(std::move(it)) {}
  void Seek(const ItemKey& key) override { it_->Seek(EncodeKey(key)); }
  void SeekToFirst() override { it_->SeekToFirst(); }
  bool Valid() const override { return it_->Valid(); }
  void Next() override { it_->Next(); }
  ItemKey key() const override {
    ItemKey k;
    Status st = DecodedKey(&k);
    CHECK_MSG(st.ok(), st.ToString().c_str());
    return k;
  }
  Status DecodedKey(ItemKey* key) const override { return DecodeKey(raw_key(), key); }
  std::string_view raw_key() const override {
    return std::string_view(it_->key().data(), it_->key().size());
  }
  std::string_view value() const override {
    return std::string_view(it_->value().data(), it_->value().size());
  }
  Status status() const override { return FromRocks(it_->status(), "iterator"); }

 private:
  std::unique_ptr<rocksdb::Iterator> it_;
};

class RocksTxn : public Txn {
 public:
  explicit RocksTxn(rocksdb::DB* db) : db_(db), batch_(rocksdb::BytewiseComparator(), 0, true) {}
  ~RocksTxn() override {
    if (committed_) return;
    for (auto it = undo_.rbegin(); it != undo_.rend(); ++it) (*it)();
  }
  Result<std::optional<std::string>> Get(const ItemKey& key) override {
    std::string value;
    rocksdb::Status s =
        batch_.GetFromBatchAndDB(db_, rocksdb::ReadOptions(), EncodeKey(key), &value);
    if (s.IsNotFound()) return std::optional<std::string>();
    if (!s.ok()) return FromRocks(s, "get");
    return std::optional<std::string>(std::move(value));
  }
  void Put(const ItemKey& key, std::string_view value) override {
    CHECK(batch_.Put(EncodeKey(key), rocksdb::Slice(value.data(), value.size())).ok());
    ops_++;
  }
  void Delete(const ItemKey& key) override {
    CHECK(batch_.Delete(EncodeKey(key)).ok());
    ops_++;
  }
  std::unique_ptr<ItemIterator> NewIterator() override {
    std::unique_ptr<rocksdb::Iterator> base(db_->NewIterator(rocksdb::ReadOptions()));
    return std::make_unique<RocksIterator>(
        std::unique_ptr<rocksdb::Iterator>(batch_.NewIteratorWithBase(base.release())));
  }
  size_t op_count() const override { return ops_; }
  void OnAbort(std::function<void()> undo) override { undo_.push_back(std::move(undo)); }

  rocksdb::WriteBatch* batch() { return batch_.GetWriteBatch(); }
  void MarkCommitted() { committed_ = true; }
  bool committed() const { return committed_; }

 private:
  rocksdb::DB* db_;
  rocksdb::WriteBatchWithIndex batch_;
  size_t ops_ = 0;
  bool committed_ = false;
  std::vector<std::function<void()>> undo_;
};

class RocksItemStore : public ItemStore {
 public:
  RocksItemStore(std::unique_ptr<rocksdb::DB> db, bool read_only)
      : db_(std::move(db)), read_only_(read_only) {}
  ~RocksItemStore() override {
    if (!read_only_ && !failed_) {
      rocksdb::Status s = db_->SyncWAL();
      if (!s.ok()) LOG(Error) << "final WAL sync: " << s.ToString();
    }
    (void)db_->Close();
  }

  std::optional<uint64_t> IntProperty(const std::string& name) override {
    uint64_t v = 0;
    if (!db_->GetIntProperty(name, &v)) return std::nullopt;
    return v;
  }
  Result<std::optional<std::string>> Get(const ItemKey& key) override {
    std::string value;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), EncodeKey(key), &value);
    if (s.IsNotFound()) return std::optional<std::string>();
    if (!s.ok()) return FromRocks(s, "get");
    return std::optional<std::string>(std::move(value));
  }
  std::unique_ptr<ItemIterator> NewIterator() override {
    return std::make_unique<RocksIterator>(
        std::unique_ptr<rocksdb::Iterator>(db_->NewIterator(rocksdb::ReadOptions())));
  }
  std::unique_ptr<Txn> BeginTxn() override { return std::make_unique<RocksTxn>(db_.get()); }

  Status Commit(Txn& txn, bool sync) override {
    if (read_only_ || failed_) return Status::Error(EIO, "metadata store is read-only");
    auto& t = static_cast<RocksTxn&>(txn);
    CHECK_MSG(!t.committed(), "a transaction is committed once");
    rocksdb::WriteOptions wo;
    wo.sync = sync;
    rocksdb::Status s = db_->Write(wo, t.batch());
    if (!s.ok()) {
      failed_ = true;  // never retry: from now on every write is EIO
      LOG(Error) << "metadata commit failed, store is now read-only: " << s.ToString();
      return FromRocks(s, "commit");
    }
    t.MarkCommitted();
    return Status::Ok();
  }

  Status SyncWal() override {
    if (read_only_) return Status::Ok();
    if (failed_) return Status::Error(EIO, "metadata store is read-only");
    rocksdb::Status s = db_->SyncWAL();
    if (!s.ok()) {
      failed_ = true;
      LOG(Error) << "WAL sync failed, store is now read-only: " << s.ToString();
      return FromRocks(s, "sync");
    }
    return Status::Ok();
  }
  bool read_only() const override { return read_only_ || failed_; }

 private:
  std::unique_ptr<rocksdb::DB> db_;
  bool read_only_;
  bool failed_ = false;
};

}  // namespace

Result<std::unique_ptr<ItemStore>> ItemStore::Open(const ItemStoreOptions& options) {
  // Say plainly what is wrong rather than pass on RocksDB's InvalidArgument.
  std::error_code ec;
  bool exists = std::filesystem::exists(options.dir + "/CURRENT", ec);
  if (options.create && exists) {
    return Status::Error(EEXIST, "a metadata store already exists in " + options.dir);
  }
  if (!options.create && !exists) {
    return Status::Error(ENOENT, "no metadata store in " + options.dir);
  }
  if (options.create) {
    std::filesystem::create_directories(options.dir, ec);
    if (ec) return Status::Error(ec.value(), "create " + options.dir + ": " + ec.message());
  }
  // A metadata store of many small items: bloom filters for point lookups, a
  // 256 MiB block cache, two background jobs (the machine is shared with data I/O).
  rocksdb::Options o;
  o.create_if_missing = options.create;
  o.error_if_exists = options.create;
  o.max_background_jobs = 2;
  o.max_open_files = ItemStore::kMaxOpenFiles;
  o.write_buffer_size = 64 << 20;
  o.compression = rocksdb::kNoCompression;
  o.info_log = std::make_shared<RocksLogger>();
  rocksdb::BlockBasedTableOptions t;
  t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  t.block_cache = rocksdb::NewLRUCache(256 << 20);
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  rocksdb::DB* db = nullptr;
  rocksdb::Status s = options.read_only ? rocksdb::DB::OpenForReadOnly(o, options.dir, &db)
                                        : rocksdb::DB::Open(o, options.dir, &db);
  if (!s.ok()) return FromRocks(s, ("open metadata store " + options.dir).c_str());
  return std::unique_ptr<ItemStore>(
      new RocksItemStore(std::unique_ptr<rocksdb::DB>(db), options.read_only));
}

}  // namespace cohfs
