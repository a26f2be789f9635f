// Bad input and dead peers: clear errors, no hangs, the server survives.
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <thread>

#include "tests/integration/cluster.h"

namespace cohfs::test {
namespace {

int ConnectTo(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// True when the server closed the connection (recv returns 0 or an error).
bool ServerClosed(int fd) {
  timeval tv{30, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  char buf[256];
  while (true) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n == 0) return true;
    if (n < 0) return errno != EAGAIN && errno != EWOULDBLOCK;
  }
}

bool MountWorks(Cluster& c, const std::string& name) {
  std::string p = c.Path(name);
  int fd = open(p.c_str(), O_CREAT | O_WRONLY, 0644);
  if (fd < 0) return false;
  bool ok = write(fd, "ok", 2) == 2;
  close(fd);
  struct stat st;
  return ok && stat(p.c_str(), &st) == 0 && st.st_size == 2;
}

// A TCP socket bound to an ephemeral loopback port (-1 on failure).
int BindLoopback(int* port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    if (fd >= 0) close(fd);
    return -1;
  }
  *port = ntohs(a.sin_port);
  return fd;
}

TEST(Failure, MountOfUnreachableServerFailsAtOnce) {
  char tmpl[] = "/var/tmp/cohfs-mnt-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  // A port nobody listens on: bind one, close it.
  int port = 0;
  int fd = BindLoopback(&port);
  ASSERT_GE(fd, 0);
  close(fd);
  std::string out;
  int rc =
      RunCommand(CohfsBinary() + " mount 127.0.0.1:" + std::to_string(port) + " " + tmpl, &out);
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("cannot reach server"), std::string::npos) << out;
  EXPECT_NE(out.find("ECONNREFUSED"), std::string::npos) << out;
  rmdir(tmpl);
}

TEST(Failure, MountOfSilentPeerFailsWithinItsTimeout) {
  char tmpl[] = "/var/tmp/cohfs-mnt-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  // Accepts the TCP connection (the kernel does, from the backlog) and never answers.
  int port = 0;
  int fd = BindLoopback(&port);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(listen(fd, 4), 0);
  std::string out;
  auto start = std::chrono::steady_clock::now();
  // `timeout` only keeps a regression from hanging the suite.
  int rc = RunCommand("timeout 60 " + CohfsBinary() + " mount 127.0.0.1:" + std::to_string(port) +
                          " " + tmpl + " --timeout 2",
                      &out);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("ETIMEDOUT"), std::string::npos) << out;
  EXPECT_NE(out.find("no answer to the handshake within 2000 ms"), std::string::npos) << out;
  EXPECT_GE(took, std::chrono::milliseconds(1900));
  EXPECT_LT(took, std::chrono::seconds(10));
  struct statvfs sv;
  EXPECT_EQ(statvfs(tmpl, &sv), 0);  // nothing was mounted there
  close(fd);
  rmdir(tmpl);
}

TEST(Failure, MountOntoACohfsMountIsRefused) {
  Cluster c;
  ASSERT_TRUE(MountWorks(c, "f"));
  for (const std::string& m : {c.mnt(), c.mnt() + "/", c.mnt() + "/../mnt"}) {
    std::string out;
    int rc = RunCommand(
        "timeout 60 " + CohfsBinary() + " mount 127.0.0.1:" + std::to_string(c.port()) + " " + m,
        &out);
    EXPECT_EQ(rc, 1) << m << ": " << out;
    EXPECT_NE(out.find("is already a cohfs mount"), std::string::npos) << out;
  }
  EXPECT_TRUE(MountWorks(c, "g"));  // the first mount is untouched
}

TEST(Failure, ServedImageIsNotServedTwiceFormattedOrChecked) {
  Cluster c;
  ASSERT_TRUE(MountWorks(c, "keep"));
  std::string out;
  // `timeout`: a second server that is not refused would run until killed.
  EXPECT_EQ(RunCommand("timeout 60 " + CohfsBinary() + " serve " + c.image() +
                           " --listen 127.0.0.1:0 --insecure",
                       &out),
            1)
      << out;
  EXPECT_NE(out.find("is in use by another cohfs process"), std::string::npos) << out;
  for (const char* flags : {"", " --force"}) {
    EXPECT_EQ(RunCommand(CohfsBinary() + " format " + c.image() + flags, &out), 1) << out;
    EXPECT_NE(out.find("is in use by another cohfs process"), std::string::npos) << out;
  }
  // fsck of a live image is refused too: what it read would be a moment of
  // a changing store, without the server's unsynced changes and open files.
  EXPECT_EQ(c.Fsck(&out), 1) << out;
  EXPECT_NE(out.find("is in use by another cohfs process"), std::string::npos) << out;
  // The image is intact, also for a new server and a new mount.
  EXPECT_TRUE(MountWorks(c, "keep"));
  c.Unmount();
  c.StopServer();
  c.StartServer();
  c.Mount();
  struct stat st;
  ASSERT_EQ(stat(c.Path("keep").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 2);
}

// Frames in clear (--insecure): with a key none of this gets past the
// handshake (secure_channel_test.cc).
TEST(Failure, MalformedFramesCloseOnlyThatConnection) {
  ClusterOptions o;
  o.insecure = true;
  Cluster c(o);
  ASSERT_TRUE(MountWorks(c, "before"));
  // Garbage header.
  int fd = ConnectTo(c.port());
  ASSERT_GE(fd, 0);
  std::string junk(64, '\x5a');
  ASSERT_EQ(send(fd, junk.data(), junk.size(), 0), 64);
  EXPECT_TRUE(ServerClosed(fd));
  close(fd);
  // A valid magic with an oversized length.
  fd = ConnectTo(c.port());
  char hdr[24] = {'C', 'H', 'F', 'S', 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0};
  uint32_t huge = 0x7ffffff8;
  std::memcpy(hdr + 16, &huge, 4);
  ASSERT_EQ(send(fd, hdr, sizeof(hdr), 0), 24);
  EXPECT_TRUE(ServerClosed(fd));
  close(fd);
  // A well-framed message whose Cap'n Proto content is garbage.
  fd = ConnectTo(c.port());
  char frame[24 + 32] = {'C', 'H', 'F', 'S', 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0};
  uint32_t msg = 32;
  std::memcpy(frame + 16, &msg, 4);
  std::memset(frame + 24, 0xff, 32);
  ASSERT_EQ(send(fd, frame, sizeof(frame), 0), static_cast<ssize_t>(sizeof(frame)));
  EXPECT_TRUE(ServerClosed(fd));
  close(fd);
  // A client that connects and vanishes mid-frame.
  fd = ConnectTo(c.port());
  ASSERT_EQ(send(fd, hdr, 10, 0), 10);
  close(fd);
  EXPECT_TRUE(MountWorks(c, "after"));
}

// A soft mount (-o soft,timeo=S) fails calls that need a server gone for S
// seconds with EIO; once the server is back it reconnects by itself. (The
// default, a hard mount, waits: tests/integration/restart_test.cc.)
TEST(Failure, SoftMountFailsWithEioWhileTheServerIsGone) {
  ClusterOptions o;
  o.mount_flags = "-o soft,timeo=2";
  Cluster c(o);
  ASSERT_TRUE(MountWorks(c, "f"));
  c.KillServer();
  auto start = std::chrono::steady_clock::now();
  struct statvfs sv;
  EXPECT_NE(statvfs(c.mnt().c_str(), &sv), 0);
  EXPECT_EQ(errno, EIO) << strerror(errno);
  DIR* dir = opendir(c.mnt().c_str());  // listings always come from the server
  errno = 0;
  EXPECT_TRUE(dir == nullptr || readdir(dir) == nullptr);
  EXPECT_EQ(errno, EIO) << strerror(errno);
  if (dir) closedir(dir);
  auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - start);
  EXPECT_LT(waited.count(), 15000) << "about timeo (2 s), not " << waited.count() << " ms";
  c.StartServer();
  // Back by itself: the daemon reconnects and resumes (no remount).
  EXPECT_TRUE(WaitFor([&] { return statvfs(c.mnt().c_str(), &sv) == 0; }, std::chrono::seconds(60)));
  EXPECT_TRUE(MountWorks(c, "after"));
}

TEST(Failure, FullDeviceGivesEnospc) {
  ClusterOptions o;
  o.image_bytes = 64ull << 20;
  Cluster c(o);
  std::string chunk(1 << 20, 'f');
  int fd = open(c.Path("filler").c_str(), O_CREAT | O_WRONLY, 0644);
  ASSERT_GE(fd, 0);
  int err = 0;
  off_t acked = 0;
  for (int i = 0; i < 128; i++) {
    ssize_t n = write(fd, chunk.data(), chunk.size());
    if (n < 0) {
      err = errno;
      break;
    }
    acked += n;
  }
  EXPECT_EQ(err, ENOSPC);
  // What write() acknowledged is stored (space grants): fsync and close have
  // nothing to report, and the size is all of it (it once lost 1 MiB of 16).
  EXPECT_EQ(fsync(fd), 0);
  EXPECT_EQ(close(fd), 0);
  struct stat st;
  ASSERT_EQ(stat(c.Path("filler").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, acked);
  EXPECT_GT(acked, 32 << 20);
  EXPECT_TRUE(MountWorks(c, "small"));  // metadata still works on a full device
  // Deleting frees the space again (once the kernel drops the inode).
  ASSERT_EQ(unlink(c.Path("filler").c_str()), 0);
  EXPECT_TRUE(WaitFor(
      [&] {
        int f = open(c.Path("again").c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
        bool ok = f >= 0 && write(f, chunk.data(), chunk.size()) == ssize_t(chunk.size());
        if (f >= 0) close(f);
        return ok;
      },
      std::chrono::seconds(30)));
}

}  // namespace
}  // namespace cohfs::test
