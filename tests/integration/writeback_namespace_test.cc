// The whole namespace in the writeback log (DESIGN §5, §6): mkdir, symlink,
// mknod, link, unlink, rmdir, rename and truncation under EXCLUSIVE locks are
// answered from the client's cache without a round trip, give what a local
// file system gives, are seen at once by another mount, and are durable once
// fsync returns.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "tests/integration/cluster.h"
#include "tests/integration/coherency.h"
#include "tests/integration/tree_compare.h"

namespace cohfs::test {
namespace {

// " name=value" per user.* extended attribute of `path`, sorted.
std::string Xattrs(const std::string& path) {
  char names[4096];
  ssize_t n = llistxattr(path.c_str(), names, sizeof(names));
  if (n < 0) return " <llistxattr: " + ErrName(errno) + ">";
  std::vector<std::string> out;
  for (ssize_t i = 0; i < n; i += static_cast<ssize_t>(std::strlen(names + i)) + 1) {
    std::string name(names + i);
    if (!name.starts_with("user.")) continue;
    char value[256];
    ssize_t len = lgetxattr(path.c_str(), name.c_str(), value, sizeof(value));
    out.push_back(" " + name + "=" + std::string(value, len < 0 ? 0 : static_cast<size_t>(len)));
  }
  std::sort(out.begin(), out.end());
  std::string joined;
  for (const std::string& x : out) joined += x;
  return joined;
}

// Everything a test can compare across file systems: per entry (sorted), its
// path, type, permissions, link count, size (of directories only with
// `dir_sizes`: it differs between file systems), symlink target and content.
void Shape(const std::string& root, const std::string& rel, bool dir_sizes,
           std::vector<std::string>* out) {
  std::string path = root + rel;
  std::vector<std::string> names = List(path);
  for (const std::string& n : names) {
    std::string p = path + "/" + n, r = rel + "/" + n;
    struct stat st;
    if (lstat(p.c_str(), &st) != 0) {
      out->push_back(r + " <lstat: " + ErrName(errno) + ">");
      continue;
    }
    std::string line = r + " mode=" + std::to_string(st.st_mode) +
                       " nlink=" + std::to_string(st.st_nlink);
    if (S_ISLNK(st.st_mode)) {
      char target[4096];
      ssize_t len = readlink(p.c_str(), target, sizeof(target));
      line += " -> " + std::string(target, len < 0 ? 0 : static_cast<size_t>(len));
    } else if (S_ISREG(st.st_mode)) {
      line += " size=" + std::to_string(st.st_size) + " data=" + Excerpt(ReadAll(p));
    } else if (S_ISDIR(st.st_mode) && dir_sizes) {
      line += " size=" + std::to_string(st.st_size);
    }
    line += Xattrs(p);
    out->push_back(line);
    if (S_ISDIR(st.st_mode)) Shape(root, r, dir_sizes, out);
  }
}

std::string Shape(const std::string& root, bool dir_sizes = false) {
  std::vector<std::string> lines;
  Shape(root, "", dir_sizes, &lines);
  std::string out;
  for (const std::string& l : lines) out += l + "\n";
  return out;
}

// Every namespace operation the log carries, with their errors, in `d`;
// returns what each call returned, so a reference run can be compared.
std::string Workload(const std::string& d) {
  std::string r;
  auto note = [&](const std::string& what, int rc) { r += what + "=" + Result(rc) + " "; };
  note("mkdir", mkdir((d + "/a").c_str(), 0750));
  note("mkdir-again", mkdir((d + "/a").c_str(), 0750));
  note("mkdir-sub", mkdir((d + "/a/sub").c_str(), 0700));
  WriteAll(d + "/a/f", "hello");
  WriteAll(d + "/a/g", "a longer file, written behind");
  note("symlink", symlink("f", (d + "/a/l").c_str()));
  note("mkfifo", mkfifo((d + "/a/fifo").c_str(), 0600));
  note("link", link((d + "/a/f").c_str(), (d + "/a/sub/f2").c_str()));
  note("link-dir", link((d + "/a/sub").c_str(), (d + "/a/sub2").c_str()));
  note("rename", rename((d + "/a/g").c_str(), (d + "/a/g2").c_str()));
  note("rename-over", rename((d + "/a/g2").c_str(), (d + "/a/sub/f2").c_str()));
  note("rename-across", rename((d + "/a/fifo").c_str(), (d + "/a/sub/fifo").c_str()));
  note("rename-dir", rename((d + "/a/sub").c_str(), (d + "/a/sub3").c_str()));
  note("noreplace", renameat2(AT_FDCWD, (d + "/a/f").c_str(), AT_FDCWD, (d + "/a/l").c_str(),
                              RENAME_NOREPLACE));
  note("exchange", renameat2(AT_FDCWD, (d + "/a/f").c_str(), AT_FDCWD, (d + "/a/l").c_str(),
                             RENAME_EXCHANGE));
  note("rmdir-full", rmdir((d + "/a/sub3").c_str()));
  note("unlink-dir", unlink((d + "/a/sub3").c_str()));
  note("rmdir-file", rmdir((d + "/a/l").c_str()));
  note("unlink", unlink((d + "/a/sub3/fifo").c_str()));
  note("unlink-missing", unlink((d + "/a/nothing").c_str()));
  note("mkdir-empty", mkdir((d + "/a/empty").c_str(), 0755));
  note("rename-onto-empty-dir", rename((d + "/a/sub3").c_str(), (d + "/a/empty").c_str()));
  note("mkdir-gone", mkdir((d + "/a/gone").c_str(), 0755));
  note("rmdir", rmdir((d + "/a/gone").c_str()));
  note("truncate", truncate((d + "/a/empty/f2").c_str(), 7));
  note("truncate-grow", truncate((d + "/a/l").c_str(), 9000));
  note("truncate-dir", truncate((d + "/a/empty").c_str(), 0));
  std::string f = d + "/a/l";  // a regular file since the exchange
  note("setxattr", setxattr(f.c_str(), "user.a", "1", 1, 0));
  note("setxattr-create", setxattr(f.c_str(), "user.a", "2", 1, XATTR_CREATE));
  note("setxattr-replace", setxattr(f.c_str(), "user.b", "2", 1, XATTR_REPLACE));
  note("setxattr-b", setxattr(f.c_str(), "user.b", "22", 2, XATTR_CREATE));
  note("setxattr-nons", setxattr(f.c_str(), "nonamespace", "2", 1, 0));
  note("removexattr", removexattr(f.c_str(), "user.a"));
  note("removexattr-missing", removexattr(f.c_str(), "user.a"));
  char v[16];
  note("getxattr-missing", getxattr(f.c_str(), "user.a", v, sizeof(v)) < 0 ? -1 : 0);
  note("getxattr", getxattr(f.c_str(), "user.b", v, sizeof(v)) == 2 ? 0 : -1);
  note("setxattr-dir", setxattr((d + "/a").c_str(), "user.d", "dir", 3, 0));
  return r;
}

TEST(WritebackNamespace, ChangesInAnOwnedDirectoryAreLocalAndMatchALocalFileSystem) {
  Cluster c;
  // The reference: the same calls on the machine's own file system.
  std::string ref = c.dir() + "/reference";
  ASSERT_EQ(mkdir(ref.c_str(), 0755), 0);
  std::string expected_results = Workload(ref);

  ASSERT_EQ(mkdir(c.Path("w").c_str(), 0755), 0);  // made here: this client holds it
  uint64_t waited = StatValue(c.Stats(), "round_trips");
  uint64_t local = StatValue(c.Stats(), "local_changes");
  EXPECT_EQ(Workload(c.Path("w")), expected_results);
  std::string stats = c.Stats();
  EXPECT_EQ(StatValue(stats, "round_trips"), waited) << stats;  // nothing waited for the server
  EXPECT_GE(StatValue(stats, "local_changes") - local, 20u) << stats;
  EXPECT_EQ(Shape(c.Path("w")), Shape(ref));

  // Another mount sees the same tree at once (the server recalls the locks).
  std::string b = c.dir() + "/mnt2";
  c.Mount(b);
  EXPECT_EQ(Shape(b + "/w"), Shape(ref));
  EXPECT_EQ(Shape(b + "/w", /*dir_sizes=*/true), Shape(c.Path("w"), true));
  EXPECT_EQ(CompareTrees(c.Path("w"), b + "/w"), std::vector<std::string>{});
}

TEST(WritebackNamespace, FsyncMakesLoggedNamespaceChangesDurable) {
  ClusterOptions o;
  o.serve_flags = "--lease 2";  // the unmount below gives the dead server one lease
  Cluster c(o);
  ASSERT_EQ(mkdir(c.Path("d").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(c.Path("d/sub").c_str(), 0755), 0);
  WriteAll(c.Path("d/sub/f"), "data");
  ASSERT_EQ(symlink("sub/f", c.Path("d/l").c_str()), 0);
  ASSERT_EQ(rename(c.Path("d/sub/f").c_str(), c.Path("d/moved").c_str()), 0);
  ASSERT_EQ(link(c.Path("d/moved").c_str(), c.Path("d/sub/again").c_str()), 0);
  WriteAll(c.Path("d/gone"), "x");
  ASSERT_EQ(unlink(c.Path("d/gone").c_str()), 0);
  std::string before = Shape(c.Path("d"));
  int fd = open(c.Path("d").c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(fsync(fd), 0);
  close(fd);
  c.KillServer();  // a crash right after fsync returned
  c.Unmount();
  c.StartServer();
  c.Mount();
  EXPECT_EQ(Shape(c.Path("d")), before);
}

// rm -rf of a tree this client made: every unlink and rmdir is local, and the
// server reclaims the inodes once the kernel forgets them (fsck at teardown).
TEST(WritebackNamespace, RemovingATreeMadeHereCostsNoRoundTrips) {
  Cluster c;
  ASSERT_EQ(mkdir(c.Path("t").c_str(), 0755), 0);
  for (int d = 0; d < 10; d++) {
    std::string dir = c.Path("t/d" + std::to_string(d));
    ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
    for (int f = 0; f < 20; f++) WriteAll(dir + "/f" + std::to_string(f), "x");
  }
  std::string before = c.Stats();
  ASSERT_EQ(RunCommand("rm -rf " + c.Path("t/d*")), 0);
  std::string after = c.Stats();
  // Only the listings rm reads (and its statfs) wait for the server.
  auto delta = [&](const char* name) { return StatValue(after, name) - StatValue(before, name); };
  EXPECT_EQ(delta("rpc.unlink") + delta("rpc.rmdir"), 0u) << after;
  EXPECT_EQ(delta("round_trips"), delta("rpc.readDir") + delta("rpc.statFs")) << after;
  EXPECT_GE(delta("local_changes"), 210u) << after;
  EXPECT_EQ(List(c.Path("t")), std::vector<std::string>{});
  std::string b = c.dir() + "/mnt2";
  c.Mount(b);
  EXPECT_EQ(List(b + "/t"), std::vector<std::string>{});
}

// A file unlinked locally while open here stays readable through its fd, also
// after another mount took the directory (recall) and looked. (The second
// `cohfs mount` inherits the open fd: a daemon that kept it would keep the
// first mount busy at unmount, as it once did.)
TEST(WritebackNamespace, AnOpenFileUnlinkedLocallyStaysReadable) {
  Cluster c;
  ASSERT_EQ(mkdir(c.Path("d").c_str(), 0755), 0);
  WriteAll(c.Path("d/f"), "still here");
  int fd = open(c.Path("d/f").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(unlink(c.Path("d/f").c_str()), 0);
  struct stat st;
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(st.st_nlink, 0u);
  std::string b = c.dir() + "/mnt2";
  c.Mount(b);
  EXPECT_EQ(List(b + "/d"), std::vector<std::string>{});
  EXPECT_EQ(PreadAll(fd), "still here");
  close(fd);
}

// Ownership on demand: a directory this client did not make (here: made
// before a remount, so nothing of it is cached) is asked for once; then the
// creates, renames and removals in it are local.
TEST(WritebackNamespace, AnExistingDirectoryIsAcquiredOnceThenChangedLocally) {
  Cluster c;
  ASSERT_EQ(mkdir(c.Path("old").c_str(), 0755), 0);
  for (int i = 0; i < 300; i++) WriteAll(c.Path("old/f" + std::to_string(i)), "x");  // > a leaf
  c.Unmount();
  c.Mount();
  std::string before = c.Stats();
  for (int i = 0; i < 100; i++) WriteAll(c.Path("old/new" + std::to_string(i)), "y");
  ASSERT_EQ(rename(c.Path("old/f1").c_str(), c.Path("old/g1").c_str()), 0);
  ASSERT_EQ(unlink(c.Path("old/f2").c_str()), 0);
  ASSERT_EQ(mkdir(c.Path("old/sub").c_str(), 0755), 0);
  std::string after = c.Stats();
  auto delta = [&](const char* name) { return StatValue(after, name) - StatValue(before, name); };
  EXPECT_EQ(delta("rpc.acquire"), 1u) << after;
  EXPECT_EQ(delta("rpc.mknod") + delta("rpc.rename") + delta("rpc.unlink") + delta("rpc.mkdir"),
            0u)
      << after;
  EXPECT_LE(delta("round_trips"), 4u) << after;  // the lookups of "old" and of its first name
  std::string b = c.dir() + "/mnt2";
  c.Mount(b);
  std::vector<std::string> names = List(b + "/old");
  EXPECT_EQ(names.size(), 300u + 100u + 1u - 1u);
  EXPECT_TRUE(std::count(names.begin(), names.end(), "g1") == 1 &&
              std::count(names.begin(), names.end(), "f1") == 0 &&
              std::count(names.begin(), names.end(), "f2") == 0);
  EXPECT_EQ(ReadAll(b + "/old/new99"), "y");
}

// A directory another mount holds is taken from it (recall) and then changed
// locally; the other mount sees every change as soon as it looks again.
TEST(WritebackNamespace, ADirectoryAnotherMountHoldsIsTakenAndItSeesTheChanges) {
  Cluster c;
  std::string b = c.dir() + "/mnt2";
  c.Mount(b);
  ASSERT_EQ(mkdir((b + "/d").c_str(), 0755), 0);  // B makes and owns it
  WriteAll(b + "/d/from-b", "b");
  EXPECT_EQ(List(c.Path("d")), std::vector<std::string>{"from-b"});  // A looks: B keeps SHARED
  // A's first change finds the directory contended (it was just recalled) and
  // goes to the server; a second later A owns it and works locally.
  WriteAll(c.Path("d/a0"), "a");
  ASSERT_TRUE(WaitFor(
      [&] {
        std::string name = c.Path("d/a" + std::to_string(StatValue(c.Stats(), "fuse.create")));
        WriteAll(name, "a");
        return StatValue(c.Stats(), "local_changes") > 0;
      },
      std::chrono::seconds(10)));
  ASSERT_EQ(unlink(c.Path("d/from-b").c_str()), 0);
  std::vector<std::string> on_a = List(c.Path("d"));
  EXPECT_EQ(List(b + "/d"), on_a);
  EXPECT_EQ(std::count(on_a.begin(), on_a.end(), "from-b"), 0);
}

// The kernel keeps a renamed dentry under its new name; a later recall of
// the directory must drop that name too (found by the model check: the
// renamer kept showing a file another mount had unlinked).
TEST(WritebackNamespace, ANameARenameMadeIsDroppedByALaterRecall) {
  Cluster c;
  std::string b = c.dir() + "/mnt2";
  c.Mount(b);
  ASSERT_EQ(mkdir(c.Path("d").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(c.Path("e").c_str(), 0755), 0);
  WriteAll(c.Path("d/f"), "data");
  WriteAll(c.Path("d/x"), "x");
  ASSERT_EQ(rename(c.Path("d/f").c_str(), c.Path("d/g").c_str()), 0);   // local, one directory
  ASSERT_EQ(rename(c.Path("d/x").c_str(), c.Path("e/y").c_str()), 0);   // local, across two
  struct stat st;
  ASSERT_EQ(lstat(c.Path("d/g").c_str(), &st), 0);  // the kernel caches the new names
  ASSERT_EQ(lstat(c.Path("e/y").c_str(), &st), 0);
  ASSERT_EQ(unlink((b + "/d/g").c_str()), 0);  // B takes d (and e) from A
  ASSERT_EQ(unlink((b + "/e/y").c_str()), 0);
  EXPECT_EQ(Result(lstat(c.Path("d/g").c_str(), &st)), "ENOENT");
  EXPECT_EQ(Result(lstat(c.Path("e/y").c_str(), &st)), "ENOENT");
  EXPECT_EQ(List(c.Path("d")), std::vector<std::string>{});
}

}  // namespace
}  // namespace cohfs::test
