// Namespace semantics: lookup, create, link, unlink, rmdir, rename, readdir,
// orphans and inode numbers, each errno as Linux/ext4 returns it.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <array>
#include <random>
#include <set>

#include "tests/unit/server/fs_fixture.h"

namespace cohfs::test {
namespace {

using FsNamespace = FsTest;

TEST_F(FsNamespace, LookupErrors) {
  Attr pub = Mkdir(kRootInode, "pub", 0777);
  Attr d = Mkdir(pub.ino, "d", 0700, kUser);
  Attr f = Create(d.ino, "f", 0644, kUser);
  EXPECT_EQ(fs_->Lookup(kUser, d.ino, "f")->ino, f.ino);
  EXPECT_EQ(Err(fs_->Lookup(kUser, d.ino, "g")), ENOENT);
  EXPECT_EQ(Err(fs_->Lookup(kUser, f.ino, "g")), ENOTDIR);
  EXPECT_EQ(Err(fs_->Lookup(kUser, d.ino, std::string(256, 'n'))), ENAMETOOLONG);
  EXPECT_TRUE(fs_->Lookup(kUser, d.ino, std::string(255, 'n')).errno_value() == ENOENT);
  EXPECT_EQ(Err(fs_->Lookup(kOther, d.ino, "f")), EACCES);  // no search permission
  EXPECT_EQ(Err(fs_->Lookup(kUser, InodeId(next_ + 5), "f")), ENOENT);
  EXPECT_EQ(fs_->Lookup(kUser, d.ino, "..")->ino, pub.ino);
  EXPECT_EQ(fs_->Lookup(kUser, d.ino, ".")->ino, d.ino);
  EXPECT_EQ(fs_->Lookup(kRoot, kRootInode, "..")->ino, kRootInode);
}

TEST_F(FsNamespace, MknodTypes) {
  auto fifo = fs_->Mknod(kRoot, kRootInode, "fifo", S_IFIFO | 0600, 0, NewIno());
  ASSERT_TRUE(fifo.ok());
  EXPECT_TRUE(S_ISFIFO(fifo->mode));
  auto chr = fs_->Mknod(kRoot, kRootInode, "chr", S_IFCHR | 0600, makedev(1, 3), NewIno());
  ASSERT_TRUE(chr.ok());
  EXPECT_EQ(Stat(chr->ino).rdev, makedev(1, 3));
  ASSERT_TRUE(fs_->Mknod(kRoot, kRootInode, "blk", S_IFBLK | 0600, makedev(7, 0), NewIno()).ok());
  ASSERT_TRUE(fs_->Mknod(kRoot, kRootInode, "sock", S_IFSOCK | 0600, 0, NewIno()).ok());
  auto plain = fs_->Mknod(kRoot, kRootInode, "plain", 0600, 0, NewIno());  // type 0: regular
  ASSERT_TRUE(plain.ok());
  EXPECT_TRUE(S_ISREG(plain->mode));
  EXPECT_EQ(Err(fs_->Mknod(kRoot, kRootInode, "bad", 0170000 | 0600, 0, NewIno())), EINVAL);
  EXPECT_EQ(Err(fs_->Mknod(kRoot, kRootInode, "dir", S_IFDIR | 0600, 0, NewIno())), EPERM);
  // Device nodes need CAP_MKNOD; a 0:0 whiteout does not.
  Attr pub = Mkdir(kRootInode, "pub", 0777);
  EXPECT_EQ(Err(fs_->Mknod(kUser, pub.ino, "c", S_IFCHR | 0600, makedev(1, 3), NewIno())), EPERM);
  EXPECT_EQ(Err(fs_->Mknod(kUser, pub.ino, "b", S_IFBLK | 0600, makedev(7, 0), NewIno())), EPERM);
  EXPECT_TRUE(fs_->Mknod(kUser, pub.ino, "wh", S_IFCHR, 0, NewIno()).ok());
  EXPECT_TRUE(fs_->Mknod(kUser, pub.ino, "p", S_IFIFO | 0600, 0, NewIno()).ok());
  EXPECT_EQ(Err(fs_->Read(kRoot, fifo->ino, 0, 10)), EINVAL);
}

TEST_F(FsNamespace, NewInodeNumbersOwnersAndSetgid) {
  InodeId ino = NewIno();
  ASSERT_TRUE(fs_->Mknod(kRoot, kRootInode, "a", S_IFREG | 0644, 0, ino).ok());
  EXPECT_EQ(Err(fs_->Mknod(kRoot, kRootInode, "b", S_IFREG | 0644, 0, ino)), EEXIST);
  EXPECT_EQ(Err(fs_->Mkdir(kRoot, kRootInode, "c", 0755, InodeId(next_ + (1 << 21)))), EINVAL);
  EXPECT_EQ(Err(fs_->Mkdir(kRoot, kRootInode, "c", 0755, kRootInode)), EINVAL);
  EXPECT_EQ(Err(fs_->Mknod(kRoot, kRootInode, "a", S_IFREG | 0644, 0, NewIno())), EEXIST);
  EXPECT_EQ(Err(fs_->Mknod(kRoot, kRootInode, "", S_IFREG | 0644, 0, NewIno())), ENOENT);
  EXPECT_EQ(Err(fs_->Mknod(kRoot, kRootInode, std::string(256, 'x'), S_IFREG, 0, NewIno())),
            ENAMETOOLONG);
  EXPECT_TRUE(fs_->Mknod(kRoot, kRootInode, std::string(255, 'x'), S_IFREG, 0, NewIno()).ok());
  Attr a = Stat(ino);
  EXPECT_EQ(a.generation, tv_.volume().super().generation);
  EXPECT_EQ(a.nlink, 1u);

  Attr pub = Mkdir(kRootInode, "pub", 0777);
  Attr f = Create(pub.ino, "f", 0640, Caller{1000, 1000, {5}, 0});
  EXPECT_EQ(f.uid, 1000u);
  EXPECT_EQ(f.gid, 1000u);
  // A setgid directory passes its group on, and setgid to subdirectories.
  Attr sg = Mkdir(kRootInode, "sg", 02777);
  ASSERT_TRUE(fs_->SetAttr(kRoot, sg.ino, SetAttrRequest{kSetGid, 0, 0, 50}).ok());
  Attr g = Create(sg.ino, "g", 0644, kUser);
  EXPECT_EQ(g.gid, 50u);
  EXPECT_EQ(g.uid, 1000u);
  Attr sub = Mkdir(sg.ino, "sub", 0755, kUser);
  EXPECT_EQ(sub.gid, 50u);
  EXPECT_TRUE(sub.mode & S_ISGID);
  // A file asking for setgid+group-exec in a group the creator is not in loses setgid.
  Attr x = Create(sg.ino, "x", 02755, kUser);
  EXPECT_FALSE(x.mode & S_ISGID);
  Attr y = Create(sg.ino, "y", 02755, Caller{1000, 1000, {50}, 0});
  EXPECT_TRUE(y.mode & S_ISGID);
}

TEST_F(FsNamespace, MkdirLinkCountsAndParent) {
  Attr root0 = Stat(kRootInode);
  Attr a = Mkdir(kRootInode, "a");
  EXPECT_EQ(a.nlink, 2u);
  EXPECT_EQ(Stat(kRootInode).nlink, root0.nlink + 1);
  Attr b = Mkdir(a.ino, "b");
  Create(a.ino, "f");
  EXPECT_EQ(Stat(a.ino).nlink, 3u);  // files do not count
  EXPECT_EQ(fs_->Lookup(kRoot, b.ino, "..")->ino, a.ino);
  EXPECT_EQ(Err(fs_->Mkdir(kRoot, kRootInode, "a", 0755, NewIno())), EEXIST);
}

TEST_F(FsNamespace, Symlinks) {
  auto s = fs_->Symlink(kRoot, kRootInode, "s", "target/path", NewIno());
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(S_ISLNK(s->mode));
  EXPECT_EQ(s->size, 11u);
  EXPECT_EQ(*fs_->ReadLink(s->ino), "target/path");
  std::string longest(kMaxSymlinkBytes, 't');
  auto l = fs_->Symlink(kRoot, kRootInode, "long", longest, NewIno());
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(*fs_->ReadLink(l->ino), longest);
  EXPECT_EQ(Err(fs_->Symlink(kRoot, kRootInode, "toolong", longest + "t", NewIno())), ENAMETOOLONG);
  EXPECT_EQ(Err(fs_->Symlink(kRoot, kRootInode, "empty", "", NewIno())), ENOENT);
  EXPECT_EQ(Err(fs_->Symlink(kRoot, kRootInode, "s", "x", NewIno())), EEXIST);
  Attr f = Create(kRootInode, "f");
  EXPECT_EQ(Err(fs_->ReadLink(f.ino)), EINVAL);
  ASSERT_TRUE(fs_->Unlink(kRoot, kRootInode, "s").ok());
  ASSERT_TRUE(fs_->Reclaim(s->ino).ok());
}

TEST_F(FsNamespace, HardLinks) {
  Attr f = Create(kRootInode, "f");
  Attr d = Mkdir(kRootInode, "d");
  auto l = fs_->Link(kRoot, f.ino, d.ino, "l");
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->nlink, 2u);
  EXPECT_EQ(fs_->Lookup(kRoot, d.ino, "l")->ino, f.ino);
  EXPECT_EQ(Err(fs_->Link(kRoot, f.ino, d.ino, "l")), EEXIST);
  EXPECT_EQ(Err(fs_->Link(kRoot, d.ino, kRootInode, "d2")), EPERM);
  EXPECT_EQ(Err(fs_->Link(kRoot, f.ino, f.ino, "x")), ENOTDIR);
  EXPECT_EQ(Err(fs_->Link(kRoot, f.ino, d.ino, std::string(256, 'x'))), ENAMETOOLONG);
  ASSERT_TRUE(fs_->Unlink(kRoot, kRootInode, "f").ok());
  EXPECT_EQ(Stat(f.ino).nlink, 1u);
  ASSERT_TRUE(fs_->Unlink(kRoot, d.ino, "l").ok());
  EXPECT_EQ(Stat(f.ino).nlink, 0u);
  EXPECT_EQ(Err(fs_->Link(kRoot, f.ino, d.ino, "again")), ENOENT);  // an orphan
  ASSERT_TRUE(fs_->Reclaim(f.ino).ok());
  EXPECT_EQ(Err(fs_->GetAttr(f.ino)), ENOENT);
}

TEST_F(FsNamespace, TooManyLinks) {
  Attr d = Mkdir(kRootInode, "d");
  Attr f = Create(d.ino, "f");
  uint32_t n = 1;
  for (; n < 65000; n++) {
    auto r = fs_->Link(kRoot, f.ino, d.ino, "l" + std::to_string(n));
    ASSERT_TRUE(r.ok()) << n << " " << r.status().ToString();
  }
  EXPECT_EQ(Err(fs_->Link(kRoot, f.ino, d.ino, "one_more")), EMLINK);
  EXPECT_EQ(Stat(f.ino).nlink, 65000u);
}

TEST_F(FsNamespace, UnlinkAndRmdir) {
  Attr d = Mkdir(kRootInode, "d");
  Attr e = Mkdir(d.ino, "e");
  Attr f = Create(d.ino, "f");
  Write(f.ino, 0, "data");
  EXPECT_EQ(Err(fs_->Unlink(kRoot, kRootInode, "d")), EISDIR);
  EXPECT_EQ(Err(fs_->Unlink(kRoot, kRootInode, "nope")), ENOENT);
  EXPECT_EQ(Err(fs_->Unlink(kRoot, f.ino, "x")), ENOTDIR);
  EXPECT_EQ(Err(fs_->Rmdir(kRoot, d.ino, "f")), ENOTDIR);
  EXPECT_EQ(Err(fs_->Rmdir(kRoot, kRootInode, "d")), ENOTEMPTY);
  EXPECT_EQ(Err(fs_->Rmdir(kRoot, d.ino, ".")), EINVAL);
  EXPECT_EQ(Err(fs_->Rmdir(kRoot, d.ino, "..")), ENOTEMPTY);
  EXPECT_EQ(Err(fs_->Rmdir(kRoot, d.ino, "nope")), ENOENT);

  auto gone = fs_->Unlink(kRoot, d.ino, "f");
  ASSERT_TRUE(gone.ok());
  EXPECT_EQ(*gone, f.ino);
  // Still there for whoever has it open.
  EXPECT_EQ(Stat(f.ino).nlink, 0u);
  EXPECT_EQ(Read(f.ino, 0, 10), "data");
  Write(f.ino, 4, "more");
  EXPECT_EQ(Err(fs_->Lookup(kRoot, d.ino, "f")), ENOENT);

  EXPECT_EQ(Stat(d.ino).nlink, 3u);
  auto removed = fs_->Rmdir(kRoot, d.ino, "e");
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(*removed, e.ino);
  EXPECT_EQ(Stat(d.ino).nlink, 2u);
  EXPECT_EQ(Stat(e.ino).nlink, 0u);
  // Nothing can be created in a removed directory.
  EXPECT_EQ(Err(fs_->Mknod(kRoot, e.ino, "x", S_IFREG | 0644, 0, NewIno())), ENOENT);
  EXPECT_EQ(Err(fs_->Lookup(kRoot, e.ino, "x")), ENOENT);
  ASSERT_TRUE(fs_->Rmdir(kRoot, kRootInode, "d").ok());
  ExpectFsckClean();  // orphans are consistent before reclaim too
  ASSERT_TRUE(fs_->ReclaimAllOrphans().ok());
  for (InodeId ino : {d.ino, e.ino, f.ino}) EXPECT_EQ(Err(fs_->GetAttr(ino)), ENOENT);
  // Reclaim of a linked inode is a no-op.
  Attr g = Create(kRootInode, "g");
  ASSERT_TRUE(fs_->Reclaim(g.ino).ok());
  EXPECT_EQ(Stat(g.ino).nlink, 1u);
}

TEST_F(FsNamespace, RenameFiles) {
  Attr a = Create(kRootInode, "a");
  Attr b = Create(kRootInode, "b");
  Attr d = Mkdir(kRootInode, "d");
  EXPECT_EQ(Err(fs_->Rename(kRoot, kRootInode, "a", kRootInode, "b", kRenameNoReplace)), EEXIST);
  EXPECT_EQ(Err(fs_->Rename(kRoot, kRootInode, "a", kRootInode, "zz", kRenameExchange)), ENOENT);
  EXPECT_EQ(Err(fs_->Rename(kRoot, kRootInode, "nope", kRootInode, "zz", 0)), ENOENT);
  EXPECT_EQ(Err(fs_->Rename(kRoot, kRootInode, "a", kRootInode, "b", 8)), EINVAL);
  EXPECT_EQ(
      Err(fs_->Rename(kRoot, kRootInode, "a", kRootInode, "b", kRenameExchange | kRenameNoReplace)),
      EINVAL);
  EXPECT_EQ(Err(fs_->Rename(kRoot, kRootInode, "a", kRootInode, std::string(256, 'x'), 0)),
            ENAMETOOLONG);
  EXPECT_EQ(Err(fs_->Rename(kRoot, kRootInode, "a", kRootInode, "d", 0)), EISDIR);
  EXPECT_EQ(Err(fs_->Rename(kRoot, kRootInode, "d", kRootInode, "a", 0)), ENOTDIR);
  EXPECT_EQ(Err(fs_->Rename(kRoot, kRootInode, "a", a.ino, "x", 0)), ENOTDIR);

  // To a new name in another directory.
  auto r = fs_->Rename(kRoot, kRootInode, "a", d.ino, "a2", kRenameNoReplace);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->has_value());
  EXPECT_EQ(fs_->Lookup(kRoot, d.ino, "a2")->ino, a.ino);
  EXPECT_EQ(Err(fs_->Lookup(kRoot, kRootInode, "a")), ENOENT);
  // Over an existing file: the victim becomes an orphan.
  r = fs_->Rename(kRoot, d.ino, "a2", kRootInode, "b", 0);
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ(**r, b.ino);
  EXPECT_EQ(Stat(b.ino).nlink, 0u);
  EXPECT_EQ(fs_->Lookup(kRoot, kRootInode, "b")->ino, a.ino);
  ASSERT_TRUE(fs_->Reclaim(b.ino).ok());
  // Exchange two files.
  Attr c = Create(d.ino, "c");
  ASSERT_TRUE(fs_->Rename(kRoot, kRootInode, "b", d.ino, "c", kRenameExchange).ok());
  EXPECT_EQ(fs_->Lookup(kRoot, kRootInode, "b")->ino, c.ino);
  EXPECT_EQ(fs_->Lookup(kRoot, d.ino, "c")->ino, a.ino);
  // Renaming onto itself or onto another link of the same inode does nothing.
  ASSERT_TRUE(fs_->Rename(kRoot, kRootInode, "b", kRootInode, "b", 0).ok());
  ASSERT_TRUE(fs_->Link(kRoot, c.ino, d.ino, "c_link").ok());
  r = fs_->Rename(kRoot, kRootInode, "b", d.ino, "c_link", 0);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->has_value());
  EXPECT_EQ(fs_->Lookup(kRoot, kRootInode, "b")->ino, c.ino);
  EXPECT_EQ(fs_->Lookup(kRoot, d.ino, "c_link")->ino, c.ino);
  EXPECT_EQ(Stat(c.ino).nlink, 2u);
  EXPECT_EQ(Err(fs_->Rename(kRoot, kRootInode, "b", d.ino, "c_link", kRenameNoReplace)), EEXIST);
}

TEST_F(FsNamespace, RenameDirectories) {
  Attr p1 = Mkdir(kRootInode, "p1");
  Attr p2 = Mkdir(kRootInode, "p2");
  Attr a = Mkdir(p1.ino, "a");
  Attr sub = Mkdir(a.ino, "sub");
  Attr deep = Mkdir(sub.ino, "deep");
  // Into its own subtree, or onto itself as parent.
  EXPECT_EQ(Err(fs_->Rename(kRoot, p1.ino, "a", sub.ino, "x", 0)), EINVAL);
  EXPECT_EQ(Err(fs_->Rename(kRoot, p1.ino, "a", deep.ino, "x", 0)), EINVAL);
  EXPECT_EQ(Err(fs_->Rename(kRoot, p1.ino, "a", a.ino, "x", 0)), EINVAL);
  // Over an ancestor of the source: ENOTEMPTY (EINVAL for exchange).
  EXPECT_EQ(Err(fs_->Rename(kRoot, sub.ino, "deep", p1.ino, "a", 0)), ENOTEMPTY);
  EXPECT_EQ(Err(fs_->Rename(kRoot, sub.ino, "deep", p1.ino, "a", kRenameExchange)), EINVAL);

  // Move a directory between parents: both nlinks and ".." follow.
  ASSERT_TRUE(fs_->Rename(kRoot, p1.ino, "a", p2.ino, "a", 0).ok());
  EXPECT_EQ(Stat(p1.ino).nlink, 2u);
  EXPECT_EQ(Stat(p2.ino).nlink, 3u);
  EXPECT_EQ(fs_->Lookup(kRoot, a.ino, "..")->ino, p2.ino);

  // Over an empty directory: replaced, orphaned, parent's count drops by one.
  Attr empty = Mkdir(p1.ino, "empty");
  EXPECT_EQ(Stat(p1.ino).nlink, 3u);
  auto r = fs_->Rename(kRoot, p2.ino, "a", p1.ino, "empty", 0);
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ(**r, empty.ino);
  EXPECT_EQ(Stat(empty.ino).nlink, 0u);
  EXPECT_EQ(Stat(p1.ino).nlink, 3u);
  EXPECT_EQ(Stat(p2.ino).nlink, 2u);
  EXPECT_EQ(fs_->Lookup(kRoot, a.ino, "..")->ino, p1.ino);
  // Over a non-empty directory.
  Attr full = Mkdir(p2.ino, "full");
  Create(full.ino, "f");
  EXPECT_EQ(Err(fs_->Rename(kRoot, p1.ino, "empty", p2.ino, "full", 0)), ENOTEMPTY);
  // Exchange a directory with a file across parents.
  Attr file = Create(p2.ino, "file");
  ASSERT_TRUE(fs_->Rename(kRoot, p1.ino, "empty", p2.ino, "file", kRenameExchange).ok());
  EXPECT_EQ(fs_->Lookup(kRoot, p2.ino, "file")->ino, a.ino);
  EXPECT_EQ(fs_->Lookup(kRoot, p1.ino, "empty")->ino, file.ino);
  EXPECT_EQ(Stat(p1.ino).nlink, 2u);
  EXPECT_EQ(Stat(p2.ino).nlink, 4u);  // full and file (was a)
  EXPECT_EQ(fs_->Lookup(kRoot, a.ino, "..")->ino, p2.ino);
  // Exchange two directories across parents.
  Attr other = Mkdir(p1.ino, "other");
  ASSERT_TRUE(fs_->Rename(kRoot, p1.ino, "other", p2.ino, "full", kRenameExchange).ok());
  EXPECT_EQ(fs_->Lookup(kRoot, full.ino, "..")->ino, p1.ino);
  EXPECT_EQ(fs_->Lookup(kRoot, other.ino, "..")->ino, p2.ino);
  EXPECT_EQ(Stat(p1.ino).nlink, 3u);
  EXPECT_EQ(Stat(p2.ino).nlink, 4u);
  // Into a removed directory.
  Attr gone = Mkdir(kRootInode, "gone");
  ASSERT_TRUE(fs_->Rmdir(kRoot, kRootInode, "gone").ok());
  EXPECT_EQ(Err(fs_->Rename(kRoot, p1.ino, "empty", gone.ino, "x", 0)), ENOENT);
  ASSERT_TRUE(fs_->ReclaimAllOrphans().ok());
}

TEST_F(FsNamespace, ReadDirCookiesAndAttrs) {
  Attr d = Mkdir(kRootInode, "d");
  std::set<std::string> names;
  for (int i = 0; i < 50; i++) {
    std::string n = "f" + std::to_string(i);
    Attr f = Create(d.ino, n);
    if (i == 7) Write(f.ino, 0, "seven");
    names.insert(n);
  }
  Mkdir(d.ino, "sub");
  names.insert("sub");
  auto all = fs_->ReadDir(kRoot, d.ino, 0, 1000);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 51u);
  std::set<std::string> seen;
  uint64_t last = 2;
  for (auto& e : *all) {
    EXPECT_GT(e.cookie, last);
    last = e.cookie;
    seen.insert(e.name);
    auto l = fs_->Lookup(kRoot, d.ino, e.name);
    ASSERT_TRUE(l.ok());
    EXPECT_EQ(e.attr.ino, l->ino);
    EXPECT_EQ(e.attr.mode, l->mode);
    if (e.name == "f7") {
      EXPECT_EQ(e.attr.size, 5u);
    }
  }
  EXPECT_EQ(seen, names);
  // Paging by cookie gives the same sequence.
  std::vector<std::string> paged;
  uint64_t cookie = 0;
  while (true) {
    auto page = fs_->ReadDir(kRoot, d.ino, cookie, 7);
    ASSERT_TRUE(page.ok());
    if (page->empty()) break;
    EXPECT_LE(page->size(), 7u);
    for (auto& e : *page) paged.push_back(e.name);
    cookie = page->back().cookie;
  }
  ASSERT_EQ(paged.size(), all->size());
  for (size_t i = 0; i < paged.size(); i++) EXPECT_EQ(paged[i], (*all)[i].name);
  // Cookies 1 and 2 are "." and ".."; huge cookies are past the end.
  EXPECT_EQ(fs_->ReadDir(kRoot, d.ino, 1, 1000)->size(), 51u);
  EXPECT_EQ(fs_->ReadDir(kRoot, d.ino, 2, 1000)->size(), 51u);
  EXPECT_TRUE(fs_->ReadDir(kRoot, d.ino, UINT64_MAX, 1000)->empty());
  EXPECT_TRUE(fs_->ReadDir(kRoot, d.ino, last, 1000)->empty());
  // Removing an already listed entry and adding one: the walk goes on where it was.
  auto first = fs_->ReadDir(kRoot, d.ino, 0, 10);
  ASSERT_TRUE(fs_->Unlink(kRoot, d.ino, (*first)[3].name).ok());
  ASSERT_TRUE(fs_->Unlink(kRoot, d.ino, (*first)[9].name).ok());
  Create(d.ino, "newcomer");
  auto rest = fs_->ReadDir(kRoot, d.ino, first->back().cookie, 1000);
  ASSERT_TRUE(rest.ok());
  EXPECT_EQ(rest->size(), 51u - 10 + 1);
  EXPECT_EQ(rest->back().name, "newcomer");
  EXPECT_EQ(rest->front().name, (*all)[10].name);
  // Errors.
  Attr f = Create(kRootInode, "plain");
  EXPECT_EQ(Err(fs_->ReadDir(kRoot, f.ino, 0, 10)), ENOTDIR);
  Attr priv = Mkdir(kRootInode, "priv", 0711);
  EXPECT_EQ(Err(fs_->ReadDir(kUser, priv.ino, 0, 10)), EACCES);
  EXPECT_TRUE(fs_->ReadDir(kUser, d.ino, 0, 10).ok());
  EXPECT_TRUE(fs_->ReadDir(kRoot, priv.ino, 0, 10)->empty());
  ASSERT_TRUE(fs_->ReclaimAllOrphans().ok());
}

TEST_F(FsNamespace, InodeRangesArePersisted) {
  auto a = fs_->AllocateInodes(100);
  ASSERT_TRUE(a.ok());
  auto b = fs_->AllocateInodes(5);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->first, a->first + 100);
  EXPECT_EQ(b->count, 5u);
  uint64_t after = b->first + 5;
  Reopen();  // Open() allocates the next range
  EXPECT_GE(next_, after);
  auto st = fs_->StatFs();
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->block_bytes, kBlockBytes);
  EXPECT_EQ(st->max_name_bytes, 255u);
  EXPECT_GT(st->free_blocks, 0u);
  EXPECT_LE(st->free_blocks, st->total_blocks);
  EXPECT_LT(st->free_inodes, st->total_inodes);
}

}  // namespace
}  // namespace cohfs::test

namespace cohfs::test {
namespace {

// Random namespace operations with fsck as the oracle: link counts, parents,
// names and orphans stay consistent whatever succeeds or fails.
TEST_F(FsNamespace, RandomOperationsKeepFsckClean) {
  std::mt19937_64 rng(1);  // a seed under which every kind of operation succeeds
  std::vector<InodeId> dirs = {kRootInode};
  ASSERT_TRUE(Chmod(kRootInode, 01777).ok());  // everyone may create, sticky
  const Caller callers[] = {kRoot, kUser, kOther, Caller{3000, 50, {1000}, 0}};
  auto who = [&] { return callers[rng() % 4]; };
  auto name = [&] { return "n" + std::to_string(rng() % 12); };
  auto dir = [&] { return dirs[rng() % dirs.size()]; };
  auto mode = [&] { return std::array<uint32_t, 4>{0755, 0777, 01777, 0700}[rng() % 4]; };
  const std::set<int> kExpected = {0,         ENOENT, EEXIST, ENOTDIR,      EISDIR,
                                   ENOTEMPTY, EINVAL, EPERM,  ENAMETOOLONG, EACCES};
  std::array<int, 9> succeeded{};
  for (int step = 0; step < 3000; step++) {
    int op = static_cast<int>(rng() % 9);
    int err = 0;
    switch (op) {
      case 0:
      case 1: {
        auto r = fs_->Mknod(who(), dir(), name(), S_IFREG | 0644, 0, NewIno());
        err = r.errno_value();
        if (r.ok() && rng() % 2) Write(r->ino, 0, std::string(rng() % 9000, 'd'));
        break;
      }
      case 2: {
        auto r = fs_->Mkdir(who(), dir(), name(), mode(), NewIno());
        err = r.errno_value();
        if (r.ok()) dirs.push_back(r->ino);
        break;
      }
      case 3: {
        auto found = fs_->Lookup(kRoot, dir(), name());
        if (found.ok()) err = fs_->Link(who(), found->ino, dir(), name()).errno_value();
        break;
      }
      case 4:
        err = fs_->Unlink(who(), dir(), name()).errno_value();
        break;
      case 5:
        err = fs_->Rmdir(who(), dir(), name()).errno_value();
        break;
      default: {
        uint32_t flags = std::array<uint32_t, 3>{0, kRenameNoReplace, kRenameExchange}[rng() % 3];
        err = fs_->Rename(who(), dir(), name(), dir(), name(), flags).errno_value();
        break;
      }
    }
    ASSERT_TRUE(kExpected.count(err)) << "step " << step << " op " << op << " errno " << err;
    if (err == 0) succeeded[op]++;
    if (step % 1000 == 999) {
      ExpectFsckClean();
      if (HasFailure()) return;
    }
  }
  for (int op = 0; op < 9; op++) EXPECT_GT(succeeded[op], op == 5 ? 0 : 10) << "op " << op;
  ASSERT_TRUE(fs_->ReclaimAllOrphans().ok());
}

}  // namespace
}  // namespace cohfs::test

namespace cohfs::test {
namespace {

// Names the kernel never sends, from a client that does not behave.
TEST_F(FsNamespace, HostileNames) {
  Attr d = Mkdir(kRootInode, "d");
  Attr f = Create(kRootInode, "f");
  EXPECT_EQ(Err(fs_->Mknod(kRoot, kRootInode, "a/b", S_IFREG | 0644, 0, NewIno())), EINVAL);
  EXPECT_EQ(Err(fs_->Mknod(kRoot, kRootInode, std::string("a\0b", 3), S_IFREG, 0, NewIno())),
            EINVAL);
  EXPECT_EQ(Err(fs_->Mkdir(kRoot, kRootInode, ".", 0755, NewIno())), EEXIST);
  EXPECT_EQ(Err(fs_->Mkdir(kRoot, kRootInode, "..", 0755, NewIno())), EEXIST);
  EXPECT_EQ(Err(fs_->Link(kRoot, f.ino, d.ino, "..")), EEXIST);
  EXPECT_EQ(Err(fs_->Unlink(kRoot, d.ino, ".")), EISDIR);
  EXPECT_EQ(Err(fs_->Rename(kRoot, d.ino, "..", kRootInode, "x", 0)), EBUSY);
  EXPECT_EQ(Err(fs_->Rename(kRoot, kRootInode, "f", d.ino, ".", 0)), EBUSY);
  EXPECT_EQ(Err(fs_->Rename(kRoot, kRootInode, "f", d.ino, "x/y", 0)), EINVAL);
  EXPECT_EQ(Err(fs_->Lookup(kRoot, kRootInode, "f/")), EINVAL);
}

}  // namespace
}  // namespace cohfs::test
