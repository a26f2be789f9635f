#include "common/crc32c.h"

#include <gtest/gtest.h>

#include <string>

namespace cohfs {
namespace {

TEST(Crc32c, KnownVectors) {
  // RFC 3720 B.4 test vectors.
  std::string zeros(32, '\0');
  EXPECT_EQ(Crc32c(0, zeros.data(), zeros.size()), 0x8A9136AAu);
  std::string ones(32, '\xff');
  EXPECT_EQ(Crc32c(0, ones.data(), ones.size()), 0x62A8AB43u);
  EXPECT_EQ(Crc32c(0, "123456789", 9), 0xE3069283u);
}

TEST(Crc32c, ExtendsAcrossCalls) {
  std::string s = "the quick brown fox jumps over the lazy dog, twice over";
  uint32_t whole = Crc32c(0, s.data(), s.size());
  uint32_t part = Crc32c(0, s.data(), 10);
  part = Crc32c(part, s.data() + 10, s.size() - 10);
  EXPECT_EQ(whole, part);
}

TEST(Crc32c, DetectsSingleBitFlip) {
  std::string block(4096, 'a');
  uint32_t before = Crc32c(0, block.data(), block.size());
  block[1234] ^= 0x10;
  EXPECT_NE(before, Crc32c(0, block.data(), block.size()));
}

}  // namespace
}  // namespace cohfs
