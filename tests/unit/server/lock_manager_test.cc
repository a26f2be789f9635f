#include "server/lock_manager.h"

#include <gtest/gtest.h>

namespace cohfs {
namespace {

const ClientId kA{1}, kB{2}, kC{3};
const InodeId kIno{42};

TEST(LockManager, SharedHoldersCoexist) {
  LockManager lm;
  EXPECT_EQ(lm.Acquire(kA, kIno, LockMode::kShared), LockMode::kShared);
  EXPECT_EQ(lm.Acquire(kB, kIno, LockMode::kShared), LockMode::kShared);
  EXPECT_EQ(lm.HeldBy(kA, kIno), LockMode::kShared);
  EXPECT_EQ(lm.HeldBy(kB, kIno), LockMode::kShared);
}

TEST(LockManager, ExclusiveConflictsReportHolders) {
  LockManager lm;
  lm.Acquire(kA, kIno, LockMode::kShared);
  lm.Acquire(kB, kIno, LockMode::kShared);
  std::vector<ClientId> conflicts;
  EXPECT_EQ(lm.Acquire(kC, kIno, LockMode::kExclusive, &conflicts), LockMode::kNone);
  ASSERT_EQ(conflicts.size(), 2u);
  EXPECT_EQ(lm.HeldBy(kC, kIno), LockMode::kNone);
  // Upgrading a sole holder succeeds; with another holder it conflicts.
  std::vector<ClientId> c2;
  EXPECT_EQ(lm.Acquire(kA, kIno, LockMode::kExclusive, &c2), LockMode::kShared);
  EXPECT_EQ(c2, std::vector<ClientId>{kB});
  lm.Release(kB, kIno);
  EXPECT_EQ(lm.Acquire(kA, kIno, LockMode::kExclusive), LockMode::kExclusive);
  EXPECT_EQ(lm.Acquire(kB, kIno, LockMode::kShared), LockMode::kNone);
}

TEST(LockManager, StrongerModeIsKept) {
  LockManager lm;
  lm.Acquire(kA, kIno, LockMode::kExclusive);
  EXPECT_EQ(lm.Acquire(kA, kIno, LockMode::kShared), LockMode::kExclusive);
}

TEST(LockManager, ReleaseAllDropsEverythingOfOneClient) {
  LockManager lm;
  lm.Acquire(kA, InodeId(1), LockMode::kShared);
  lm.Acquire(kA, InodeId(2), LockMode::kExclusive);
  lm.Acquire(kB, InodeId(1), LockMode::kShared);
  lm.Release(kA, InodeId(2));
  auto released = lm.ReleaseAll(kA);
  EXPECT_EQ(released, std::vector<InodeId>{InodeId(1)});
  EXPECT_FALSE(lm.IsHeld(InodeId(2)));
  EXPECT_TRUE(lm.IsHeld(InodeId(1)));
  EXPECT_EQ(lm.HeldBy(kA, InodeId(1)), LockMode::kNone);
  EXPECT_EQ(lm.resource_count(), 1u);
}

}  // namespace
}  // namespace cohfs
