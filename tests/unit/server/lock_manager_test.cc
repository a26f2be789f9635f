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

namespace cohfs {
namespace {

std::vector<LockManager::Conflict> ConflictsOf(const LockManager& lm, ClientId c, InodeId ino,
                                               LockMode need) {
  std::vector<LockManager::Conflict> out;
  lm.Conflicts(c, ino, need, &out);
  return out;
}

TEST(LockManagerRecall, AReaderDowngradesAnExclusiveHolderAndAWriterTakesEveryLock) {
  LockManager lm;
  ASSERT_EQ(lm.Acquire(kA, kIno, LockMode::kExclusive), LockMode::kExclusive);
  auto read = ConflictsOf(lm, kB, kIno, LockMode::kShared);
  ASSERT_EQ(read.size(), 1u);
  EXPECT_EQ(read[0].holder, kA);
  EXPECT_EQ(read[0].keep, LockMode::kShared);
  EXPECT_TRUE(ConflictsOf(lm, kA, kIno, LockMode::kExclusive).empty());  // its own lock

  lm.Downgrade(kA, kIno);
  EXPECT_TRUE(ConflictsOf(lm, kB, kIno, LockMode::kShared).empty());
  ASSERT_EQ(lm.Acquire(kB, kIno, LockMode::kShared), LockMode::kShared);
  auto write = ConflictsOf(lm, kC, kIno, LockMode::kExclusive);
  ASSERT_EQ(write.size(), 2u);
  for (const auto& c : write) EXPECT_EQ(c.keep, LockMode::kNone);
}

TEST(LockManagerRecall, AnOutstandingRecallIsSentOnceAndBlocksNewGrantsToItsHolder) {
  LockManager lm;
  ASSERT_EQ(lm.Acquire(kA, kIno, LockMode::kShared), LockMode::kShared);
  auto c = ConflictsOf(lm, kB, kIno, LockMode::kExclusive);
  ASSERT_EQ(c.size(), 1u);
  EXPECT_TRUE(lm.Recall(c[0], 0));
  EXPECT_FALSE(lm.Recall(c[0], 1));  // already asked
  EXPECT_TRUE(lm.RecallPending(kA, kIno));
  // A reply to A crossing the recall must not carry the lock.
  EXPECT_EQ(lm.Grant(kA, kIno, LockMode::kShared, 2), LockMode::kNone);
  lm.Release(kA, kIno);
  EXPECT_FALSE(lm.RecallPending(kA, kIno));
  EXPECT_TRUE(ConflictsOf(lm, kB, kIno, LockMode::kExclusive).empty());
}

TEST(LockManagerRecall, ARecalledInodeIsNotHandedOutWhileContended) {
  LockManager lm(/*contention_ms=*/1000);
  ASSERT_EQ(lm.Acquire(kA, kIno, LockMode::kExclusive), LockMode::kExclusive);
  auto c = ConflictsOf(lm, kB, kIno, LockMode::kExclusive);
  ASSERT_TRUE(lm.Recall(c[0], 5000));
  lm.Release(kA, kIno);
  EXPECT_TRUE(lm.Contended(kIno, 5999));
  EXPECT_EQ(lm.Grant(kB, kIno, LockMode::kExclusive, 5999), LockMode::kNone);
  EXPECT_EQ(lm.Grant(kB, kIno, LockMode::kShared, 5999), LockMode::kNone);
  EXPECT_FALSE(lm.Contended(kIno, 6000));
  EXPECT_EQ(lm.Grant(kB, kIno, LockMode::kExclusive, 6000), LockMode::kExclusive);
}

TEST(LockManagerRecall, DowngradeAnswersARecallToShared) {
  LockManager lm;
  ASSERT_EQ(lm.Acquire(kA, kIno, LockMode::kExclusive), LockMode::kExclusive);
  auto c = ConflictsOf(lm, kB, kIno, LockMode::kShared);
  ASSERT_TRUE(lm.Recall(c[0], 0));
  lm.Downgrade(kA, kIno);
  EXPECT_EQ(lm.HeldBy(kA, kIno), LockMode::kShared);
  EXPECT_FALSE(lm.RecallPending(kA, kIno));
  EXPECT_EQ(lm.Grant(kA, kIno, LockMode::kShared, 1000), LockMode::kShared);  // uncontended again
}

// The recall deadline (DESIGN §7): what is outstanding since a time, once.
TEST(LockManagerRecall, UnansweredRecallsAreReportedOncePastTheirDeadline) {
  LockManager lm;
  const InodeId other(kIno.value + 1), theirs(kIno.value + 2);
  ASSERT_EQ(lm.Acquire(kA, kIno, LockMode::kShared), LockMode::kShared);
  ASSERT_EQ(lm.Acquire(kA, other, LockMode::kShared), LockMode::kShared);
  ASSERT_EQ(lm.Acquire(kB, theirs, LockMode::kShared), LockMode::kShared);
  ASSERT_TRUE(lm.Recall(ConflictsOf(lm, kC, kIno, LockMode::kExclusive)[0], 100));
  ASSERT_TRUE(lm.Recall(ConflictsOf(lm, kC, other, LockMode::kExclusive)[0], 200));
  ASSERT_TRUE(lm.Recall(ConflictsOf(lm, kC, theirs, LockMode::kExclusive)[0], 300));
  EXPECT_TRUE(lm.Unanswered(99).empty());
  lm.Release(kA, kIno);  // answered: no deadline
  EXPECT_TRUE(lm.Unanswered(150).empty());
  EXPECT_EQ(lm.Unanswered(250), std::vector<ClientId>{kA});
  EXPECT_TRUE(lm.Unanswered(250).empty());  // reported once
  // Sent again after a reconnect: the clock starts over.
  lm.RestartRecallClocks(kB, 1000);
  EXPECT_TRUE(lm.Unanswered(999).empty());
  EXPECT_EQ(lm.Unanswered(1000), std::vector<ClientId>{kB});
}

}  // namespace
}  // namespace cohfs

namespace cohfs {
namespace {

TEST(LockManagerBound, PastTheLimitTheOldestLocksAreRecalledWithoutMarkingContention) {
  LockManager lm;
  for (uint64_t i = 1; i <= 10; i++)
    ASSERT_EQ(lm.Acquire(kA, InodeId(i), LockMode::kShared), LockMode::kShared);
  ASSERT_EQ(lm.Acquire(kB, InodeId(1), LockMode::kShared), LockMode::kShared);
  EXPECT_TRUE(lm.TrimTo(10, 100, 0).empty());
  auto recalls = lm.TrimTo(8, 100, 0);
  ASSERT_EQ(recalls.size(), 3u);  // inode 1 (A and B), inode 2 (A)
  for (const auto& r : recalls) {
    EXPECT_TRUE(r.ino == InodeId(1) || r.ino == InodeId(2));
    EXPECT_EQ(r.keep, LockMode::kNone);
  }
  EXPECT_FALSE(lm.Contended(InodeId(1), 0));
  EXPECT_TRUE(lm.TrimTo(8, 100, 0).empty());  // already asked, not asked again
  lm.Release(kA, InodeId(1));
  lm.Release(kB, InodeId(1));
  lm.Release(kA, InodeId(2));
  EXPECT_EQ(lm.resource_count(), 8u);
}

}  // namespace
}  // namespace cohfs

namespace cohfs {
namespace {

TEST(LockManagerRefs, AReferenceBlocksNobodyAndGoesWithItsClient) {
  LockManager lm;
  lm.AddRef(kA, kIno);
  EXPECT_TRUE(lm.IsReferenced(kIno));
  EXPECT_FALSE(lm.IsHeld(kIno));
  std::vector<LockManager::Conflict> c;
  lm.Conflicts(kB, kIno, LockMode::kExclusive, &c);
  EXPECT_TRUE(c.empty());
  lm.AddRef(kB, kIno);
  lm.DropRef(kB, kIno);
  EXPECT_TRUE(lm.IsReferenced(kIno));
  EXPECT_EQ(lm.DropRefs(kA), std::vector<InodeId>{kIno});
  EXPECT_FALSE(lm.IsReferenced(kIno));
}

}  // namespace
}  // namespace cohfs
