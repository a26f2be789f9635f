// Keys, mutual authentication and encryption (docs/security.md): the whole
// suite runs with a key (Cluster); these tests check the refusals, that
// nothing crosses the wire in clear, and what a tampered stream does.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "protocol/codec.h"
#include "protocol/secure_channel.h"
#include "tests/integration/cluster.h"
#include "tests/integration/relay.h"

namespace cohfs::test {
namespace {

using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

int ConnectTo(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  return fd;
}

// Everything the server sends until it closes the connection (30 s at most).
std::string ReadUntilClosed(int fd) {
  timeval tv{30, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string got;
  char buf[4096];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) got.append(buf, static_cast<size_t>(n));
  EXPECT_EQ(n, 0) << "the server did not close the connection";
  return got;
}

std::string Bytes(const OutFrame& f) {
  std::vector<iovec> iov;
  f.AppendIovecs(0, &iov);
  std::string s;
  for (auto& v : iov) s.append(static_cast<const char*>(v.iov_base), v.iov_len);
  return s;
}

// A hello and a lookup, as a client without a key would send them.
std::string HelloAndLookup() {
  capnp::MallocMessageBuilder hello;
  auto h = hello.initRoot<wire::Request>().initHello();
  h.setVersionMin(wire::PROTOCOL_VERSION);
  h.setVersionMax(wire::PROTOCOL_VERSION);
  h.setClientName("keyless");
  capnp::MallocMessageBuilder lookup;
  auto l = lookup.initRoot<wire::Request>().initLookup();
  l.setParent(1);
  const char name[] = "anything";
  l.setName(capnp::Data::Reader(reinterpret_cast<const capnp::byte*>(name), sizeof(name) - 1));
  return Bytes(EncodeFrame(FrameKind::kRequest, RequestId(1), hello)) +
         Bytes(EncodeFrame(FrameKind::kRequest, RequestId(2), lookup));
}

std::string ReadFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY);
  std::string s;
  char buf[65536];
  ssize_t n;
  while (fd >= 0 && (n = read(fd, buf, sizeof(buf))) > 0) s.append(buf, static_cast<size_t>(n));
  if (fd >= 0) close(fd);
  return s;
}

// `cohfs mount` of the cluster's server with `flags`; its exit status, output in *out.
int TryMount(Cluster& c, const std::string& flags, std::string* out, Clock::duration* took) {
  std::string m = c.dir() + "/refused";
  mkdir(m.c_str(), 0755);
  auto start = Clock::now();
  int rc =
      RunCommand("timeout 60 " + CohfsBinary() + " mount 127.0.0.1:" + std::to_string(c.port()) +
                     " " + m + " --timeout 20 " + flags,
                 out);
  *took = Clock::now() - start;
  return rc;
}

TEST(Secure, MountWithTheKeyWorksAndIsAuthenticated) {
  Cluster c;
  WriteFile(c.Path("f"), "hello");
  EXPECT_EQ(ReadFile(c.Path("f")), "hello");
  EXPECT_NE(c.ServerLog().find("authenticated"), std::string::npos) << c.ServerLog();
}

TEST(Secure, WrongKeyOrNoKeyIsRefusedClearlyAndAtOnce) {
  Cluster c;
  std::string out, wrong = c.dir() + "/wrong.key";
  ASSERT_EQ(RunCommand(CohfsBinary() + " keygen " + wrong, &out), 0) << out;
  Clock::duration took;
  EXPECT_EQ(TryMount(c, "--key " + wrong, &out, &took), 1) << out;
  EXPECT_NE(out.find("the server refused this client's key (wrong --key?)"), std::string::npos)
      << out;
  EXPECT_LT(took, seconds(10));
  EXPECT_EQ(TryMount(c, "", &out, &took), 1) << out;
  EXPECT_NE(out.find("the server requires a key: mount with --key FILE"), std::string::npos) << out;
  EXPECT_LT(took, seconds(10));
  WriteFile(c.Path("still"), "works");  // the refusals cost the real mount nothing
}

TEST(Secure, KeyAgainstAnInsecureServerIsRefusedClearly) {
  ClusterOptions o;
  o.insecure = true;
  Cluster c(o);
  std::string out, key = c.dir() + "/some.key";
  ASSERT_EQ(RunCommand(CohfsBinary() + " keygen " + key, &out), 0) << out;
  Clock::duration took;
  EXPECT_EQ(TryMount(c, "--key " + key, &out, &took), 1) << out;
  EXPECT_NE(out.find("is it serving --insecure?"), std::string::npos) << out;
  EXPECT_LT(took, seconds(10));
}

TEST(Secure, PeerWithoutTheKeyGetsNoReplyToAnyRequest) {
  Cluster c;
  // Requests in clear: the connection closes, nothing comes back.
  int fd = ConnectTo(c.port());
  std::string requests = HelloAndLookup();
  ASSERT_EQ(send(fd, requests.data(), requests.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(requests.size()));
  EXPECT_EQ(ReadUntilClosed(fd), "");
  close(fd);
  // A peer that does the handshake with another key and ignores the server's
  // proof: it gets the server's hello, then its forged finish closes the
  // connection before its requests are read.
  ChannelKey other;
  other.bytes.fill(7);
  SecureChannel forger(SecureChannel::Role::kClient, other);
  fd = ConnectTo(c.port());
  std::string hello = forger.Begin();
  ASSERT_EQ(send(fd, hello.data(), hello.size(), MSG_NOSIGNAL), static_cast<ssize_t>(hello.size()));
  char server_hello[SecureChannel::kServerHelloBytes];
  ASSERT_EQ(recv(fd, server_hello, sizeof(server_hello), MSG_WAITALL),
            static_cast<ssize_t>(sizeof(server_hello)));
  std::string forged = std::string(SecureChannel::kClientFinishBytes, '\x01') + requests;
  ASSERT_EQ(send(fd, forged.data(), forged.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(forged.size()));
  EXPECT_EQ(ReadUntilClosed(fd), "") << "nothing after the server's hello";
  close(fd);
  EXPECT_NE(c.ServerLog().find("the client does not hold the key"), std::string::npos);
}

TEST(Secure, HalfAHandshakeIsClosedWithinThePeerTimeout) {
  ClusterOptions o;
  o.serve_flags = "--peer-timeout 2";
  Cluster c(o);
  int fd = ConnectTo(c.port());
  ASSERT_EQ(send(fd, "CHSC", 4, MSG_NOSIGNAL), 4);
  auto start = Clock::now();
  EXPECT_EQ(ReadUntilClosed(fd), "");
  EXPECT_LT(Clock::now() - start, seconds(10));
  close(fd);
  EXPECT_NE(c.ServerLog().find("did not complete the secure handshake"), std::string::npos);
}

// What goes through a relay while a file is written and read back through
// the mount, with a distinctive name and content.
std::string CaptureAWrite(Cluster& c) {
  Relay relay(c.port());
  std::string m = c.dir() + "/relayed";
  c.MountVia(relay.port(), m);
  std::string content;
  for (int i = 0; i < 2000; i++) content += "zyxwv-distinctive-content-" + std::to_string(i) + "\n";
  WriteFile(m + "/quokka-distinctive-name", content);
  c.Unmount(m);
  c.MountVia(relay.port(), m);
  EXPECT_EQ(ReadFile(m + "/quokka-distinctive-name"), content);
  c.Unmount(m);
  return relay.Captured();
}

TEST(Secure, NoFileNameOrDataCrossesTheWireInClear) {
  Cluster c;
  std::string wire = CaptureAWrite(c);
  EXPECT_GT(wire.size(), 2000u * 26);
  EXPECT_EQ(wire.find("quokka-distinctive"), std::string::npos);
  EXPECT_EQ(wire.find("distinctive-content"), std::string::npos);
  EXPECT_EQ(wire.find("CHFS"), std::string::npos) << "a frame header in clear";
}

TEST(Secure, InsecureServerSendsNamesAndDataInClear) {  // the check above can fail
  ClusterOptions o;
  o.insecure = true;
  Cluster c(o);
  std::string wire = CaptureAWrite(c);
  EXPECT_NE(wire.find("quokka-distinctive"), std::string::npos);
  EXPECT_NE(wire.find("distinctive-content"), std::string::npos);
}

// The server finds the flipped record fails to open and closes the
// connection; the client reconnects (a fresh handshake) and resends what had
// no reply, as after a cut connection: the writer sees no error.
TEST(Secure, TamperedByteBreaksTheConnectionAndTheClientGoesOn) {
  Cluster c;
  Relay relay(c.port());
  std::string m = c.dir() + "/relayed";
  c.MountVia(relay.port(), m);
  relay.FlipOneBitAfter(256 * 1024);  // in the file's data, past the handshake
  std::string content(4 << 20, '\0');
  for (size_t i = 0; i < content.size(); i++) content[i] = static_cast<char>(i * 7 + i / 4096);
  WriteFile(m + "/big", content);
  EXPECT_TRUE(relay.flipped());
  ASSERT_TRUE(WaitFor([&] { return relay.connections_accepted() >= 2; }, seconds(30)));
  EXPECT_NE(c.ServerLog().find("a record failed authentication"), std::string::npos);
  c.Unmount(m);
  EXPECT_EQ(ReadFile(c.Path("big")), content);  // as the other mount sees it
}

TEST(Secure, InsecureIsRefusedOnANonLoopbackAddress) {
  Cluster c;
  c.Unmount();
  c.StopServer();
  std::string out;
  std::string serve = "timeout 60 " + CohfsBinary() + " serve " + c.image();
  EXPECT_EQ(RunCommand(serve + " --listen 0.0.0.0:0 --insecure", &out), 1) << out;
  EXPECT_NE(out.find("--insecure serves only a loopback address"), std::string::npos) << out;
  EXPECT_EQ(RunCommand(serve + " --listen 127.0.0.1:0", &out), 2) << out;
  EXPECT_NE(out.find("give --key FILE"), std::string::npos) << out;
  c.StartServer();
}

TEST(Secure, KeygenWritesMode0600AndReadableKeysAreRefused) {
  Cluster c;
  std::string out, key = c.dir() + "/new.key";
  ASSERT_EQ(RunCommand(CohfsBinary() + " keygen " + key, &out), 0) << out;
  struct stat st;
  ASSERT_EQ(stat(key.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  std::string first = ReadFile(key);
  EXPECT_EQ(RunCommand(CohfsBinary() + " keygen " + key, &out), 1) << out;
  EXPECT_EQ(ReadFile(key), first) << "an existing key is not overwritten";
  ASSERT_EQ(chmod(key.c_str(), 0644), 0);
  ASSERT_EQ(RunCommand(CohfsBinary() + " keygen --force " + key, &out), 0) << out;
  ASSERT_EQ(stat(key.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_NE(ReadFile(key), first);
  ASSERT_EQ(chmod(c.key_file().c_str(), 0640), 0);
  Clock::duration took;
  EXPECT_EQ(TryMount(c, "--key " + c.key_file(), &out, &took), 1) << out;
  EXPECT_NE(out.find("is readable by group or others (mode 0640)"), std::string::npos) << out;
  ASSERT_EQ(chmod(c.key_file().c_str(), 0600), 0);
}

}  // namespace
}  // namespace cohfs::test
