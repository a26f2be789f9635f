// The recall deadline (DESIGN §7): a client that keeps renewing its lease but
// never answers a recall is declared dead after two leases, so the clients
// waiting for its locks go on. The stuck client is a protocol peer written by
// hand: it takes a lock with a lookup, renews, and ignores recalls.
#include <arpa/inet.h>
#include <capnp/message.h>
#include <capnp/serialize.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "protocol/codec.h"
#include "tests/integration/cluster.h"

namespace cohfs::test {
namespace {

class StuckPeer {
 public:
  explicit StuckPeer(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  }
  ~StuckPeer() { close(fd_); }
  void Disconnect() { shutdown(fd_, SHUT_RDWR); }
  bool connected() const { return connected_; }
  int recalls() const { return recalls_; }

  bool Hello() {
    capnp::MallocMessageBuilder m;
    auto h = m.initRoot<wire::Request>().initHello();
    h.setVersionMin(wire::PROTOCOL_VERSION);
    h.setVersionMax(wire::PROTOCOL_VERSION);
    h.setClientName("stuck-peer");
    return Call(m, nullptr);
  }
  // True when the lookup's reply grants a lock on `ino`.
  bool LookupGrants(const std::string& name, uint64_t ino) {
    capnp::MallocMessageBuilder m;
    auto req = m.initRoot<wire::Request>();
    req.initCaller();
    auto l = req.initLookup();
    l.setParent(1);
    l.setName(capnp::Data::Reader(reinterpret_cast<const capnp::byte*>(name.data()), name.size()));
    bool granted = false;
    return Call(m,
                [&](wire::Reply::Reader r) {
                  for (auto g : r.getGrants()) granted |= g.getIno() == ino;
                }) &&
           granted;
  }
  bool Renew() {
    capnp::MallocMessageBuilder m;
    m.initRoot<wire::Request>().setRenew();
    return Call(m, nullptr);
  }

 private:
  // Sends one request and reads frames until its reply; recalls are counted
  // and never answered. False when the server closed the connection.
  template <typename F>
  bool Call(capnp::MallocMessageBuilder& m, F&& on_reply) {
    uint64_t id = next_id_++;
    OutFrame f = EncodeFrame(FrameKind::kRequest, RequestId(id), m);
    std::vector<iovec> iov;
    f.AppendIovecs(0, &iov);
    if (writev(fd_, iov.data(), static_cast<int>(iov.size())) !=
        static_cast<ssize_t>(f.total_bytes())) {
      return false;
    }
    for (;;) {
      char header[kFrameHeaderBytes];
      FrameHeader h;
      if (!ReadAll(header, sizeof(header)) || !DecodeFrameHeader(header, &h).ok()) return false;
      kj::Array<capnp::word> words = kj::heapArray<capnp::word>(h.message_bytes / 8);
      std::string bulk(h.bulk_bytes, '\0');
      if (!ReadAll(words.begin(), h.message_bytes) || !ReadAll(bulk.data(), bulk.size())) {
        return false;
      }
      if (h.kind == FrameKind::kRecall) recalls_++;
      if (h.kind != FrameKind::kReply || h.request_id.value != id) continue;
      capnp::FlatArrayMessageReader reader(words);
      if constexpr (!std::is_same_v<std::decay_t<F>, std::nullptr_t>) {
        on_reply(reader.getRoot<wire::Reply>());
      }
      return reader.getRoot<wire::Reply>().getErrno() == 0;
    }
  }
  bool ReadAll(void* p, size_t n) {
    char* c = static_cast<char*>(p);
    while (n > 0) {
      ssize_t got = read(fd_, c, n);
      if (got <= 0) return false;
      c += got;
      n -= static_cast<size_t>(got);
    }
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  uint64_t next_id_ = 1;
  int recalls_ = 0;
};

TEST(RecallDeadline, AClientThatRenewsButNeverAnswersARecallIsDeclaredDead) {
  ClusterOptions o;
  o.serve_flags = "--lease 2";
  Cluster c(o);
  std::string f = c.Path("f");
  int fd = open(f.c_str(), O_CREAT | O_WRONLY, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(fsync(fd), 0);
  ASSERT_EQ(close(fd), 0);
  struct stat st;
  ASSERT_EQ(stat(f.c_str(), &st), 0);

  StuckPeer peer(c.port());
  ASSERT_TRUE(peer.connected());
  ASSERT_TRUE(peer.Hello());
  // Right after the mount gave the file up it is contended for a moment, and
  // nobody gets a lock on it: ask until the peer holds one.
  ASSERT_TRUE(WaitFor([&] { return peer.LookupGrants("f", st.st_ino); }, std::chrono::seconds(20)));
  std::atomic<bool> stop{false}, peer_closed{false};
  std::thread renewer([&] {
    while (!stop && !peer_closed) {
      if (!peer.Renew()) peer_closed = true;  // each renew also reads what the server sent
      std::this_thread::sleep_for(std::chrono::milliseconds(200));  // a tenth of the lease
    }
  });

  // The mount's write needs the peer's lock: a recall the peer ignores.
  auto writer = std::async(std::launch::async, [&] {
    int w = open(f.c_str(), O_WRONLY | O_TRUNC);
    if (w < 0) return -errno;
    int rc = write(w, "mine", 4) == 4 ? 0 : -errno;
    return close(w) == 0 ? rc : -errno;
  });
  bool done = writer.wait_for(std::chrono::seconds(30)) == std::future_status::ready;
  // The write can finish before the renewer's next read sees the close.
  bool closed_by_server =
      done && WaitFor([&] { return peer_closed.load(); }, std::chrono::seconds(5));
  stop = true;
  if (!done) peer.Disconnect();  // its session then ends a lease later, and the write goes on
  renewer.join();
  ASSERT_TRUE(done) << "the mount waited 30 s for a client that never answers recalls";
  EXPECT_EQ(writer.get(), 0);
  EXPECT_TRUE(closed_by_server) << "the server still talks to the stuck client";
  EXPECT_GE(peer.recalls(), 1);
  EXPECT_NE(c.ServerLog().find("did not answer a recall within two leases"), std::string::npos)
      << c.ServerLog();
  int r = open(f.c_str(), O_RDONLY);
  ASSERT_GE(r, 0);
  char buf[8] = {};
  EXPECT_EQ(read(r, buf, sizeof(buf)), 4);
  EXPECT_STREQ(buf, "mine");
  close(r);
}

}  // namespace
}  // namespace cohfs::test
