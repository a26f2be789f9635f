// The recall deadline (DESIGN §7): a client that keeps renewing its lease but
// never answers a recall is declared dead after two leases, so the clients
// waiting for its locks go on. The stuck client is a protocol peer written by
// hand: it takes a lock with a lookup, renews, and ignores recalls.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <string>
#include <thread>

#include "tests/integration/cluster.h"
#include "tests/integration/protocol_peer.h"

namespace cohfs::test {
namespace {

// True when a lookup of `name` in the root grants the peer a lock on `ino`.
bool LookupGrants(ProtocolPeer& peer, const std::string& name, uint64_t ino) {
  bool granted = false;
  int err = peer.Call(
      {},
      [&](wire::Request::Builder r) {
        auto l = r.initLookup();
        l.setParent(1);
        l.setName(AsData(name));
      },
      [&](wire::Reply::Reader r, const std::string&) {
        for (auto g : r.getGrants()) granted |= g.getIno() == ino;
      });
  return err == 0 && granted;
}

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

  ProtocolPeer peer(c.port(), c.key_file());
  ASSERT_TRUE(peer.connected());
  ASSERT_TRUE(peer.Hello("stuck-peer"));
  // Right after the mount gave the file up it is contended for a moment, and
  // nobody gets a lock on it: ask until the peer holds one.
  ASSERT_TRUE(
      WaitFor([&] { return LookupGrants(peer, "f", st.st_ino); }, std::chrono::seconds(20)));
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
