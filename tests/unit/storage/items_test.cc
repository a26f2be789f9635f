#include "storage/items.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace cohfs {
namespace {

InodeItem SampleInode() {
  InodeItem i;
  i.mode = 0100644;
  i.uid = 1000;
  i.gid = 100;
  i.nlink = 3;
  i.size = 1ull << 40;
  i.allocated_bytes = 1ull << 20;
  i.atime_ns = -5;
  i.mtime_ns = 1700000000123456789;
  i.ctime_ns = 42;
  i.generation = 9;
  i.flags = 1;
  i.rdev = 0x0801;
  i.parent = 77;
  i.next_dir_seq = 99;
  return i;
}

SuperItem SampleSuper() {
  SuperItem s;
  s.format_version = 1;
  for (int i = 0; i < 16; i++) s.uuid[i] = static_cast<uint8_t>(0xa0 + i);
  s.device_bytes = 64ull << 20;
  s.data_start = 1 << 20;
  s.next_inode = 12345;
  s.generation = 6;
  return s;
}

// Every strict prefix, a trailing extra byte and a wrong version byte are EIO.
template <typename T>
void ExpectStrict(const std::string& encoded, Status (*decode)(std::string_view, T*)) {
  T v;
  ASSERT_TRUE(decode(encoded, &v).ok());
  for (size_t n = 0; n < encoded.size(); n++) {
    EXPECT_EQ(decode(encoded.substr(0, n), &v).errno_value(), EIO) << "prefix of " << n;
  }
  EXPECT_EQ(decode(encoded + '\0', &v).errno_value(), EIO);
  std::string bad_version = encoded;
  bad_version[0] = 2;
  EXPECT_EQ(decode(bad_version, &v).errno_value(), EIO);
}

TEST(Items, InodeRoundTrip) {
  InodeItem i = SampleInode(), back;
  ASSERT_TRUE(DecodeInode(EncodeInode(i), &back).ok());
  EXPECT_EQ(back.mode, i.mode);
  EXPECT_EQ(back.uid, i.uid);
  EXPECT_EQ(back.gid, i.gid);
  EXPECT_EQ(back.nlink, i.nlink);
  EXPECT_EQ(back.size, i.size);
  EXPECT_EQ(back.allocated_bytes, i.allocated_bytes);
  EXPECT_EQ(back.atime_ns, i.atime_ns);
  EXPECT_EQ(back.mtime_ns, i.mtime_ns);
  EXPECT_EQ(back.ctime_ns, i.ctime_ns);
  EXPECT_EQ(back.generation, i.generation);
  EXPECT_EQ(back.flags, i.flags);
  EXPECT_EQ(back.rdev, i.rdev);
  EXPECT_EQ(back.parent, i.parent);
  EXPECT_EQ(back.next_dir_seq, i.next_dir_seq);
  ExpectStrict(EncodeInode(i), &DecodeInode);
}

TEST(Items, DirItemsRoundTrip) {
  DirIndexItem d{"name with spaces", 42, 4}, d2;
  ASSERT_TRUE(DecodeDirIndex(EncodeDirIndex(d), &d2).ok());
  EXPECT_EQ(d2.name, d.name);
  EXPECT_EQ(d2.child, d.child);
  EXPECT_EQ(d2.file_type, d.file_type);
  ExpectStrict(EncodeDirIndex(d), &DecodeDirIndex);

  DirNameItem n{{{"a", 3}, {std::string("b\0c", 3), 4}, {"", 5}}}, n2;
  ASSERT_TRUE(DecodeDirName(EncodeDirName(n), &n2).ok());
  EXPECT_EQ(n2.entries, n.entries);
  ExpectStrict(EncodeDirName(n), &DecodeDirName);
  DirNameItem empty, empty2{{{"x", 1}}};
  ASSERT_TRUE(DecodeDirName(EncodeDirName(empty), &empty2).ok());
  EXPECT_TRUE(empty2.entries.empty());  // decoding replaces, never appends
}

TEST(Items, ExtentXattrFreeSuperRoundTrip) {
  ExtentItem e{1 << 20, 3 * 4096, 0, {1, 0xffffffffu, 3}}, e2;
  ASSERT_TRUE(DecodeExtent(EncodeExtent(e), &e2).ok());
  EXPECT_EQ(e2.device_offset, e.device_offset);
  EXPECT_EQ(e2.length, e.length);
  EXPECT_EQ(e2.flags, e.flags);
  EXPECT_EQ(e2.crcs, e.crcs);
  ExpectStrict(EncodeExtent(e), &DecodeExtent);
  ExtentItem u{2 << 20, 4096, ExtentItem::kUnwritten, {}}, u2;
  ASSERT_TRUE(DecodeExtent(EncodeExtent(u), &u2).ok());
  EXPECT_EQ(u2.flags, ExtentItem::kUnwritten);
  EXPECT_TRUE(u2.crcs.empty());

  XattrItem x{{{"user.k", std::string("v\0w", 3)}, {"user.empty", ""}}}, x2;
  ASSERT_TRUE(DecodeXattr(EncodeXattr(x), &x2).ok());
  EXPECT_EQ(x2.entries, x.entries);
  ExpectStrict(EncodeXattr(x), &DecodeXattr);

  FreeItem f{123 * 4096}, f2;
  ASSERT_TRUE(DecodeFree(EncodeFree(f), &f2).ok());
  EXPECT_EQ(f2.length, f.length);
  ExpectStrict(EncodeFree(f), &DecodeFree);

  InodeRefItem ref{3}, ref2;
  ASSERT_TRUE(DecodeInodeRef(EncodeInodeRef(ref), &ref2).ok());
  EXPECT_EQ(ref2.names, 3u);
  ExpectStrict(EncodeInodeRef(ref), &DecodeInodeRef);

  SuperItem s = SampleSuper(), s2;
  ASSERT_TRUE(DecodeSuper(EncodeSuper(s), &s2).ok());
  EXPECT_EQ(s2.format_version, s.format_version);
  EXPECT_EQ(s2.uuid, s.uuid);
  EXPECT_EQ(s2.device_bytes, s.device_bytes);
  EXPECT_EQ(s2.data_start, s.data_start);
  EXPECT_EQ(s2.next_inode, s.next_inode);
  EXPECT_EQ(s2.generation, s.generation);
  ExpectStrict(EncodeSuper(s), &DecodeSuper);
}

TEST(Items, GoldenVectors) {
  // docs/disk-format.md: version byte 1, little-endian integers, u32 length prefixes.
  EXPECT_EQ(EncodeFree(FreeItem{0x0102030405060708ull}),
            std::string("\x01\x08\x07\x06\x05\x04\x03\x02\x01", 9));
  EXPECT_EQ(EncodeInodeRef(InodeRefItem{0x01020304}), std::string("\x01\x04\x03\x02\x01", 5));
  EXPECT_EQ(EncodeDirIndex(DirIndexItem{"ab", 0x1122, 4}),
            std::string("\x01\x02\x00\x00\x00"
                        "ab"
                        "\x22\x11\x00\x00\x00\x00\x00\x00\x04",
                        16));
  EXPECT_EQ(EncodeExtent(ExtentItem{0x100000, 0x1000, 0, {0xdeadbeef}}),
            std::string("\x01"
                        "\x00\x00\x10\x00\x00\x00\x00\x00"
                        "\x00\x10\x00\x00\x00\x00\x00\x00"
                        "\x00\x00\x00\x00"
                        "\x01\x00\x00\x00"
                        "\xef\xbe\xad\xde",
                        29));
  EXPECT_EQ(EncodeInode(InodeItem{}).size(), 1u + 4 * 4 + 8 * 9 + 4);
  EXPECT_EQ(EncodeSuper(SuperItem{}).size(), 1u + 4 + 4 + 16 + 8 * 4);
}

TEST(Items, HugeCountsAndLengthsAreEioWithoutAllocating) {
  std::string names = EncodeDirName(DirNameItem{{{"a", 1}}});
  names[1] = names[2] = names[3] = names[4] = '\xff';  // 4 billion entries claimed
  DirNameItem d;
  EXPECT_EQ(DecodeDirName(names, &d).errno_value(), EIO);

  std::string ext = EncodeExtent(ExtentItem{0, 4096, 0, {1}});
  ext[21] = ext[22] = ext[23] = ext[24] = '\xff';  // crc count
  ExtentItem e;
  EXPECT_EQ(DecodeExtent(ext, &e).errno_value(), EIO);

  std::string x = EncodeXattr(XattrItem{{{"user.a", "b"}}});
  x[5] = x[6] = x[7] = x[8] = '\xff';  // name length
  XattrItem xi;
  EXPECT_EQ(DecodeXattr(x, &xi).errno_value(), EIO);

  std::string s = EncodeSuper(SampleSuper());
  s[5] = 15;  // uuid length 15: the rest shifts, so it is malformed anyway
  SuperItem si;
  EXPECT_EQ(DecodeSuper(s, &si).errno_value(), EIO);
}

TEST(Items, RandomBytesNeverCrashDecoders) {
  std::mt19937_64 rng(1234);
  for (int i = 0; i < 20000; i++) {
    std::string b(rng() % 64, '\0');
    for (char& c : b) c = static_cast<char>(rng() % 4 == 0 ? rng() : rng() % 3);
    if (!b.empty() && rng() % 2) b[0] = 1;  // mostly the right version, to get further in
    InodeItem a;
    DirIndexItem di;
    DirNameItem dn;
    ExtentItem ex;
    XattrItem xa;
    FreeItem fr;
    SuperItem su;
    (void)DecodeInode(b, &a);
    (void)DecodeDirIndex(b, &di);
    (void)DecodeDirName(b, &dn);
    (void)DecodeExtent(b, &ex);
    (void)DecodeXattr(b, &xa);
    (void)DecodeFree(b, &fr);
    (void)DecodeSuper(b, &su);
  }
  SUCCEED();
}

}  // namespace
}  // namespace cohfs
