#include "storage/keys.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <tuple>
#include <vector>

namespace cohfs {
namespace {

TEST(Keys, RoundTripAndNaturalOrder) {
  std::vector<ItemKey> keys = {{0, ItemType::kOrphan, 5},        {0, ItemType::kFree, 1ull << 40},
                               {1, ItemType::kInode, 0},         {1, ItemType::kDirIndex, 3},
                               {1, ItemType::kDirIndex, 256},    {2, ItemType::kInode, 0},
                               {256, ItemType::kInode, 0},       {256, ItemType::kExtent, 4096},
                               {1ull << 33, ItemType::kInode, 0}};
  std::vector<std::string> encoded;
  for (auto& k : keys) {
    std::string e = EncodeKey(k);
    ASSERT_EQ(e.size(), kEncodedKeyBytes);
    ItemKey back;
    ASSERT_TRUE(DecodeKey(e, &back).ok());
    EXPECT_EQ(back, k);
    encoded.push_back(e);
  }
  // Bytewise order of the encodings is the numeric order of (objectid, type, offset).
  EXPECT_TRUE(std::is_sorted(encoded.begin(), encoded.end()));
}

TEST(Keys, GoldenEncoding) {
  // docs/disk-format.md: objectid big-endian, type byte, offset big-endian.
  std::string e = EncodeKey({0x0102030405060708ull, ItemType::kExtent, 0xa1a2a3a4a5a6a7a8ull});
  EXPECT_EQ(e, std::string("\x01\x02\x03\x04\x05\x06\x07\x08\x07"
                           "\xa1\xa2\xa3\xa4\xa5\xa6\xa7\xa8",
                           17));
  EXPECT_EQ(EncodeKey({0, ItemType::kSuper, 0}),
            std::string("\0\0\0\0\0\0\0\0\x0a\0\0\0\0\0\0\0\0", 17));
}

TEST(Keys, BytewiseOrderIsNumericOrderForRandomKeys) {
  std::mt19937_64 rng(42);
  auto pick = [&](int shift) { return rng() >> shift; };
  std::vector<ItemKey> keys;
  for (int i = 0; i < 2000; i++) {
    // Mix of small and huge values so that byte carries and high bits both matter.
    uint64_t obj = (i % 3 == 0) ? pick(60) : pick(static_cast<int>(rng() % 64));
    uint64_t off = (i % 2 == 0) ? pick(56) : rng();
    auto type = static_cast<ItemType>(1 + rng() % 10);
    keys.push_back({obj, type, off});
  }
  auto tuple = [](const ItemKey& k) {
    return std::make_tuple(k.objectid, static_cast<uint8_t>(k.type), k.offset);
  };
  std::vector<ItemKey> by_tuple = keys;
  std::sort(by_tuple.begin(), by_tuple.end(),
            [&](const ItemKey& a, const ItemKey& b) { return tuple(a) < tuple(b); });
  std::vector<ItemKey> by_bytes = keys;
  std::sort(by_bytes.begin(), by_bytes.end(),
            [](const ItemKey& a, const ItemKey& b) { return EncodeKey(a) < EncodeKey(b); });
  EXPECT_EQ(by_tuple, by_bytes);
}

TEST(Keys, AllItemsOfAnInodeAreAdjacent) {
  // Every item of inode 5 sorts after inode 4's last possible key and before inode 6's first.
  std::string low = EncodeKey({4, ItemType::kSuper, ~0ull});
  std::string high = EncodeKey({6, ItemType::kInode, 0});
  for (uint8_t t = 1; t <= 10; t++) {
    for (uint64_t off : {0ull, 1ull, ~0ull}) {
      std::string k = EncodeKey({5, static_cast<ItemType>(t), off});
      EXPECT_LT(low, k);
      EXPECT_LT(k, high);
    }
  }
}

TEST(Keys, MalformedKeysAreEio) {
  ItemKey k;
  EXPECT_EQ(DecodeKey("", &k).errno_value(), EIO);
  EXPECT_EQ(DecodeKey("short", &k).errno_value(), EIO);
  std::string good = EncodeKey({1, ItemType::kInode, 0});
  EXPECT_EQ(DecodeKey(good + "x", &k).errno_value(), EIO);
  EXPECT_EQ(DecodeKey(good.substr(0, 16), &k).errno_value(), EIO);
  for (char type : {'\0', '\x0e', '\xff'}) {
    std::string bad = good;
    bad[8] = type;
    EXPECT_EQ(DecodeKey(bad, &k).errno_value(), EIO) << int(type);
  }
}

TEST(Keys, NameHashGoldenValues) {
  // The on-disk format depends on these never changing (FNV-1a 64, folded to 63 bits).
  EXPECT_EQ(NameHash(""), 0x14650fb0739d0383ull);
  EXPECT_EQ(NameHash("a"), 0x44bd8ad473cd9906ull);
  EXPECT_EQ(NameHash("Makefile"), 0x28aef38f95103696ull);
  EXPECT_EQ(NameHash("user.comment"), 0x40204401df1b1997ull);
  std::mt19937_64 rng(7);
  for (int i = 0; i < 1000; i++) {
    std::string name(1 + rng() % 40, '\0');
    for (char& c : name) c = static_cast<char>(rng());
    EXPECT_LT(NameHash(name), 1ull << 63);
  }
}

}  // namespace
}  // namespace cohfs
