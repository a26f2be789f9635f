// Attribute changes of files a client owns are answered from its cache and
// shipped in batches (DESIGN §6): they are visible at once, reach the server
// soon without further traffic, and are durable after fsync.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "tests/integration/cluster.h"

namespace cohfs::test {
namespace {

constexpr int64_t kMtimeSec = 1'000'000'000;

void ChangeAttributes(const std::string& path) {
  ASSERT_EQ(chmod(path.c_str(), 0600), 0);
  ASSERT_EQ(chown(path.c_str(), 1000, 1001), 0);
  timespec times[2] = {{kMtimeSec - 5, 0}, {kMtimeSec, 123}};
  ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), times, 0), 0);
}

bool HasChangedAttributes(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && (st.st_mode & 07777) == 0600 && st.st_uid == 1000 &&
         st.st_gid == 1001 && st.st_mtim.tv_sec == kMtimeSec && st.st_mtim.tv_nsec == 123 &&
         st.st_atim.tv_sec == kMtimeSec - 5;
}

// An empty file made by this client: it holds it EXCLUSIVE.
bool Touch(const std::string& path) {
  int fd = open(path.c_str(), O_CREAT | O_WRONLY, 0644);
  return fd >= 0 && close(fd) == 0;
}

TEST(Writeback, OwnedAttributeChangesAreLocalAndReachTheServerByThemselves) {
  Cluster c;
  std::string f = c.Path("f");
  ASSERT_TRUE(Touch(f));
  uint64_t setattr_rpcs = StatValue(c.Stats(), "rpc.setAttr");
  ChangeAttributes(f);
  EXPECT_TRUE(HasChangedAttributes(f));
  std::string stats = c.Stats();
  EXPECT_EQ(StatValue(stats, "rpc.setAttr"), setattr_rpcs) << stats;
  EXPECT_GE(StatValue(stats, "local_changes"), 3u) << stats;
  // A second client asks the server; nothing else is sent by the first one,
  // so the changes get there on the log's own timer.
  std::string other = c.dir() + "/mnt2";
  c.Mount(other);
  EXPECT_TRUE(WaitFor([&] { return HasChangedAttributes(other + "/f"); }, std::chrono::seconds(10)));
  EXPECT_GE(StatValue(c.Stats(), "rpc.commit"), 1u);
}

TEST(Writeback, FsyncMakesLocalChangesDurable) {
  ClusterOptions o;
  o.serve_flags = "--lease 2";  // the unmount below gives the dead server one lease
  Cluster c(o);
  std::string f = c.Path("f");
  int fd = open(f.c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "data", 4), 4);
  ChangeAttributes(f);
  ASSERT_EQ(fsync(fd), 0);
  c.KillServer();  // a crash right after fsync returned
  close(fd);
  c.Unmount();
  c.StartServer();
  c.Mount();
  EXPECT_TRUE(HasChangedAttributes(f));
  struct stat st;
  ASSERT_EQ(stat(f.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 4);
}

TEST(Writeback, UnmountShipsEverythingLogged) {
  Cluster c;
  ASSERT_EQ(mkdir(c.Path("d").c_str(), 0755), 0);
  for (int i = 0; i < 200; i++) {
    std::string f = c.Path("d/f" + std::to_string(i));
    ASSERT_TRUE(Touch(f));
    ASSERT_EQ(chmod(f.c_str(), 0600 | (i % 8)), 0);
  }
  c.Unmount();
  c.StopServer();
  c.StartServer();
  c.Mount();
  for (int i = 0; i < 200; i++) {
    struct stat st;
    ASSERT_EQ(stat(c.Path("d/f" + std::to_string(i)).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600u | (i % 8)) << i;
  }
}

TEST(Writeback, LocalChangesFollowPermissionRules) {
  Cluster c;
  std::string f = c.Path("f");
  ASSERT_TRUE(Touch(f));
  ASSERT_EQ(chown(f.c_str(), 1000, 1000), 0);
  ASSERT_EQ(chmod(f.c_str(), 06755), 0);
  // The owner may not give the file away or set times of a file it does not own.
  EXPECT_EQ(RunAs(1000, 1000, [&] { return chown(f.c_str(), 2000, 1000) == 0 ? 0 : errno; }), EPERM);
  EXPECT_EQ(RunAs(2000, 2000, [&] { return chmod(f.c_str(), 0777) == 0 ? 0 : errno; }), EPERM);
  EXPECT_EQ(RunAs(1000, 1000, [&] { return chmod(f.c_str(), 0700) == 0 ? 0 : errno; }), 0);
  // chown by root clears set-id bits, locally as on the server.
  ASSERT_EQ(chmod(f.c_str(), 06755), 0);
  ASSERT_EQ(chown(f.c_str(), 1000, 1000), 0);
  struct stat st;
  ASSERT_EQ(stat(f.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  c.Unmount();
  c.Mount();
  ASSERT_EQ(stat(f.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  EXPECT_EQ(st.st_uid, 1000u);
}

std::string ReadAll(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) return "<" + std::string(strerror(errno)) + ">";
  std::string out(1 << 16, '\0');
  ssize_t n = read(fd, out.data(), out.size());
  close(fd);
  out.resize(n < 0 ? 0 : static_cast<size_t>(n));
  return out;
}

TEST(Writeback, FilesCreatedInOwnedDirectoriesAreLocal) {
  Cluster c;
  ASSERT_EQ(mkdir(c.Path("d").c_str(), 0755), 0);  // made by this client: it holds it
  uint64_t mknods = StatValue(c.Stats(), "rpc.mknod");
  for (int i = 0; i < 100; i++) {
    std::string f = c.Path("d/f" + std::to_string(i));
    int fd = open(f.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0640);
    ASSERT_GE(fd, 0) << f << ": " << strerror(errno);
    std::string data = "file " + std::to_string(i);
    ASSERT_EQ(write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
    ASSERT_EQ(close(fd), 0);
  }
  EXPECT_EQ(StatValue(c.Stats(), "rpc.mknod"), mknods);
  int fd = open(c.Path("d/f7").c_str(), O_CREAT | O_EXCL | O_WRONLY, 0640);
  EXPECT_EQ(fd, -1);
  EXPECT_EQ(errno, EEXIST);
  struct stat st;
  ASSERT_EQ(stat(c.Path("d").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 100);  // a directory's size is its entry count
  c.Unmount();
  c.Mount();
  for (int i = 0; i < 100; i++) {
    std::string f = c.Path("d/f" + std::to_string(i));
    EXPECT_EQ(ReadAll(f), "file " + std::to_string(i));
    ASSERT_EQ(stat(f.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode, S_IFREG | 0640u);
    EXPECT_EQ(st.st_nlink, 1u);
  }
}

TEST(Writeback, LocalCreatesInheritAsTheServerDoes) {
  Cluster c;
  std::string d = c.Path("shared");
  ASSERT_EQ(mkdir(d.c_str(), 0777), 0);
  ASSERT_EQ(chown(d.c_str(), 0, 1234), 0);
  ASSERT_EQ(chmod(d.c_str(), 02777), 0);
  std::string f = d + "/by-user";
  // Not in group 1234: the file takes the directory's group, and a setgid
  // bit asked for with group exec is dropped.
  ASSERT_EQ(RunAs(1000, 1000, [&] {
              int fd = open(f.c_str(), O_CREAT | O_WRONLY, 02770);
              return fd < 0 ? errno : (close(fd), 0);
            }),
            0);
  struct stat local, server;
  ASSERT_EQ(stat(f.c_str(), &local), 0);
  EXPECT_EQ(local.st_uid, 1000u);
  EXPECT_EQ(local.st_gid, 1234u);
  c.Unmount();
  c.Mount();
  ASSERT_EQ(stat(f.c_str(), &server), 0);
  EXPECT_EQ(server.st_uid, local.st_uid);
  EXPECT_EQ(server.st_gid, local.st_gid);
  EXPECT_EQ(server.st_mode, local.st_mode);
  EXPECT_EQ(server.st_mtim.tv_sec, local.st_mtim.tv_sec);
  EXPECT_EQ(server.st_mtim.tv_nsec, local.st_mtim.tv_nsec);
}

// Data written into a file that stays open is not held back: it reaches the
// server within about a second, so a client that then dies has lost nothing
// of it (as a local machine that crashed after its dirty-page writeback).
TEST(Writeback, DataInAFileKeptOpenReachesTheServerByItself) {
  Cluster c;
  std::string f = c.Path("open");
  int fd = open(f.c_str(), O_CREAT | O_WRONLY, 0644);
  ASSERT_GE(fd, 0);
  std::string data(100000, 'd');
  ASSERT_EQ(write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
  EXPECT_TRUE(WaitFor([&] { return StatValue(c.Stats(), "rpc.write") >= 1; },
                      std::chrono::seconds(10)))
      << c.Stats();
  // The logged create went out ahead of the data. Crash the client with the
  // file still open and nothing flushed by hand.
  c.KillClient();
  close(fd);
  c.Mount();
  struct stat st;
  ASSERT_EQ(stat(f.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, static_cast<off_t>(data.size()));
}

}  // namespace
}  // namespace cohfs::test
