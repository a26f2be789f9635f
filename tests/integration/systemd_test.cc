// systemd (issue 11): the server's sd_notify handshake on a NOTIFY_SOCKET the
// test owns, journald-style log lines when stderr is the journal, and
// `systemd-analyze verify` of the shipped unit.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <regex>
#include <string>

#include "tests/integration/cluster.h"

namespace cohfs::test {
namespace {

// A formatted image, a key, and a datagram socket playing systemd's notify socket.
class NotifyFixture : public testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/var/tmp/cohfs-notify-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    std::string out;
    ASSERT_EQ(RunCommand("truncate -s 1G " + dir_ + "/img && " + CohfsBinary() + " format " + dir_ +
                             "/img && " + CohfsBinary() + " keygen " + dir_ + "/key",
                         &out),
              0)
        << out;
    notify_fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof(a.sun_path), "%s/notify", dir_.c_str());
    ASSERT_EQ(bind(notify_fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0) << strerror(errno);
  }
  void TearDown() override {
    if (server_ > 0) kill(server_, SIGKILL), waitpid(server_, nullptr, 0);
    close(notify_fd_);
    std::string out;
    EXPECT_EQ(RunCommand(CohfsBinary() + " fsck " + dir_ + "/img", &out), 0) << out;
    RunCommand("rm -rf " + dir_);
  }

  // Starts `cohfs serve` as systemd would: NOTIFY_SOCKET set, stderr a stream
  // JOURNAL_STREAM names (here a file, so the test can read the lines).
  void StartServer(const std::string& listen) {
    std::string log = dir_ + "/server.log";
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ASSERT_GE(fd, 0);
    struct stat st;
    ASSERT_EQ(fstat(fd, &st), 0);
    std::string journal = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
    std::string notify = dir_ + "/notify";
    server_ = fork();
    if (server_ == 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      setenv("NOTIFY_SOCKET", notify.c_str(), 1);
      setenv("JOURNAL_STREAM", journal.c_str(), 1);
      std::string img = dir_ + "/img", key = dir_ + "/key";
      execl(CohfsBinary().c_str(), "cohfs", "serve", img.c_str(), "--listen", listen.c_str(),
            "--key", key.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    close(fd);
  }

  // The next datagram on the notify socket, or "" after `deadline`.
  std::string NextNotification(std::chrono::milliseconds deadline) {
    pollfd p{notify_fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(deadline.count())) != 1) return "";
    char buf[4096];
    ssize_t n = recv(notify_fd_, buf, sizeof(buf), 0);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
  }

  int ServerExitStatus() {
    int status = 0;
    EXPECT_TRUE(WaitFor([&] { return waitpid(server_, &status, WNOHANG) == server_; },
                        std::chrono::seconds(60)));
    server_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  std::string dir_;
  int notify_fd_ = -1;
  pid_t server_ = -1;
};

bool Connects(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  close(fd);
  return ok;
}

TEST_F(NotifyFixture, ReadyOnceListeningStoppingOnSigterm) {
  StartServer("127.0.0.1:0");
  std::string ready = NextNotification(std::chrono::seconds(60));
  std::smatch m;
  ASSERT_TRUE(std::regex_search(ready, m, std::regex("^READY=1\nSTATUS=serving on port (\\d+)$")))
      << "'" << ready << "'";
  EXPECT_TRUE(Connects(std::stoi(m[1])));  // READY means a client can connect now
  ASSERT_EQ(kill(server_, SIGTERM), 0);
  EXPECT_EQ(NextNotification(std::chrono::seconds(60)), "STOPPING=1\nSTATUS=stopping: final sync");
  EXPECT_EQ(ServerExitStatus(), 0);
  // Journal lines: an sd-daemon priority prefix, no timestamp of our own.
  std::ifstream in(dir_ + "/server.log");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_TRUE(std::regex_search(text, std::regex("(^|\n)<6>server\\.cc:\\d+\\] serving "))) << text;
  EXPECT_FALSE(std::regex_search(text, std::regex("\\d\\d:\\d\\d:\\d\\d\\.\\d"))) << text;
}

TEST_F(NotifyFixture, NoReadyWhenItCannotListen) {
  int busy = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(busy, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  ASSERT_EQ(listen(busy, 1), 0);
  socklen_t len = sizeof(a);
  ASSERT_EQ(getsockname(busy, reinterpret_cast<sockaddr*>(&a), &len), 0);
  StartServer("127.0.0.1:" + std::to_string(ntohs(a.sin_port)));
  EXPECT_NE(ServerExitStatus(), 0);
  // It exited: everything it sent is queued, so a zero wait sees it.
  EXPECT_EQ(NextNotification(std::chrono::milliseconds(0)), "");
  close(busy);
}

// The unit as shipped, its ExecStart pointed at this build and --man=no: the
// binary and cohfs(8) are not installed yet (tests/package/deb_test.sh verifies
// the installed unit with both checks).
std::string VerifyUnit(const std::string& dir, const std::string& unit_text) {
  std::string path = dir + "/cohfs-server@.service";
  std::ofstream(path) << unit_text;
  std::string out;
  int rc = RunCommand("timeout 60 systemd-analyze verify --man=no " + path, &out);
  return rc == 0 ? out : "exit " + std::to_string(rc) + ": " + out;
}

TEST(SystemdUnit, SystemdAnalyzeVerifyAcceptsIt) {
  std::ifstream in(std::string(COHFS_SOURCE_DIR) + "/packaging/cohfs-server@.service");
  std::string unit((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_NE(unit.find("ExecStart=/usr/bin/cohfs serve "), std::string::npos);
  unit = std::regex_replace(unit, std::regex("ExecStart=/usr/bin/cohfs "),
                            "ExecStart=" + CohfsBinary() + " ");
  char tmpl[] = "/var/tmp/cohfs-unit-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  EXPECT_EQ(VerifyUnit(tmpl, unit), "");  // no complaint at all
  // The check can fail: verify reports what it cannot parse.
  std::string bad = std::regex_replace(unit, std::regex("Type=notify"), "Type=notifyy");
  EXPECT_NE(VerifyUnit(tmpl, bad).find("Failed to parse service type"), std::string::npos);
  RunCommand(std::string("rm -rf ") + tmpl);
}

}  // namespace
}  // namespace cohfs::test
