#include "server/leases.h"

#include <gtest/gtest.h>

namespace cohfs {
namespace {

TEST(Leases, SilentPastTheLeaseExpiresOnceAndOthersStay) {
  Leases l(2000);
  l.Renew(1, 0);
  l.Renew(2, 0);
  EXPECT_TRUE(l.TakeExpired(2000).empty());  // exactly one lease is not past it
  l.Renew(2, 1500);                          // any traffic renews
  auto e = l.TakeExpired(2001);
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].conn, 1u);
  EXPECT_EQ(e[0].silent_ms, 2001);
  EXPECT_TRUE(l.TakeExpired(2500).empty());  // reported once: it is forgotten
  EXPECT_EQ(l.size(), 1u);
  e = l.TakeExpired(3501);
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].conn, 2u);
}

TEST(Leases, ForgottenConnectionsNeverExpire) {
  Leases l(100);
  l.Renew(7, 0);
  l.Forget(7);
  EXPECT_TRUE(l.TakeExpired(1000).empty());
  EXPECT_EQ(l.size(), 0u);
}

TEST(Leases, CheckIntervalIsAFractionOfTheLeaseWithinBounds) {
  EXPECT_EQ(Leases(2000).check_interval_ms(), 250);
  EXPECT_EQ(Leases(15000).check_interval_ms(), 1000);
  EXPECT_EQ(Leases(20).check_interval_ms(), 10);
}

}  // namespace
}  // namespace cohfs
