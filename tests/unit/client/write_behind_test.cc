// WriteBehind: buffered data goes to the sender in order, once, and the last
// close forgets the buffer (under ASan this also checks that dropping a buffer
// never touches it after it is freed: the simulation once crashed there).
#include "client/write_behind.h"

#include <gtest/gtest.h>

#include <vector>

namespace cohfs {
namespace {

struct Sent {
  InodeId ino;
  uint64_t offset;
  std::string data;
};

TEST(WriteBehind, ContiguousWritesGoAsOneAndTheLastCloseDropsTheBuffer) {
  std::vector<Sent> sent;
  WriteBehind wb(
      [&](InodeId ino, const Caller&, uint64_t off, std::string data, uint64_t) {
        sent.push_back({ino, off, std::move(data)});
        return Status::Ok();
      },
      1 << 20);
  auto at = [](uint64_t off) { return [off]() -> std::optional<uint64_t> { return off; }; };
  ASSERT_TRUE(*wb.Write(InodeId(5), Caller{}, "abc", at(0)));
  ASSERT_TRUE(*wb.Write(InodeId(5), Caller{}, "def", at(3)));
  EXPECT_TRUE(wb.Holds(InodeId(5)));
  EXPECT_TRUE(sent.empty());
  ASSERT_TRUE(wb.FlushAndDrop(InodeId(5)).ok());
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].offset, 0u);
  EXPECT_EQ(sent[0].data, "abcdef");
  EXPECT_FALSE(wb.Holds(InodeId(5)));
  EXPECT_EQ(wb.buffered_inodes(), 0u);
  // Not owned: the write is not taken.
  EXPECT_FALSE(*wb.Write(InodeId(6), Caller{}, "x", [] { return std::optional<uint64_t>(); }));
}

TEST(WriteBehind, ASendersErrorIsReportedOnceByTheNextFlush) {
  int calls = 0;
  WriteBehind wb(
      [&](InodeId, const Caller&, uint64_t, std::string, uint64_t) {
        calls++;
        return Status::Error(ENOSPC);
      },
      1 << 20);
  ASSERT_TRUE(*wb.Write(InodeId(5), Caller{}, "abc", [] { return std::optional<uint64_t>(0); }));
  EXPECT_EQ(wb.Flush(InodeId(5)).errno_value(), ENOSPC);
  EXPECT_TRUE(wb.Flush(InodeId(5)).ok());
  EXPECT_EQ(calls, 1);
}

// Space grants: data is taken only while the grant covers every block it may
// allocate on the server; each send carries its buffer's charge, once.
TEST(WriteBehind, TakesDataOnlyWithinTheGrantAndSendsItsCharge) {
  SpaceGrant grant;
  std::vector<uint64_t> charges;
  WriteBehind wb(
      [&](InodeId, const Caller&, uint64_t, std::string, uint64_t charge) {
        charges.push_back(charge);
        return Status::Ok();
      },
      1 << 20, {}, &grant);
  auto at = [](uint64_t off) { return [off]() -> std::optional<uint64_t> { return off; }; };
  // No grant yet: nothing is taken (the caller writes through).
  EXPECT_FALSE(*wb.Write(InodeId(5), Caller{}, "abc", at(0)));
  grant.Add(4 * kBlockBytes);
  // 100 bytes at 4090 span two blocks: three charged.
  std::string hundred(100, 'x');
  ASSERT_TRUE(*wb.Write(InodeId(5), Caller{}, hundred, at(4090)));
  EXPECT_EQ(grant.charged(), 3u * kBlockBytes);
  // Contiguous: the buffer's charge grows to cover it whole, not per write.
  ASSERT_TRUE(*wb.Write(InodeId(5), Caller{}, "yz", at(4190)));
  EXPECT_EQ(grant.charged(), 3u * kBlockBytes);
  // Another file would need two more blocks: past the grant, refused whole.
  EXPECT_FALSE(*wb.Write(InodeId(6), Caller{}, "q", at(0)));
  EXPECT_EQ(grant.charged(), 3u * kBlockBytes);
  ASSERT_TRUE(wb.Flush(InodeId(5)).ok());
  ASSERT_EQ(charges.size(), 1u);
  EXPECT_EQ(charges[0], 3u * kBlockBytes);
  // Still charged until the server's answer settles it.
  EXPECT_FALSE(*wb.Write(InodeId(6), Caller{}, "q", at(0)));
  grant.Settle(charges[0]);
  EXPECT_EQ(grant.charged(), 0u);
  EXPECT_EQ(grant.granted(), 1u * kBlockBytes);
  EXPECT_FALSE(*wb.Write(InodeId(6), Caller{}, "q", at(0)));  // needs two blocks
  grant.Add(kBlockBytes);
  EXPECT_TRUE(*wb.Write(InodeId(6), Caller{}, "q", at(0)));
}

TEST(SpaceGrant, ChargeCoversEveryBlockTouchedAndOneMore) {
  EXPECT_EQ(SpaceGrant::ChargeFor(0, 0), 0u);
  EXPECT_EQ(SpaceGrant::ChargeFor(0, 1), 2u * kBlockBytes);
  EXPECT_EQ(SpaceGrant::ChargeFor(0, kBlockBytes), 2u * kBlockBytes);
  EXPECT_EQ(SpaceGrant::ChargeFor(1, kBlockBytes), 3u * kBlockBytes);
  EXPECT_EQ(SpaceGrant::ChargeFor(kBlockBytes, 1u << 20), (256u + 1) * kBlockBytes);
  SpaceGrant g;
  g.Add(10);
  EXPECT_TRUE(g.TryCharge(6));
  EXPECT_FALSE(g.TryCharge(5));
  EXPECT_TRUE(g.TryCharge(4));
  g.Settle(6);
  EXPECT_EQ(g.granted(), 4u);
  EXPECT_EQ(g.charged(), 4u);
  EXPECT_FALSE(g.TryCharge(1));
}

}  // namespace
}  // namespace cohfs
