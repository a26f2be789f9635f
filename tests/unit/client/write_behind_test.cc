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
      [&](InodeId ino, const Caller&, uint64_t off, std::string data) {
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
      [&](InodeId, const Caller&, uint64_t, std::string) {
        calls++;
        return Status::Error(ENOSPC);
      },
      1 << 20);
  ASSERT_TRUE(*wb.Write(InodeId(5), Caller{}, "abc", [] { return std::optional<uint64_t>(0); }));
  EXPECT_EQ(wb.Flush(InodeId(5)).errno_value(), ENOSPC);
  EXPECT_TRUE(wb.Flush(InodeId(5)).ok());
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace cohfs
