#include "client/lease_keeper.h"

#include <gtest/gtest.h>

namespace cohfs {
namespace {

TEST(LeaseKeeper, RenewsAfterAThirdOfTheLeaseWithoutOtherTraffic) {
  LeaseKeeper k(3000, 0);
  EXPECT_FALSE(k.Tick(999).renew);
  EXPECT_TRUE(k.Tick(1000).renew);
  k.OnSent(1000);
  EXPECT_FALSE(k.Tick(1500).renew);
  k.OnSent(1800);  // a request counts as much as a renew
  EXPECT_FALSE(k.Tick(2700).renew);
  EXPECT_TRUE(k.Tick(2800).renew);
}

TEST(LeaseKeeper, WarnsOnceWhenTheServerIsSilentPastTheLease) {
  LeaseKeeper k(3000, 0);
  k.OnHeard(500);
  EXPECT_FALSE(k.Tick(3500).silent);
  LeaseKeeper::Step s = k.Tick(3501);
  EXPECT_TRUE(s.silent);
  EXPECT_EQ(s.silent_ms, 3001);
  EXPECT_FALSE(k.Tick(9000).silent);  // once per silence
  k.OnHeard(9100);
  s = k.Tick(9120);
  EXPECT_TRUE(s.back);
  EXPECT_FALSE(k.Tick(9140).back);
  EXPECT_TRUE(k.Tick(12101).silent);  // a new silence warns again
}

TEST(LeaseKeeper, NoLeaseMeansNothingToDo) {
  LeaseKeeper k(0, 0);
  LeaseKeeper::Step s = k.Tick(1000000);
  EXPECT_FALSE(s.renew);
  EXPECT_FALSE(s.silent);
}

}  // namespace
}  // namespace cohfs
