// Bounded peers (server/reactor.h, PeerLimits): half-sent frames, garbage and
// a peer that never reads its replies leave the server alive, its memory
// bounded and its other clients working.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "tests/integration/cluster.h"

namespace cohfs::test {
namespace {

constexpr size_t kMiB = 1 << 20;

// Under AddressSanitizer resident memory measures its quarantine and redzones,
// not the server's: the bound is checked in the plain build only.
#if defined(__SANITIZE_ADDRESS__)
constexpr size_t kRssBoundBytes = SIZE_MAX / 2;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr size_t kRssBoundBytes = SIZE_MAX / 2;
#else
constexpr size_t kRssBoundBytes = 64 * kMiB;
#endif
#else
constexpr size_t kRssBoundBytes = 64 * kMiB;
#endif
constexpr size_t kLargestFrameBytes = 24 + 8 * kMiB + 1 * kMiB;  // header, message, bulk

// Resident memory of a process, in bytes (0 when unknown).
size_t RssBytes(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  }
  return 0;
}

int ConnectNonBlocking(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return -1;
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

// A frame header: kind 1 (request).
std::string Header(uint64_t request_id, uint32_t message_bytes, uint32_t bulk_bytes) {
  char h[24] = {'C', 'H', 'F', 'S', 1, 0, 0, 0};
  std::memcpy(h + 8, &request_id, 8);
  std::memcpy(h + 16, &message_bytes, 4);
  std::memcpy(h + 20, &bulk_bytes, 4);
  return std::string(h, sizeof(h));
}

// A well-formed request whose message is one segment holding a null root: a
// default (hello, version 0) request, which the server answers with an error.
std::string NullRequest(uint64_t request_id) {
  std::string f = Header(request_id, 16, 0);
  const uint32_t segments[2] = {0, 1};  // one segment (count - 1), one word long
  f.append(reinterpret_cast<const char*>(segments), sizeof(segments));
  f.append(8, '\0');  // the root pointer: null
  return f;
}

// Sends from each connection's data until everything is sent or no socket
// took a byte for `quiet_ms` (the server stopped reading). Returns bytes sent.
size_t PumpUntilStalled(const std::vector<int>& fds, const std::vector<std::string>& data,
                        std::vector<size_t>& sent, int quiet_ms,
                        const std::function<void()>& tick) {
  size_t total = 0;
  while (true) {
    std::vector<pollfd> want;
    for (size_t i = 0; i < fds.size(); i++) {
      if (sent[i] < data[i].size()) want.push_back(pollfd{fds[i], POLLOUT, 0});
    }
    if (want.empty() || poll(want.data(), want.size(), quiet_ms) <= 0) return total;
    for (size_t i = 0; i < fds.size(); i++) {
      if (sent[i] >= data[i].size()) continue;
      ssize_t n = send(fds[i], data[i].data() + sent[i], data[i].size() - sent[i], MSG_NOSIGNAL);
      if (n > 0) sent[i] += static_cast<size_t>(n), total += static_cast<size_t>(n);
    }
    tick();
  }
}

// True once the server closed the connection; reads (and drops) what it sent.
bool Closed(int fd) {
  char buf[64 * 1024];
  while (true) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n == 0) return true;
    if (n < 0) return errno != EAGAIN && errno != EWOULDBLOCK;
  }
}

// True once the server answered a NullRequest sent on fd (within 10 s).
bool Answered(int fd, uint64_t request_id) {
  std::string r = NullRequest(request_id);
  if (send(fd, r.data(), r.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(r.size())) return false;
  pollfd p{fd, POLLIN, 0};
  if (poll(&p, 1, 10000) != 1) return false;
  char header[24];
  return recv(fd, header, sizeof(header), MSG_WAITALL) == static_cast<ssize_t>(sizeof(header)) &&
         std::memcmp(header, "CHFS", 4) == 0;
}

bool WriteAndReadBack(Cluster& c, const std::string& name, size_t bytes) {
  std::string data(bytes, 'w');
  for (size_t i = 0; i < bytes; i += 4096) data[i] = static_cast<char>('a' + (i / 4096) % 26);
  int fd = open(c.Path(name).c_str(), O_CREAT | O_RDWR | O_TRUNC, 0644);
  if (fd < 0) return false;
  bool ok =
      write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size()) && fsync(fd) == 0;
  std::string back(bytes, '\0');
  ok = ok && pread(fd, back.data(), back.size(), 0) == static_cast<ssize_t>(bytes);
  close(fd);
  return ok && back == data;
}

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) n++;
  return n;
}

TEST(BoundedPeer, HalfSentFramesAndGarbageLeaveMemoryBoundedAndClientsWorking) {
  ClusterOptions o;
  o.serve_flags = "--peer-timeout 3";
  o.insecure = true;  // raw frames; the secure channel's bounds: secure_channel_test.cc
  Cluster c(o);
  ASSERT_TRUE(WriteAndReadBack(c, "before", 4 * kMiB));
  size_t base = RssBytes(c.server_pid());
  ASSERT_GT(base, 0u);
  size_t peak = base;
  auto sample = [&] { peak = std::max(peak, RssBytes(c.server_pid())); };

  // 20 peers each send all but the last byte of a largest frame, and stay.
  constexpr int kPeers = 20;
  std::string frame = Header(1, 8 * kMiB, 1 * kMiB);
  frame.resize(kLargestFrameBytes - 1, '\x11');
  std::vector<int> fds;
  for (int i = 0; i < kPeers; i++) fds.push_back(ConnectNonBlocking(c.port()));
  for (int fd : fds) ASSERT_GE(fd, 0);
  std::vector<std::string> data(kPeers, frame);
  std::vector<size_t> sent(kPeers, 0);
  size_t pumped = PumpUntilStalled(fds, data, sent, 1000, sample);
  sample();
  // Other clients go on, large writes too, while those peers hold what they hold.
  EXPECT_TRUE(WriteAndReadBack(c, "during", 4 * kMiB));
  sample();

  // Garbage, truncated and oversized frames: each closes only its connection.
  std::vector<std::string> bad = {std::string(64, '\x5a'), Header(2, 0x7ffffff8, 0),
                                  Header(3, 16, 0x7fffffff),
                                  Header(4, 32, 0) + std::string(32, '\xff')};
  for (const std::string& b : bad) {
    int fd = ConnectNonBlocking(c.port());
    ASSERT_EQ(send(fd, b.data(), b.size(), MSG_NOSIGNAL), static_cast<ssize_t>(b.size()));
    EXPECT_TRUE(WaitFor([&] { return Closed(fd); }, std::chrono::seconds(30)));
    close(fd);
  }
  int truncated = ConnectNonBlocking(c.port());
  ASSERT_EQ(send(truncated, frame.data(), 10, MSG_NOSIGNAL), 10);
  close(truncated);  // vanishes mid-header

  // The peers that began a frame are closed within the timeout, a budget's worth at a time.
  EXPECT_TRUE(WaitFor(
      [&] {
        sample();
        for (int fd : fds) {
          if (!Closed(fd)) return false;
        }
        return true;
      },
      std::chrono::seconds(120)))
      << c.ServerLog();
  EXPECT_GE(Count(c.ServerLog(), "did not finish a frame"), 1u) << c.ServerLog();
  for (int fd : fds) close(fd);
  size_t after = RssBytes(c.server_pid());
  std::printf("server RSS: %zu MiB before, peak %zu MiB, %zu MiB after; peers sent %zu MiB\n",
              base / kMiB, peak / kMiB, after / kMiB, pumped / kMiB);
  EXPECT_LE(peak, base + kRssBoundBytes) << "peak " << peak / kMiB << " MiB from " << base / kMiB;
  EXPECT_TRUE(WriteAndReadBack(c, "after", 4 * kMiB));
}

TEST(BoundedPeer, PeerThatDoesNotReadItsRepliesIsThrottledThenDisconnected) {
  ClusterOptions o;
  o.serve_flags = "--peer-timeout 3";
  o.insecure = true;  // raw frames; the secure channel's bounds: secure_channel_test.cc
  Cluster c(o);
  ASSERT_TRUE(WriteAndReadBack(c, "before", 1 * kMiB));
  size_t base = RssBytes(c.server_pid());
  size_t peak = base;
  auto sample = [&] { peak = std::max(peak, RssBytes(c.server_pid())); };

  // Up to 2 million small requests, each answered; it never reads a reply.
  int fd = ConnectNonBlocking(c.port());
  ASSERT_GE(fd, 0);
  std::string requests;
  for (uint64_t id = 1; id <= 2'000'000; id++) requests += NullRequest(id);
  std::vector<std::string> data = {requests};
  std::vector<size_t> sent = {0};
  PumpUntilStalled({fd}, data, sent, 1000, sample);
  EXPECT_LT(sent[0], requests.size())
      << "the server read every request of a peer that reads nothing";
  EXPECT_TRUE(WriteAndReadBack(c, "during", 1 * kMiB));
  EXPECT_TRUE(
      WaitFor([&] { return c.ServerLog().find("does not read its replies") != std::string::npos; },
              std::chrono::seconds(60)))
      << c.ServerLog();
  sample();
  EXPECT_TRUE(WaitFor([&] { return Closed(fd); }, std::chrono::seconds(30)));
  close(fd);
  std::printf("server RSS: %zu MiB before, peak %zu MiB; %zu of %zu requests sent\n", base / kMiB,
              peak / kMiB, sent[0] / NullRequest(0).size(),
              requests.size() / NullRequest(0).size());
  EXPECT_LE(peak, base + kRssBoundBytes) << "peak " << peak / kMiB << " MiB from " << base / kMiB;
  EXPECT_TRUE(WriteAndReadBack(c, "after", 1 * kMiB));
}

// Connects `tries` raw peers one after another: those answered (kept open),
// and in *refused how many the server closed instead.
std::vector<int> ConnectAnswered(int port, int tries, int* refused) {
  std::vector<int> served;
  *refused = 0;
  for (int i = 0; i < tries; i++) {
    int fd = ConnectNonBlocking(port);
    if (fd >= 0 && Answered(fd, 1)) {
      served.push_back(fd);
      continue;
    }
    if (fd >= 0 && WaitFor([&] { return Closed(fd); }, std::chrono::seconds(10))) ++*refused;
    if (fd >= 0) close(fd);
  }
  return served;
}

TEST(BoundedPeer, ConnectionsPastTheLimitAreRefusedAndTheOthersServed) {
  ClusterOptions o;
  o.serve_flags = "--max-connections 4";
  o.insecure = true;
  Cluster c(o);  // its mount holds one of the four
  ASSERT_TRUE(WriteAndReadBack(c, "before", 1 * kMiB));
  int refused = 0;
  std::vector<int> served = ConnectAnswered(c.port(), 5, &refused);
  EXPECT_EQ(served.size(), 3u) << c.ServerLog();
  EXPECT_EQ(refused, 2) << c.ServerLog();
  EXPECT_NE(c.ServerLog().find("refusing a connection: 4 open"), std::string::npos);
  EXPECT_TRUE(WriteAndReadBack(c, "during", 1 * kMiB));
  for (int fd : served) EXPECT_FALSE(Closed(fd)) << "a peer within the limit was closed";

  // A place given up is taken by the next peer (once the server saw the close).
  close(served[0]);
  int next = -1;
  EXPECT_TRUE(WaitFor(
      [&] {
        int fd = ConnectNonBlocking(c.port());
        if (fd >= 0 && Answered(fd, 2)) return next = fd, true;
        if (fd >= 0) close(fd);
        return false;
      },
      std::chrono::seconds(30)));
  for (size_t i = 1; i < served.size(); i++) close(served[i]);
  if (next >= 0) close(next);
  EXPECT_TRUE(WriteAndReadBack(c, "after", 1 * kMiB));
}

// The server raises its descriptor limit to the hard one and serves only as
// many connections as leave room for its own files: past them a peer is
// refused, the store keeps working.
TEST(BoundedPeer, TheServerKeepsDescriptorsForItselfBelowItsLimit) {
  ClusterOptions o;
  o.server_fd_limit = 300;  // 300 - 256 reserved: 44 connections
  o.insecure = true;
  Cluster c(o);
  EXPECT_NE(c.ServerLog().find("serving at most 44 connections, not 1024"), std::string::npos)
      << c.ServerLog();
  int refused = 0;
  std::vector<int> served = ConnectAnswered(c.port(), 60, &refused);
  EXPECT_EQ(served.size(), 43u) << c.ServerLog();
  EXPECT_EQ(refused, 17);
  EXPECT_TRUE(WriteAndReadBack(c, "full", 4 * kMiB));
  for (int fd : served) close(fd);
}

}  // namespace
}  // namespace cohfs::test
