#include "common/squash.h"

#include <gtest/gtest.h>

namespace cohfs {
namespace {

TEST(Squash, RootSquashMapsOnlyRootsIds) {
  Caller root = Squashed(Caller{0, 0, {0, 10}, 7}, Squash::kRoot);
  EXPECT_EQ(root.uid, kNobodyUid);
  EXPECT_EQ(root.gid, kNogroupGid);
  EXPECT_EQ(root.groups, (std::vector<uint32_t>{kNogroupGid, 10}));
  EXPECT_EQ(root.pid, 7u);
  Caller user = Squashed(Caller{1000, 0, {50}, 0}, Squash::kRoot);
  EXPECT_EQ(user.uid, 1000u);
  EXPECT_EQ(user.gid, kNogroupGid);  // gid 0 is root's group, whoever claims it
  EXPECT_EQ(user.groups, std::vector<uint32_t>{50});
}

TEST(Squash, AllSquashMapsEveryone) {
  Caller user = Squashed(Caller{1000, 1000, {50}, 0}, Squash::kAll);
  EXPECT_EQ(user.uid, kNobodyUid);
  EXPECT_EQ(user.gid, kNogroupGid);
  EXPECT_TRUE(user.groups.empty());
  Caller none = Squashed(Caller{0, 0, {0}, 0}, Squash::kNone);
  EXPECT_EQ(none.uid, 0u);
  EXPECT_EQ(none.groups, std::vector<uint32_t>{0});
}

}  // namespace
}  // namespace cohfs
