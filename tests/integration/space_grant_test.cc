// A full device (issue 8 items 5 and 6): written-behind data is acknowledged
// only within the client's space grant, so every acknowledged byte is stored;
// a failure the server reports later (a refused change) reaches every open
// file's fsync once, and a close.
#include <fcntl.h>
#include <gtest/gtest.h>
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

constexpr size_t kChunk = 256 << 10;

// The byte at `offset` of file number `id` (so a misplaced chunk shows).
char Pattern(int id, uint64_t offset) { return static_cast<char>((offset / 512 * 31 + id) % 251); }

std::string Chunk(int id, uint64_t offset, size_t bytes) {
  std::string s(bytes, '\0');
  for (size_t i = 0; i < bytes; i++) s[i] = Pattern(id, offset + i);
  return s;
}

struct Filled {
  uint64_t acked = 0;  // bytes write() acknowledged
  int write_errno = 0;
  int fsync_rc = -2, close_rc = -2;
};

// Writes `path` in chunks of `chunk` bytes until write() fails, then fsyncs and closes.
Filled FillUntilFull(const std::string& path, int id, size_t chunk) {
  Filled f;
  int fd = open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
  if (fd < 0) {
    f.write_errno = errno;
    return f;
  }
  for (int i = 0; i < 100000; i++) {
    std::string data = Chunk(id, f.acked, chunk);
    ssize_t n = pwrite(fd, data.data(), data.size(), static_cast<off_t>(f.acked));
    if (n < 0) {
      f.write_errno = errno;
      break;
    }
    f.acked += static_cast<uint64_t>(n);  // short: the kernel split it and a part failed
  }
  f.fsync_rc = fsync(fd);
  f.close_rc = close(fd);
  return f;
}

// The file holds exactly the acknowledged bytes, as written.
void ExpectStored(const std::string& path, int id, uint64_t acked) {
  int fd = open(path.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0) << path;
  struct stat st;
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), acked) << path;
  std::string buf(kChunk, '\0');
  uint64_t off = 0;
  while (off < acked) {
    ssize_t n = pread(fd, buf.data(), buf.size(), static_cast<off_t>(off));
    ASSERT_GT(n, 0) << path << " at " << off;
    std::string want = Chunk(id, off, static_cast<size_t>(n));
    ASSERT_EQ(std::string(buf.data(), static_cast<size_t>(n)), want) << path << " at " << off;
    off += static_cast<uint64_t>(n);
  }
  close(fd);
}

TEST(SpaceGrant, TwoMountsFillTheDeviceAndEveryAcknowledgedByteIsStored) {
  ClusterOptions o;
  o.image_bytes = 64ull << 20;
  Cluster c(o);
  const std::string second = c.dir() + "/mnt2";
  c.Mount(second);
  // One mount writes big chunks, the other small ones, at once.
  Filled a, b;
  std::thread ta([&] { a = FillUntilFull(c.Path("a"), 1, kChunk); });
  std::thread tb([&] { b = FillUntilFull(second + "/b", 2, 4096 * 3); });
  ta.join();
  tb.join();
  // Past the grants, writes went to the server and were refused there.
  EXPECT_EQ(a.write_errno, ENOSPC);
  EXPECT_EQ(b.write_errno, ENOSPC);
  EXPECT_GT(a.acked + b.acked, 32ull << 20);  // the device did fill
  // Nothing acknowledged failed later: fsync and close have nothing to report.
  EXPECT_EQ(a.fsync_rc, 0);
  EXPECT_EQ(b.fsync_rc, 0);
  EXPECT_EQ(a.close_rc, 0);
  EXPECT_EQ(b.close_rc, 0);
  EXPECT_GT(StatValue(c.Stats(), "writes_through"), 0u);  // those past the grant
  // Every acknowledged byte is there after a remount and a server restart.
  c.Unmount(second);
  c.Unmount();
  c.StopServer();
  c.StartServer();
  c.Mount();
  ExpectStored(c.Path("a"), 1, a.acked);
  ExpectStored(c.Path("b"), 2, b.acked);
}

uint64_t AvailableBytes(const std::string& path) {
  struct statvfs sv {};
  return statvfs(path.c_str(), &sv) == 0 ? sv.f_bavail * sv.f_frsize : 0;
}

// A grant unused for a lease goes back: an idle mount keeps no free space
// from the others, and its next writes get a grant again.
TEST(SpaceGrant, AnIdleMountGivesItsGrantBack) {
  ClusterOptions o;
  o.image_bytes = 512ull << 20;
  o.serve_flags = "--lease 2";
  Cluster c(o);
  const std::string second = c.dir() + "/mnt2";
  c.Mount(second);
  const std::string mib(1 << 20, 'x');
  int fd = open(c.Path("f").c_str(), O_CREAT | O_WRONLY, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, mib.data(), mib.size()), static_cast<ssize_t>(mib.size()));
  ASSERT_EQ(close(fd), 0);
  uint64_t granted = StatValue(c.Stats(), "space_grant_bytes");
  ASSERT_GT(granted, 8ull << 20) << "the write brought no grant";
  uint64_t seen_by_other = AvailableBytes(second);
  ASSERT_TRUE(WaitFor([&] { return StatValue(c.Stats(), "space_grant_bytes") == 0; },
                      std::chrono::seconds(30)))
      << "the idle mount keeps its grant";
  EXPECT_GE(AvailableBytes(second), seen_by_other + granted - (1 << 20))
      << "the other mount does not see the space given back";
  // Writing again brings a grant again: data goes behind, not through.
  uint64_t through = StatValue(c.Stats(), "writes_through");
  fd = open(c.Path("g").c_str(), O_CREAT | O_WRONLY, 0644);
  ASSERT_GE(fd, 0);
  for (int i = 0; i < 64; i++) ASSERT_EQ(write(fd, std::string(4096, 'y').data(), 4096), 4096);
  ASSERT_EQ(close(fd), 0);
  EXPECT_LE(StatValue(c.Stats(), "writes_through"), through + 1);
  EXPECT_GT(StatValue(c.Stats(), "space_grant_bytes"), 0u);
}

TEST(SpaceGrant, ARefusedChangeReachesEveryFdsFsyncOnceAndAClose) {
  ClusterOptions o;
  o.image_bytes = 64ull << 20;
  Cluster c(o);
  // A file with data in blocks (not inline), on the server.
  const std::string f = c.Path("f");
  int fd = open(f.c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  std::string data = Chunk(3, 0, 3 * 4096);
  ASSERT_EQ(write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
  ASSERT_EQ(fsync(fd), 0);
  ASSERT_EQ(close(fd), 0);
  // Fill the device to the last block.
  Filled big = FillUntilFull(c.Path("filler"), 4, 1 << 20);
  ASSERT_EQ(big.write_errno, ENOSPC);
  Filled small = FillUntilFull(c.Path("filler2"), 5, 4096);
  ASSERT_EQ(small.write_errno, ENOSPC);
  ASSERT_EQ(small.fsync_rc, 0);
  // Two open files; a truncation inside a block is answered here (the file
  // is this client's) and refused by the server: its copy-on-write of the
  // last block finds no space.
  int fd1 = open(f.c_str(), O_RDWR), fd2 = open(f.c_str(), O_RDWR);
  ASSERT_GE(fd1, 0);
  ASSERT_GE(fd2, 0);
  ASSERT_EQ(ftruncate(fd1, 5000), 0);
  errno = 0;
  EXPECT_EQ(fsync(fd1), -1);
  EXPECT_EQ(errno, ENOSPC);
  errno = 0;
  EXPECT_EQ(fsync(fd2), -1);
  EXPECT_EQ(errno, ENOSPC);
  EXPECT_EQ(fsync(fd1), 0);  // each fd sees it once
  EXPECT_EQ(fsync(fd2), 0);
  errno = 0;
  EXPECT_EQ(close(fd1), -1);  // and close once
  EXPECT_EQ(errno, ENOSPC);
  EXPECT_EQ(close(fd2), 0);
  // The refusal is visible, not lost: the server's size stands (the kernel's
  // copy is invalidated from the client's own thread, soon after the reply).
  struct stat st;
  EXPECT_TRUE(WaitFor([&] { return stat(f.c_str(), &st) == 0 && st.st_size == 3 * 4096; },
                      std::chrono::seconds(10)))
      << st.st_size;
  // Space again, then the same truncation works.
  ASSERT_EQ(unlink(c.Path("filler").c_str()), 0);
  EXPECT_TRUE(WaitFor(
      [&] {
        int t = open(f.c_str(), O_RDWR);
        bool ok = t >= 0 && ftruncate(t, 5000) == 0 && fsync(t) == 0;
        if (t >= 0) close(t);
        return ok;
      },
      std::chrono::seconds(30)));
  ASSERT_EQ(stat(f.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 5000);
}

}  // namespace
}  // namespace cohfs::test
