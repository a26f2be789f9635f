// POSIX behaviour of every operation through a real mount, errors included.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/fs.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdio>
#include <set>
#include <string>

#include "tests/integration/cluster.h"

namespace cohfs::test {
namespace {

std::string ReadAll(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) return "<open failed: " + std::string(strerror(errno)) + ">";
  std::string out;
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  close(fd);
  return out;
}

void WriteAll(const std::string& path, const std::string& data, int flags = O_TRUNC) {
  int fd = open(path.c_str(), O_CREAT | O_WRONLY | flags, 0644);
  ASSERT_GE(fd, 0) << path << ": " << strerror(errno);
  ASSERT_EQ(write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
  ASSERT_EQ(close(fd), 0);
}

int Errno(int rc) { return rc == 0 ? 0 : errno; }

struct stat Stat(const std::string& p) {
  struct stat st{};
  EXPECT_EQ(lstat(p.c_str(), &st), 0) << p << ": " << strerror(errno);
  return st;
}

class Posix : public ::testing::Test {
 protected:
  Cluster c;
};

TEST_F(Posix, CreateWriteReadStat) {
  std::string p = c.Path("hello.txt");
  WriteAll(p, "hello, world\n");
  EXPECT_EQ(ReadAll(p), "hello, world\n");
  struct stat st = Stat(p);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0644u & ~0u);
  EXPECT_EQ(st.st_size, 13);
  EXPECT_EQ(st.st_nlink, 1u);
  EXPECT_EQ(st.st_uid, 0u);
}

TEST_F(Posix, OpenFlags) {
  std::string p = c.Path("f");
  int fd = open(p.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0600);
  ASSERT_GE(fd, 0);
  close(fd);
  EXPECT_EQ(open(p.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0600), -1);
  EXPECT_EQ(errno, EEXIST);
  WriteAll(p, "0123456789");
  WriteAll(p, "abc", O_APPEND);
  EXPECT_EQ(ReadAll(p), "0123456789abc");
  WriteAll(p, "xy", O_TRUNC);
  EXPECT_EQ(ReadAll(p), "xy");
  EXPECT_EQ(open(c.Path("missing").c_str(), O_RDONLY), -1);
  EXPECT_EQ(errno, ENOENT);
  EXPECT_EQ(open(c.Path("f/sub").c_str(), O_RDONLY), -1);
  EXPECT_EQ(errno, ENOTDIR);
  ASSERT_EQ(mkdir(c.Path("d").c_str(), 0755), 0);
  EXPECT_EQ(open(c.Path("d").c_str(), O_WRONLY), -1);
  EXPECT_EQ(errno, EISDIR);
  std::string longname(256, 'n');
  EXPECT_EQ(open(c.Path(longname).c_str(), O_CREAT | O_WRONLY, 0644), -1);
  EXPECT_EQ(errno, ENAMETOOLONG);
}

TEST_F(Posix, MkdirRmdirErrors) {
  ASSERT_EQ(mkdir(c.Path("d").c_str(), 0750), 0);
  EXPECT_EQ(Errno(mkdir(c.Path("d").c_str(), 0750)), EEXIST);
  EXPECT_TRUE(S_ISDIR(Stat(c.Path("d")).st_mode));
  EXPECT_EQ(Stat(c.Path("d")).st_mode & 07777, 0750u);
  EXPECT_EQ(Stat(c.Path("d")).st_nlink, 2u);
  ASSERT_EQ(mkdir(c.Path("d/e").c_str(), 0755), 0);
  EXPECT_EQ(Stat(c.Path("d")).st_nlink, 3u);
  WriteAll(c.Path("d/e/f"), "x");
  EXPECT_EQ(Errno(rmdir(c.Path("d/e").c_str())), ENOTEMPTY);
  EXPECT_EQ(Errno(rmdir(c.Path("d/e/f").c_str())), ENOTDIR);
  EXPECT_EQ(Errno(unlink(c.Path("d/e").c_str())), EISDIR);
  EXPECT_EQ(Errno(rmdir(c.Path("d/nope").c_str())), ENOENT);
  ASSERT_EQ(unlink(c.Path("d/e/f").c_str()), 0);
  ASSERT_EQ(rmdir(c.Path("d/e").c_str()), 0);
  EXPECT_EQ(Stat(c.Path("d")).st_nlink, 2u);
  EXPECT_EQ(Errno(access(c.Path("d/e").c_str(), F_OK)), ENOENT);
  EXPECT_EQ(Errno(mkdir(c.Path("nope/x").c_str(), 0755)), ENOENT);
}

TEST_F(Posix, HardLinks) {
  WriteAll(c.Path("a"), "data");
  ASSERT_EQ(link(c.Path("a").c_str(), c.Path("b").c_str()), 0);
  struct stat a = Stat(c.Path("a")), b = Stat(c.Path("b"));
  EXPECT_EQ(a.st_ino, b.st_ino);
  EXPECT_EQ(a.st_nlink, 2u);
  EXPECT_EQ(Errno(link(c.Path("a").c_str(), c.Path("b").c_str())), EEXIST);
  ASSERT_EQ(mkdir(c.Path("d").c_str(), 0755), 0);
  EXPECT_EQ(Errno(link(c.Path("d").c_str(), c.Path("d2").c_str())), EPERM);
  ASSERT_EQ(unlink(c.Path("a").c_str()), 0);
  EXPECT_EQ(Stat(c.Path("b")).st_nlink, 1u);
  EXPECT_EQ(ReadAll(c.Path("b")), "data");
}

TEST_F(Posix, UnlinkedOpenFileStaysReadable) {
  std::string p = c.Path("tmp");
  WriteAll(p, "still here");
  int fd = open(p.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(unlink(p.c_str()), 0);
  EXPECT_EQ(Errno(access(p.c_str(), F_OK)), ENOENT);
  char buf[32] = {};
  EXPECT_EQ(pread(fd, buf, sizeof(buf), 0), 10);
  EXPECT_STREQ(buf, "still here");
  EXPECT_EQ(pwrite(fd, "X", 1, 0), 1);
  struct stat st;
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(st.st_nlink, 0u);
  close(fd);
}

TEST_F(Posix, Symlinks) {
  ASSERT_EQ(symlink("target/of/link", c.Path("l").c_str()), 0);
  char buf[256] = {};
  EXPECT_EQ(readlink(c.Path("l").c_str(), buf, sizeof(buf)), 14);
  EXPECT_STREQ(buf, "target/of/link");
  EXPECT_TRUE(S_ISLNK(Stat(c.Path("l")).st_mode));
  EXPECT_EQ(Stat(c.Path("l")).st_size, 14);
  EXPECT_EQ(Errno(symlink("x", c.Path("l").c_str())), EEXIST);
  ASSERT_EQ(symlink("loop2", c.Path("loop1").c_str()), 0);
  ASSERT_EQ(symlink("loop1", c.Path("loop2").c_str()), 0);
  EXPECT_EQ(open(c.Path("loop1").c_str(), O_RDONLY), -1);
  EXPECT_EQ(errno, ELOOP);
  WriteAll(c.Path("real"), "via link");
  ASSERT_EQ(symlink("real", c.Path("tolink").c_str()), 0);
  EXPECT_EQ(ReadAll(c.Path("tolink")), "via link");
  EXPECT_EQ(Errno(readlink(c.Path("real").c_str(), buf, sizeof(buf)) >= 0 ? 0 : -1), EINVAL);
}

TEST_F(Posix, Mknod) {
  ASSERT_EQ(mkfifo(c.Path("fifo").c_str(), 0640), 0);
  EXPECT_TRUE(S_ISFIFO(Stat(c.Path("fifo")).st_mode));
  ASSERT_EQ(mknod(c.Path("chr").c_str(), S_IFCHR | 0600, makedev(1, 3)), 0);
  struct stat st = Stat(c.Path("chr"));
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(major(st.st_rdev), 1u);
  EXPECT_EQ(minor(st.st_rdev), 3u);
  ASSERT_EQ(mknod(c.Path("blk").c_str(), S_IFBLK | 0600, makedev(7, 0)), 0);
  EXPECT_TRUE(S_ISBLK(Stat(c.Path("blk")).st_mode));
  ASSERT_EQ(mknod(c.Path("sock").c_str(), S_IFSOCK | 0600, 0), 0);
  EXPECT_TRUE(S_ISSOCK(Stat(c.Path("sock")).st_mode));
  ASSERT_EQ(mknod(c.Path("reg").c_str(), S_IFREG | 0600, 0), 0);
  EXPECT_TRUE(S_ISREG(Stat(c.Path("reg")).st_mode));
}

TEST_F(Posix, RenameVariants) {
  WriteAll(c.Path("a"), "A");
  WriteAll(c.Path("b"), "B");
  ASSERT_EQ(rename(c.Path("a").c_str(), c.Path("b").c_str()), 0);  // over an existing file
  EXPECT_EQ(ReadAll(c.Path("b")), "A");
  EXPECT_EQ(Errno(access(c.Path("a").c_str(), F_OK)), ENOENT);
  WriteAll(c.Path("x"), "X");
  EXPECT_EQ(Errno(renameat2(AT_FDCWD, c.Path("x").c_str(), AT_FDCWD, c.Path("b").c_str(),
                            RENAME_NOREPLACE)),
            EEXIST);
  ASSERT_EQ(renameat2(AT_FDCWD, c.Path("x").c_str(), AT_FDCWD, c.Path("b").c_str(),
                      RENAME_EXCHANGE),
            0);
  EXPECT_EQ(ReadAll(c.Path("b")), "X");
  EXPECT_EQ(ReadAll(c.Path("x")), "A");
  EXPECT_EQ(Errno(renameat2(AT_FDCWD, c.Path("x").c_str(), AT_FDCWD, c.Path("none").c_str(),
                            RENAME_EXCHANGE)),
            ENOENT);
  // Directories: over an empty one works, over a non-empty one is ENOTEMPTY.
  ASSERT_EQ(mkdir(c.Path("d1").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(c.Path("d2").c_str(), 0755), 0);
  WriteAll(c.Path("d1/f"), "in d1");
  ASSERT_EQ(rename(c.Path("d1").c_str(), c.Path("d2").c_str()), 0);
  EXPECT_EQ(ReadAll(c.Path("d2/f")), "in d1");
  ASSERT_EQ(mkdir(c.Path("d3").c_str(), 0755), 0);
  EXPECT_EQ(Errno(rename(c.Path("d3").c_str(), c.Path("d2").c_str())), ENOTEMPTY);
  EXPECT_EQ(Errno(rename(c.Path("d3").c_str(), c.Path("b").c_str())), ENOTDIR);
  EXPECT_EQ(Errno(rename(c.Path("b").c_str(), c.Path("d3").c_str())), EISDIR);
  EXPECT_EQ(Errno(rename(c.Path("d2").c_str(), c.Path("d2/sub").c_str())), EINVAL);
  // Moving a directory between parents fixes both link counts.
  ASSERT_EQ(mkdir(c.Path("p1").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(c.Path("p2").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(c.Path("p1/child").c_str(), 0755), 0);
  EXPECT_EQ(Stat(c.Path("p1")).st_nlink, 3u);
  ASSERT_EQ(rename(c.Path("p1/child").c_str(), c.Path("p2/child").c_str()), 0);
  EXPECT_EQ(Stat(c.Path("p1")).st_nlink, 2u);
  EXPECT_EQ(Stat(c.Path("p2")).st_nlink, 3u);
  // A hard link renamed onto its twin is a no-op.
  ASSERT_EQ(link(c.Path("b").c_str(), c.Path("b2").c_str()), 0);
  ASSERT_EQ(rename(c.Path("b").c_str(), c.Path("b2").c_str()), 0);
  EXPECT_EQ(Errno(access(c.Path("b").c_str(), F_OK)), 0);
  EXPECT_EQ(Stat(c.Path("b2")).st_nlink, 2u);
}

TEST_F(Posix, SparseAndLargeFiles) {
  std::string p = c.Path("sparse");
  int fd = open(p.c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  const off_t far = 5LL << 30;  // past 4 GiB
  ASSERT_EQ(pwrite(fd, "end", 3, far), 3);
  ASSERT_EQ(pwrite(fd, "mid", 3, 1 << 20), 3);
  struct stat st;
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, far + 3);
  EXPECT_LT(st.st_blocks * 512, 1 << 20);  // holes take no space
  char buf[8] = {1, 1, 1, 1, 1, 1, 1, 1};
  ASSERT_EQ(pread(fd, buf, 8, 4096), 8);
  EXPECT_EQ(std::string(buf, 8), std::string(8, '\0'));
  ASSERT_EQ(pread(fd, buf, 3, far), 3);
  EXPECT_EQ(std::string(buf, 3), "end");
  ASSERT_EQ(pread(fd, buf, 3, 1 << 20), 3);
  EXPECT_EQ(std::string(buf, 3), "mid");
  EXPECT_EQ(lseek(fd, 0, SEEK_DATA), 1 << 20 & ~4095);
  EXPECT_EQ(lseek(fd, 1 << 20, SEEK_HOLE), (1 << 20) + 4096);
  EXPECT_EQ(lseek(fd, far + 3, SEEK_DATA), -1);
  EXPECT_EQ(errno, ENXIO);
  close(fd);
}

TEST_F(Posix, BigWritesAndOverwrites) {
  std::string p = c.Path("big");
  std::string data(3 << 20, '\0');
  for (size_t i = 0; i < data.size(); i++) data[i] = static_cast<char>(i * 7 + i / 4096);
  WriteAll(p, data);
  EXPECT_EQ(ReadAll(p), data);
  int fd = open(p.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  std::string patch(10000, 'Z');
  ASSERT_EQ(pwrite(fd, patch.data(), patch.size(), 12345), static_cast<ssize_t>(patch.size()));
  data.replace(12345, patch.size(), patch);
  ASSERT_EQ(ftruncate(fd, 5000), 0);
  ASSERT_EQ(ftruncate(fd, 9000), 0);  // the regrown tail reads as zeros
  close(fd);
  std::string expect = data.substr(0, 5000) + std::string(4000, '\0');
  EXPECT_EQ(ReadAll(p), expect);
}

TEST_F(Posix, Xattrs) {
  std::string p = c.Path("x");
  WriteAll(p, "");
  ASSERT_EQ(setxattr(p.c_str(), "user.a", "1", 1, 0), 0);
  ASSERT_EQ(setxattr(p.c_str(), "user.b", "22", 2, XATTR_CREATE), 0);
  EXPECT_EQ(Errno(setxattr(p.c_str(), "user.b", "3", 1, XATTR_CREATE)), EEXIST);
  EXPECT_EQ(Errno(setxattr(p.c_str(), "user.c", "3", 1, XATTR_REPLACE)), ENODATA);
  ASSERT_EQ(setxattr(p.c_str(), "user.b", "333", 3, XATTR_REPLACE), 0);
  char buf[64];
  EXPECT_EQ(getxattr(p.c_str(), "user.b", nullptr, 0), 3);
  EXPECT_EQ(getxattr(p.c_str(), "user.b", buf, sizeof(buf)), 3);
  EXPECT_EQ(std::string(buf, 3), "333");
  EXPECT_EQ(getxattr(p.c_str(), "user.b", buf, 1), -1);
  EXPECT_EQ(errno, ERANGE);
  EXPECT_EQ(getxattr(p.c_str(), "user.none", buf, sizeof(buf)), -1);
  EXPECT_EQ(errno, ENODATA);
  ssize_t n = listxattr(p.c_str(), buf, sizeof(buf));
  ASSERT_GT(n, 0);
  std::set<std::string> names;
  for (ssize_t i = 0; i < n; i += static_cast<ssize_t>(strlen(buf + i)) + 1) names.insert(buf + i);
  EXPECT_EQ(names, (std::set<std::string>{"user.a", "user.b"}));
  ASSERT_EQ(removexattr(p.c_str(), "user.a"), 0);
  EXPECT_EQ(Errno(removexattr(p.c_str(), "user.a")), ENODATA);
}

TEST_F(Posix, FallocateAndPunchHole) {
  std::string p = c.Path("fa");
  int fd = open(p.c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(fallocate(fd, 0, 0, 1 << 20), 0);
  struct stat st;
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, 1 << 20);
  EXPECT_GE(st.st_blocks * 512, 1 << 20);
  std::string data(1 << 20, 'd');
  ASSERT_EQ(pwrite(fd, data.data(), data.size(), 0), static_cast<ssize_t>(data.size()));
  ASSERT_EQ(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 8192, 8192), 0);
  char buf[3 * 4096];
  ASSERT_EQ(pread(fd, buf, sizeof(buf), 4096), static_cast<ssize_t>(sizeof(buf)));
  EXPECT_EQ(std::string(buf, 4096), std::string(4096, 'd'));
  EXPECT_EQ(std::string(buf + 4096, 8192), std::string(8192, '\0'));
  EXPECT_EQ(lseek(fd, 8192, SEEK_HOLE), 8192);
  EXPECT_EQ(lseek(fd, 8192, SEEK_DATA), 16384);
  close(fd);
}

TEST_F(Posix, StatFsReportsRealSpace) {
  struct statvfs before, after;
  ASSERT_EQ(statvfs(c.mnt().c_str(), &before), 0);
  EXPECT_GT(before.f_blocks, 0u);
  EXPECT_GT(before.f_bfree, 0u);
  EXPECT_LE(before.f_bfree, before.f_blocks);
  EXPECT_EQ(before.f_namemax, 255u);
  WriteAll(c.Path("space"), std::string(8 << 20, 's'));
  ASSERT_EQ(statvfs(c.mnt().c_str(), &after), 0);
  EXPECT_LE(after.f_bfree + (8 << 20) / after.f_bsize, before.f_bfree);
}

TEST_F(Posix, Timestamps) {
  std::string d = c.Path("d");
  ASSERT_EQ(mkdir(d.c_str(), 0755), 0);
  struct stat d0 = Stat(d);
  WriteAll(d + "/f", "x");
  struct stat d1 = Stat(d);
  EXPECT_GT(d1.st_mtim.tv_sec * 1000000000L + d1.st_mtim.tv_nsec,
            d0.st_mtim.tv_sec * 1000000000L + d0.st_mtim.tv_nsec);
  struct timespec times[2] = {{1000, 5}, {2000, 7}};
  ASSERT_EQ(utimensat(AT_FDCWD, (d + "/f").c_str(), times, 0), 0);
  struct stat f = Stat(d + "/f");
  EXPECT_EQ(f.st_atim.tv_sec, 1000);
  EXPECT_EQ(f.st_atim.tv_nsec, 5);
  EXPECT_EQ(f.st_mtim.tv_sec, 2000);
  EXPECT_EQ(f.st_mtim.tv_nsec, 7);
  struct timespec omit_now[2] = {{0, UTIME_OMIT}, {0, UTIME_NOW}};
  ASSERT_EQ(utimensat(AT_FDCWD, (d + "/f").c_str(), omit_now, 0), 0);
  struct stat g = Stat(d + "/f");
  EXPECT_EQ(g.st_atim.tv_sec, 1000);
  EXPECT_GT(g.st_mtim.tv_sec, 2000);
  EXPECT_GE(g.st_ctim.tv_sec, f.st_ctim.tv_sec);
  // A write moves mtime and ctime.
  struct timespec old[2] = {{3000, 0}, {3000, 0}};
  ASSERT_EQ(utimensat(AT_FDCWD, (d + "/f").c_str(), old, 0), 0);
  WriteAll(d + "/f", "more", O_APPEND);
  EXPECT_GT(Stat(d + "/f").st_mtim.tv_sec, 3000);
}

TEST_F(Posix, ChmodChown) {
  std::string p = c.Path("f");
  WriteAll(p, "");
  ASSERT_EQ(chmod(p.c_str(), 04751), 0);
  EXPECT_EQ(Stat(p).st_mode & 07777, 04751u);
  ASSERT_EQ(chown(p.c_str(), 1234, 5678), 0);
  EXPECT_EQ(Stat(p).st_uid, 1234u);
  EXPECT_EQ(Stat(p).st_gid, 5678u);
  ASSERT_EQ(lchown(p.c_str(), -1, 42), 0);
  EXPECT_EQ(Stat(p).st_uid, 1234u);
  EXPECT_EQ(Stat(p).st_gid, 42u);
}

TEST_F(Posix, PermissionsForNonRoot) {
  ASSERT_EQ(mkdir(c.Path("private").c_str(), 0700), 0);
  WriteAll(c.Path("private/secret"), "s");
  WriteAll(c.Path("ro"), "r");
  ASSERT_EQ(chmod(c.Path("ro").c_str(), 0644), 0);
  ASSERT_EQ(mkdir(c.Path("pub").c_str(), 0777), 0);
  ASSERT_EQ(chmod(c.Path("pub").c_str(), 01777), 0);  // sticky, like /tmp
  WriteAll(c.Path("pub/roots"), "mine");
  const uid_t kUser = 65534;
  const gid_t kGroup = 65534;
  auto as_user = [&](const std::function<int()>& fn) { return RunAs(kUser, kGroup, fn); };
  EXPECT_EQ(as_user([&] { return open(c.Path("private/secret").c_str(), O_RDONLY) < 0 ? errno : 0; }),
            EACCES);
  EXPECT_EQ(as_user([&] { return open(c.Path("ro").c_str(), O_WRONLY) < 0 ? errno : 0; }), EACCES);
  EXPECT_EQ(as_user([&] { return open(c.Path("ro").c_str(), O_RDONLY) < 0 ? errno : 0; }), 0);
  EXPECT_EQ(as_user([&] { return mkdir(c.Path("nope").c_str(), 0755) ? errno : 0; }), EACCES);
  EXPECT_EQ(as_user([&] { return chmod(c.Path("ro").c_str(), 0777) ? errno : 0; }), EPERM);
  EXPECT_EQ(as_user([&] { return chown(c.Path("ro").c_str(), kUser, kGroup) ? errno : 0; }), EPERM);
  EXPECT_EQ(as_user([&] { return unlink(c.Path("pub/roots").c_str()) ? errno : 0; }), EPERM);
  EXPECT_EQ(as_user([&] {
              int fd = open(c.Path("pub/mine").c_str(), O_CREAT | O_WRONLY, 0600);
              if (fd < 0) return errno;
              close(fd);
              return unlink(c.Path("pub/mine").c_str()) ? errno : 0;
            }),
            0);
  EXPECT_EQ(as_user([&] { return setxattr(c.Path("ro").c_str(), "user.k", "v", 1, 0) ? errno : 0; }),
            EACCES);
}

TEST_F(Posix, ReaddirStableWhileChanging) {
  ASSERT_EQ(mkdir(c.Path("d").c_str(), 0755), 0);
  for (int i = 0; i < 300; i++) WriteAll(c.Path("d/f" + std::to_string(i)), "");
  DIR* dir = opendir(c.Path("d").c_str());
  ASSERT_NE(dir, nullptr);
  std::set<std::string> seen;
  int n = 0;
  while (dirent* e = readdir(dir)) {
    seen.insert(e->d_name);
    if (++n == 100) {
      // Remove entries not yet seen and add new ones mid-listing.
      for (int i = 0; i < 300; i += 2) {
        std::string name = "f" + std::to_string(i);
        if (!seen.count(name)) unlink(c.Path("d/" + name).c_str());
      }
      WriteAll(c.Path("d/new"), "");
    }
  }
  closedir(dir);
  // Every entry that existed throughout was seen exactly once (a set), and
  // "." and ".." came too.
  for (int i = 1; i < 300; i += 2) EXPECT_TRUE(seen.count("f" + std::to_string(i))) << i;
  EXPECT_TRUE(seen.count("."));
  EXPECT_TRUE(seen.count(".."));
  // telldir/seekdir cookies resume where they left off.
  dir = opendir(c.Path("d").c_str());
  ASSERT_NE(dir, nullptr);
  for (int i = 0; i < 10; i++) ASSERT_NE(readdir(dir), nullptr);
  long pos = telldir(dir);
  std::string next = readdir(dir)->d_name;
  seekdir(dir, pos);
  EXPECT_EQ(readdir(dir)->d_name, next);
  closedir(dir);
}

TEST_F(Posix, StatsCountRoundTrips) {
  WriteAll(c.Path("f"), "x");
  std::string stats = c.Stats();
  EXPECT_NE(stats.find("rpc_total "), std::string::npos) << stats;
  // The first change in the root asks for it; the create is then local.
  EXPECT_NE(stats.find("rpc.acquire 1"), std::string::npos) << stats;
  EXPECT_NE(stats.find("local_changes 1"), std::string::npos) << stats;
  EXPECT_NE(stats.find("fuse.create 1"), std::string::npos) << stats;
}

}  // namespace
}  // namespace cohfs::test

namespace cohfs::test {
namespace {

TEST(PosixLarge, DirectoryOfManyEntriesListsCompletely) {
  Cluster c;
  std::string d = c.Path("many");
  ASSERT_EQ(mkdir(d.c_str(), 0755), 0);
  const int kEntries = 100000;  // many server ReadDir batches and FUSE buffers
  for (int i = 0; i < kEntries; i++) {
    ASSERT_EQ(mknod((d + "/n" + std::to_string(i)).c_str(), S_IFREG | 0644, 0), 0) << i;
  }
  // A cold client: unmount and mount again, then list with attributes.
  c.Unmount();
  c.Mount();
  DIR* dir = opendir(d.c_str());
  ASSERT_NE(dir, nullptr);
  std::set<std::string> names;
  while (dirent* e = readdir(dir)) {
    names.insert(e->d_name);
    EXPECT_NE(e->d_ino, 0u);
  }
  closedir(dir);
  EXPECT_EQ(names.size(), size_t(kEntries) + 2);
  for (int i = 0; i < kEntries; i += 997) EXPECT_TRUE(names.count("n" + std::to_string(i)));
  struct stat st;
  EXPECT_EQ(stat((d + "/n99999").c_str(), &st), 0);
}

TEST(PosixLarge, WriteBehindKeepsOrderAndReportsAtClose) {
  Cluster c;
  std::string p = c.Path("wb");
  int fd = open(p.c_str(), O_CREAT | O_WRONLY, 0644);
  ASSERT_GE(fd, 0);
  std::string expect;
  for (int i = 0; i < 300; i++) {  // small unaligned writes, like tar's 10 KiB records
    std::string rec(10240 - i, static_cast<char>('a' + i % 26));
    ASSERT_EQ(write(fd, rec.data(), rec.size()), static_cast<ssize_t>(rec.size()));
    expect += rec;
  }
  struct stat st;
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, static_cast<off_t>(expect.size()));  // buffered, yet visible
  ASSERT_EQ(pwrite(fd, "HOLE", 4, 5 << 20), 4);  // non-contiguous: flushes the buffer
  expect.resize(5 << 20, '\0');
  expect += "HOLE";
  ASSERT_EQ(close(fd), 0);
  EXPECT_EQ(ReadAll(p), expect);
  c.Unmount();
  c.Mount();
  EXPECT_EQ(ReadAll(p), expect);
}

}  // namespace
}  // namespace cohfs::test
