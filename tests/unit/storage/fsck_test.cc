#include "storage/fsck.h"

#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <functional>
#include <string>

#include "common/fs_types.h"
#include "common/limits.h"
#include "tests/unit/storage/test_volume.h"

namespace cohfs {
namespace {

using test::TempVolume;

constexpr uint64_t kFile = 2;  // "f" in the root, one 2-block extent
constexpr uint64_t kDir = 3;   // "d" in the root, empty

InodeItem GetInode(Txn& txn, uint64_t ino) {
  InodeItem i;
  auto raw = txn.Get(ItemKey{ino, ItemType::kInode, 0});
  EXPECT_TRUE(raw.ok() && raw->has_value());
  if (raw.ok() && raw->has_value()) {
    EXPECT_TRUE(DecodeInode(**raw, &i).ok());
  }
  return i;
}

void PutInode(Txn& txn, uint64_t ino, const InodeItem& i) {
  txn.Put(ItemKey{ino, ItemType::kInode, 0}, EncodeInode(i));
}

void AddEntry(Txn& txn, uint64_t dir, uint64_t seq, const std::string& name, uint64_t child,
              uint8_t type) {
  txn.Put(ItemKey{dir, ItemType::kDirIndex, seq}, EncodeDirIndex(DirIndexItem{name, child, type}));
  txn.Put(ItemKey{dir, ItemType::kDirName, NameHash(name)},
          EncodeDirName(DirNameItem{{{name, seq}}}));
}

// A small consistent tree: / (1), /f (2, regular, one extent), /d (3, directory).
class FsckTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Volume& v = tv_.volume();
    auto txn = v.items().BeginTxn();
    std::string data(2 * kBlockBytes, 'z');
    auto written = v.extents().WriteNew(std::span<const char>(data.data(), data.size()), *txn);
    ASSERT_TRUE(written.ok());
    ASSERT_EQ(written->size(), 1u);
    extent_ = (*written)[0];
    txn->Put(ItemKey{kFile, ItemType::kExtent, 0}, EncodeExtent(extent_));
    InodeItem f;
    f.mode = S_IFREG | 0644;
    f.nlink = 1;
    f.size = data.size();
    f.allocated_bytes = extent_.length;
    PutInode(*txn, kFile, f);
    InodeItem d;
    d.mode = S_IFDIR | 0755;
    d.nlink = 2;
    d.parent = kRootInode.value;
    PutInode(*txn, kDir, d);
    InodeItem root = GetInode(*txn, kRootInode.value);
    root.nlink = 3;
    root.next_dir_seq = 5;
    root.size = 2;  // a directory's size is its number of entries
    PutInode(*txn, kRootInode.value, root);
    AddEntry(*txn, kRootInode.value, 3, "f", kFile, DT_REG);
    txn->Put(ItemKey{kFile, ItemType::kInodeRef, kRootInode.value}, EncodeInodeRef({1}));
    AddEntry(*txn, kRootInode.value, 4, "d", kDir, DT_DIR);
    SuperItem s = v.super();
    s.next_inode = 4;
    txn->Put(ItemKey{0, ItemType::kSuper, 0}, EncodeSuper(s));
    ASSERT_TRUE(v.items().Commit(*txn, true).ok());
    auto report = Fsck(v, true);
    ASSERT_TRUE(report.ok());
    ASSERT_TRUE(report->ok()) << report->problems[0];
    EXPECT_EQ(report->inodes, 3u);
    EXPECT_EQ(report->directories, 2u);
    EXPECT_EQ(report->extents, 1u);
    EXPECT_EQ(report->data_bytes, 2 * kBlockBytes);
  }

  // Applies `change` in one committed transaction, then runs fsck.
  FsckReport Inject(const std::function<void(Txn&)>& change, bool verify = true) {
    Volume& v = tv_.volume();
    auto txn = v.items().BeginTxn();
    change(*txn);
    EXPECT_TRUE(v.items().Commit(*txn, true).ok());
    auto report = Fsck(v, verify);
    EXPECT_TRUE(report.ok());
    return report.ok() ? *report : FsckReport{};
  }

  static bool Has(const FsckReport& r, const std::string& needle) {
    return std::any_of(r.problems.begin(), r.problems.end(),
                       [&](const std::string& p) { return p.find(needle) != std::string::npos; });
  }
  static std::string All(const FsckReport& r) {
    std::string s;
    for (auto& p : r.problems) s += p + "\n";
    return s;
  }

  TempVolume tv_;
  ExtentItem extent_;
};

TEST_F(FsckTest, WrongFileLinkCount) {
  auto r = Inject([](Txn& t) {
    InodeItem f = GetInode(t, kFile);
    f.nlink = 2;
    PutInode(t, kFile, f);
  });
  EXPECT_TRUE(Has(r, "inode 2 has nlink 2 but 1 names")) << All(r);
  EXPECT_EQ(r.problems.size(), 1u) << All(r);
}

TEST_F(FsckTest, InodeRefsCountTheNames) {
  auto r = Inject([](Txn& t) {
    t.Put(ItemKey{kFile, ItemType::kInodeRef, kRootInode.value}, EncodeInodeRef({2}));
    t.Put(ItemKey{kFile, ItemType::kInodeRef, kDir}, EncodeInodeRef({1}));
  });
  EXPECT_TRUE(Has(r, "inode 2 has INODE_REF 2 for directory 1 but 1 names there")) << All(r);
  EXPECT_TRUE(Has(r, "inode 2 has INODE_REF 1 for directory 3 but 0 names there")) << All(r);
  auto gone = Inject([](Txn& t) {
    t.Delete(ItemKey{kFile, ItemType::kInodeRef, kRootInode.value});
  });
  EXPECT_TRUE(Has(gone, "inode 2 has INODE_REF 0 for directory 1 but 1 names there")) << All(gone);
}

TEST_F(FsckTest, WrongDirectoryLinkCountAndParent) {
  auto r = Inject([](Txn& t) {
    InodeItem root = GetInode(t, kRootInode.value);
    root.nlink = 7;
    PutInode(t, kRootInode.value, root);
    InodeItem d = GetInode(t, kDir);
    d.parent = kFile;
    PutInode(t, kDir, d);
  });
  EXPECT_TRUE(Has(r, "directory 1 has nlink 7, expected 3")) << All(r);
  EXPECT_TRUE(Has(r, "directory 3 has 1 names and parent 2")) << All(r);
}

TEST_F(FsckTest, ExtentsOverlappingEachOther) {
  auto r = Inject([&](Txn& t) {
    // A second extent of the file reusing the first one's second block.
    ExtentItem dup = SliceExtent(extent_, kBlockBytes, kBlockBytes);
    t.Put(ItemKey{kFile, ItemType::kExtent, 2 * kBlockBytes}, EncodeExtent(dup));
    InodeItem f = GetInode(t, kFile);
    f.allocated_bytes += kBlockBytes;
    PutInode(t, kFile, f);
  });
  EXPECT_TRUE(Has(r, "overlaps extent of inode 2 at file offset 0")) << All(r);
  EXPECT_EQ(r.problems.size(), 1u) << All(r);
}

TEST_F(FsckTest, ExtentsOverlappingWithinAFile) {
  auto r = Inject([&](Txn& t) {
    // File offset 4096 starts inside the first extent [0, 8192).
    auto txn_alloc = tv_.volume().allocator().Allocate(kBlockBytes, t);
    ASSERT_TRUE(txn_alloc.ok());
    ExtentItem e{(*txn_alloc)[0].offset, kBlockBytes, ExtentItem::kUnwritten, {}};
    t.Put(ItemKey{kFile, ItemType::kExtent, kBlockBytes}, EncodeExtent(e));
    InodeItem f = GetInode(t, kFile);
    f.allocated_bytes += kBlockBytes;
    PutInode(t, kFile, f);
  });
  EXPECT_TRUE(Has(r, "extents of 2 overlap at file offset 4096")) << All(r);
  EXPECT_EQ(r.problems.size(), 1u) << All(r);
}

TEST_F(FsckTest, ExtentInFreeSpace) {
  auto r = Inject([&](Txn& t) {
    ExtentItem e{(32ull << 20), kBlockBytes, ExtentItem::kUnwritten, {}};  // never allocated
    t.Put(ItemKey{kFile, ItemType::kExtent, 2 * kBlockBytes}, EncodeExtent(e));
    InodeItem f = GetInode(t, kFile);
    f.allocated_bytes += kBlockBytes;
    PutInode(t, kFile, f);
  });
  EXPECT_TRUE(Has(r, "overlaps FREE range")) << All(r);
}

TEST_F(FsckTest, ExtentOutsideTheDataArea) {
  auto r = Inject([&](Txn& t) {
    ExtentItem e{kBlockBytes, kBlockBytes, ExtentItem::kUnwritten, {}};  // in the reserved area
    t.Put(ItemKey{kFile, ItemType::kExtent, 2 * kBlockBytes}, EncodeExtent(e));
    InodeItem f = GetInode(t, kFile);
    f.allocated_bytes += kBlockBytes;
    PutInode(t, kFile, f);
  });
  EXPECT_TRUE(Has(r, "lies outside the data area")) << All(r);
}

TEST_F(FsckTest, LeakedRange) {
  auto r = Inject([&](Txn& t) { ASSERT_TRUE(tv_.volume().allocator().Allocate(3, t).ok()); });
  EXPECT_TRUE(Has(r, "is neither used nor free (leaked)")) << All(r);
  EXPECT_EQ(r.problems.size(), 1u) << All(r);
}

TEST_F(FsckTest, AllocatedBytesMismatch) {
  auto r = Inject([](Txn& t) {
    InodeItem f = GetInode(t, kFile);
    f.allocated_bytes = 3 * kBlockBytes;
    PutInode(t, kFile, f);
  });
  EXPECT_TRUE(Has(r, "inode 2 allocated_bytes 12288 but extents hold 8192")) << All(r);
}

TEST_F(FsckTest, DanglingAndUnmatchedEntries) {
  auto r = Inject([](Txn& t) {
    t.Put(ItemKey{1, ItemType::kDirIndex, 4000}, EncodeDirIndex(DirIndexItem{"ghost", 3, DT_DIR}));
    t.Put(ItemKey{1, ItemType::kDirIndex, 4}, EncodeDirIndex(DirIndexItem{"d", 77, DT_REG}));
    t.Put(ItemKey{1, ItemType::kDirName, NameHash("lost")},
          EncodeDirName(DirNameItem{{{"lost", 9}}}));
  });
  EXPECT_TRUE(Has(r, "entry 'ghost' in 1 has no matching DIR_NAME")) << All(r);
  EXPECT_TRUE(Has(r, "DIR_INDEX 4000 in 1 beyond next_dir_seq")) << All(r);
  EXPECT_TRUE(Has(r, "directory 1 has size 2 but 3 entries")) << All(r);
  EXPECT_TRUE(Has(r, "names missing inode 77")) << All(r);
  EXPECT_TRUE(Has(r, "DIR_NAME 'lost' in 1 has no matching DIR_INDEX")) << All(r);
}

TEST_F(FsckTest, WrongFileTypeInEntry) {
  auto r = Inject([](Txn& t) {
    t.Put(ItemKey{1, ItemType::kDirIndex, 3}, EncodeDirIndex(DirIndexItem{"f", kFile, DT_DIR}));
  });
  EXPECT_TRUE(Has(r, "entry 'f' in 1 has the wrong file type")) << All(r);
}

TEST_F(FsckTest, OrphansAndItemsOfMissingInodes) {
  auto r = Inject([](Txn& t) {
    t.Put(ItemKey{0, ItemType::kOrphan, kFile}, "");  // still linked
    t.Put(ItemKey{50, ItemType::kXattr, NameHash("user.a")},
          EncodeXattr(XattrItem{{{"user.a", "b"}}}));
    t.Put(ItemKey{51, ItemType::kInline, 0}, "data");
  });
  EXPECT_TRUE(Has(r, "inode 2 nlink 1 with an ORPHAN item")) << All(r);
  EXPECT_TRUE(Has(r, "XATTR item of missing inode 50")) << All(r);
  EXPECT_TRUE(Has(r, "INLINE item of missing inode 51")) << All(r);
}

TEST_F(FsckTest, UnlinkedInodeNeedsOrphan) {
  auto r = Inject([](Txn& t) {
    t.Delete(ItemKey{1, ItemType::kDirIndex, 3});
    t.Delete(ItemKey{1, ItemType::kDirName, NameHash("f")});
    t.Delete(ItemKey{kFile, ItemType::kInodeRef, kRootInode.value});
    InodeItem root = GetInode(t, kRootInode.value);
    root.size = 1;  // one entry left
    PutInode(t, kRootInode.value, root);
    InodeItem f = GetInode(t, kFile);
    f.nlink = 0;
    PutInode(t, kFile, f);
  });
  EXPECT_TRUE(Has(r, "inode 2 nlink 0 without an ORPHAN item")) << All(r);
  EXPECT_EQ(r.problems.size(), 1u) << All(r);
  auto fixed = Inject([](Txn& t) { t.Put(ItemKey{0, ItemType::kOrphan, kFile}, ""); });
  EXPECT_TRUE(fixed.ok()) << All(fixed);
}

TEST_F(FsckTest, InodeBeyondNextInodeAndInvalidInline) {
  auto r = Inject([&](Txn& t) {
    SuperItem s = tv_.volume().super();
    s.next_inode = 3;
    t.Put(ItemKey{0, ItemType::kSuper, 0}, EncodeSuper(s));
    t.Put(ItemKey{kDir, ItemType::kInline, 0}, "x");
  });
  EXPECT_TRUE(Has(r, "inode 3 at or beyond SUPER.next_inode")) << All(r);
  EXPECT_TRUE(Has(r, "inode 3 has an invalid INLINE item")) << All(r);
}

TEST_F(FsckTest, UndecodableKeysAndValues) {
  auto r = Inject([](Txn& t) {
    t.Put(ItemKey{kFile, ItemType::kInode, 0}, "garbage");
    t.Put(ItemKey{9, static_cast<ItemType>(0), 0}, "x");  // type 0 is not a key
  });
  EXPECT_TRUE(Has(r, "malformed INODE")) << All(r);
  EXPECT_TRUE(Has(r, "undecodable key 0000000000000009")) << All(r);
}

TEST_F(FsckTest, ChecksumMismatchOnlyWhenVerifying) {
  test::PatchFile(tv_.image(), extent_.device_offset + kBlockBytes + 3, "!");
  auto quick = Fsck(tv_.volume(), false);
  ASSERT_TRUE(quick.ok());
  EXPECT_TRUE(quick->ok()) << All(*quick);
  auto full = Fsck(tv_.volume(), true);
  ASSERT_TRUE(full.ok());
  EXPECT_TRUE(Has(*full, "checksum mismatch at device offset " +
                             std::to_string(extent_.device_offset + kBlockBytes)))
      << All(*full);
}

}  // namespace
}  // namespace cohfs
