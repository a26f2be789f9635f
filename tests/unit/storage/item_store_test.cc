#include "storage/item_store.h"

#include <gtest/gtest.h>

#include <vector>

#include "tests/unit/storage/test_volume.h"

namespace cohfs {
namespace {

using test::TempDir;

std::unique_ptr<ItemStore> OpenStore(const std::string& dir, bool create, bool read_only = false) {
  ItemStoreOptions o;
  o.dir = dir;
  o.create = create;
  o.read_only = read_only;
  auto s = ItemStore::Open(o);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(s).value() : nullptr;
}

ItemKey K(uint64_t obj, uint64_t off) { return ItemKey{obj, ItemType::kInode, off}; }

std::vector<ItemKey> Keys(ItemIterator& it, ItemKey from) {
  std::vector<ItemKey> out;
  for (it.Seek(from); it.Valid(); it.Next()) out.push_back(it.key());
  EXPECT_TRUE(it.status().ok());
  return out;
}

TEST(ItemStore, TxnSeesOwnWritesStoreSeesThemOnlyAfterCommit) {
  TempDir d;
  auto store = OpenStore(d.path() + "/db", true);
  ASSERT_NE(store, nullptr);
  {
    auto txn = store->BeginTxn();
    txn->Put(K(1, 0), "one");
    txn->Put(K(3, 0), "three");
    ASSERT_TRUE(store->Commit(*txn, true).ok());
  }
  auto txn = store->BeginTxn();
  txn->Put(K(2, 0), "two");
  txn->Delete(K(3, 0));
  txn->Put(K(1, 0), "uno");
  EXPECT_EQ(txn->op_count(), 3u);
  auto got = txn->Get(K(2, 0));
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->value_or("-"), "two");
  got = txn->Get(K(3, 0));
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(got->has_value());
  got = txn->Get(K(1, 0));
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->value_or("-"), "uno");
  // The txn's iterator merges its writes over the database.
  auto it = txn->NewIterator();
  EXPECT_EQ(Keys(*it, K(0, 0)), (std::vector<ItemKey>{K(1, 0), K(2, 0)}));
  it->Seek(K(1, 0));
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->value(), "uno");
  // The store does not see them yet.
  auto plain = store->NewIterator();
  EXPECT_EQ(Keys(*plain, K(0, 0)), (std::vector<ItemKey>{K(1, 0), K(3, 0)}));
  ASSERT_TRUE(store->Commit(*txn, false).ok());
  ASSERT_TRUE(store->SyncWal().ok());
  auto after = store->NewIterator();
  EXPECT_EQ(Keys(*after, K(0, 0)), (std::vector<ItemKey>{K(1, 0), K(2, 0)}));
  auto one = store->Get(K(1, 0));
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->value_or("-"), "uno");
}

TEST(ItemStore, AbortHooksRunInReverseOnlyWhenUncommitted) {
  TempDir d;
  auto store = OpenStore(d.path() + "/db", true);
  ASSERT_NE(store, nullptr);
  std::vector<int> order;
  {
    auto txn = store->BeginTxn();
    txn->Put(K(1, 0), "x");
    txn->OnAbort([&] { order.push_back(1); });
    txn->OnAbort([&] { order.push_back(2); });
    txn->OnAbort([&] { order.push_back(3); });
  }
  EXPECT_EQ(order, (std::vector<int>{3, 2, 1}));
  auto gone = store->Get(K(1, 0));
  ASSERT_TRUE(gone.ok());
  EXPECT_FALSE(gone->has_value());
  order.clear();
  {
    auto txn = store->BeginTxn();
    txn->OnAbort([&] { order.push_back(1); });
    ASSERT_TRUE(store->Commit(*txn, true).ok());
  }
  EXPECT_TRUE(order.empty());
}

TEST(ItemStore, PersistsAcrossReopenAndOpenModesFailClearly) {
  TempDir d;
  std::string dir = d.path() + "/db";
  {
    ItemStoreOptions o{dir, /*create=*/false, false};
    EXPECT_EQ(ItemStore::Open(o).errno_value(), ENOENT);
  }
  {
    auto store = OpenStore(dir, true);
    ASSERT_NE(store, nullptr);
    auto txn = store->BeginTxn();
    txn->Put(K(7, 9), "kept");
    ASSERT_TRUE(store->Commit(*txn, false).ok());  // in the WAL; close syncs it
  }
  {
    ItemStoreOptions o{dir, /*create=*/true, false};
    EXPECT_EQ(ItemStore::Open(o).errno_value(), EEXIST);
  }
  auto ro = OpenStore(dir, false, /*read_only=*/true);
  ASSERT_NE(ro, nullptr);
  EXPECT_TRUE(ro->read_only());
  auto v = ro->Get(K(7, 9));
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->value_or("-"), "kept");
  std::vector<int> undone;
  {
    auto txn = ro->BeginTxn();
    txn->Put(K(8, 0), "no");
    txn->OnAbort([&] { undone.push_back(1); });
    EXPECT_EQ(ro->Commit(*txn, true).errno_value(), EIO);
  }
  EXPECT_EQ(undone.size(), 1u);  // a refused commit leaves the txn uncommitted
}

TEST(ItemStore, FailedCommitMakesTheStoreReadOnly) {
  TempDir d;
  auto store = OpenStore(d.path() + "/db", true);
  ASSERT_NE(store, nullptr);
  std::vector<int> undone;
  {
    auto txn = store->BeginTxn();
    txn->Put(K(1, 0), std::string(64 << 10, 'v'));
    txn->OnAbort([&] { undone.push_back(1); });
    test::FileSizeLimit limit(1);  // the WAL append fails
    Status st = store->Commit(*txn, true);
    EXPECT_FALSE(st.ok());
    EXPECT_EQ(st.errno_value(), EIO) << st.ToString();
  }
  EXPECT_EQ(undone.size(), 1u);
  EXPECT_TRUE(store->read_only());
  auto txn = store->BeginTxn();
  txn->Put(K(2, 0), "small");
  EXPECT_EQ(store->Commit(*txn, true).errno_value(), EIO);
  EXPECT_EQ(store->SyncWal().errno_value(), EIO);
}

TEST(ItemStore, SeekToFirstAndRawKeysSeeMalformedKeys) {
  TempDir d;
  auto store = OpenStore(d.path() + "/db", true);
  ASSERT_NE(store, nullptr);
  auto txn = store->BeginTxn();
  txn->Put(ItemKey{0, ItemType::kSuper, 0}, "s");
  ASSERT_TRUE(store->Commit(*txn, true).ok());
  auto it = store->NewIterator();
  it->SeekToFirst();
  ASSERT_TRUE(it->Valid());
  ItemKey k;
  ASSERT_TRUE(it->DecodedKey(&k).ok());
  EXPECT_EQ(k, (ItemKey{0, ItemType::kSuper, 0}));
  EXPECT_EQ(it->raw_key(), EncodeKey(k));
}

}  // namespace
}  // namespace cohfs
