#include "common/file_locks.h"

#include <gtest/gtest.h>

namespace cohfs {
namespace {

const InodeId kIno{9};

FileLock Lock(uint64_t client, uint64_t owner, FileLock::Type type, uint64_t start, uint64_t end,
              bool flock = false) {
  FileLock l;
  l.client = ClientId(client);
  l.owner = owner;
  l.type = type;
  l.start = start;
  l.end = end;
  l.flock = flock;
  return l;
}

using T = FileLock::Type;

TEST(FileLocks, WriteLocksExcludeOtherOwnersOnOverlappingRangesOnly) {
  FileLocks fl;
  ASSERT_TRUE(fl.Set(kIno, Lock(1, 1, T::kWrite, 0, 9)));
  EXPECT_FALSE(fl.Set(kIno, Lock(2, 1, T::kWrite, 5, 14)));  // same owner id, other client
  EXPECT_FALSE(fl.Set(kIno, Lock(1, 2, T::kRead, 9, 9)));    // other owner, same client
  EXPECT_TRUE(fl.Set(kIno, Lock(2, 1, T::kWrite, 10, 19)));
  auto held = fl.Test(kIno, Lock(3, 1, T::kRead, 0, FileLock::kToEnd));
  ASSERT_TRUE(held.has_value());
  EXPECT_EQ(held->client, ClientId(1));
}

TEST(FileLocks, ReadLocksShareAndUnlockSplitsARange) {
  FileLocks fl;
  ASSERT_TRUE(fl.Set(kIno, Lock(1, 1, T::kRead, 0, 99)));
  ASSERT_TRUE(fl.Set(kIno, Lock(2, 1, T::kRead, 50, 149)));
  ASSERT_TRUE(fl.Set(kIno, Lock(1, 1, T::kUnlock, 10, 19)));
  EXPECT_EQ(fl.count(kIno), 3u);  // [0,9] [20,99] of client 1, [50,149] of client 2
  ASSERT_TRUE(fl.Set(kIno, Lock(2, 1, T::kUnlock, 0, FileLock::kToEnd)));
  EXPECT_TRUE(fl.Set(kIno, Lock(3, 1, T::kWrite, 10, 19)));  // the hole
  EXPECT_FALSE(fl.Set(kIno, Lock(3, 1, T::kWrite, 9, 9)));   // still held
}

TEST(FileLocks, AnOwnersNewLockReplacesItsOldOneWhereTheyOverlap) {
  FileLocks fl;
  ASSERT_TRUE(fl.Set(kIno, Lock(1, 1, T::kWrite, 0, 99)));
  ASSERT_TRUE(fl.Set(kIno, Lock(1, 1, T::kRead, 0, 49)));  // downgrade half
  EXPECT_TRUE(fl.Set(kIno, Lock(2, 1, T::kRead, 0, 49)));
  EXPECT_FALSE(fl.Set(kIno, Lock(2, 1, T::kRead, 50, 50)));
}

TEST(FileLocks, FlockAndRecordLocksDoNotConflictAndSessionsEndCleanly) {
  FileLocks fl;
  ASSERT_TRUE(fl.Set(kIno, Lock(1, 1, T::kWrite, 0, FileLock::kToEnd, /*flock=*/true)));
  EXPECT_TRUE(fl.Set(kIno, Lock(2, 1, T::kWrite, 0, FileLock::kToEnd)));
  EXPECT_FALSE(fl.Set(kIno, Lock(2, 7, T::kRead, 0, FileLock::kToEnd, true)));
  fl.ReleaseClient(ClientId(1));
  EXPECT_TRUE(fl.Set(kIno, Lock(2, 7, T::kRead, 0, FileLock::kToEnd, true)));
  fl.ReleaseClient(ClientId(2));
  EXPECT_EQ(fl.count(kIno), 0u);
}

}  // namespace
}  // namespace cohfs
