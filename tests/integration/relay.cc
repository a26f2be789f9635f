#include "tests/integration/relay.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace cohfs::test {

struct Relay::Pair {
  int a = -1, b = -1;  // client side, server side
  uint64_t sent_to_server = 0;
  std::thread pump;
};

namespace {

sockaddr_in Loopback(int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

}  // namespace

Relay::Relay(int target_port) : target_port_(target_port) {
  listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in a = Loopback(0);
  socklen_t len = sizeof(a);
  bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  listen(listen_fd_, 16);
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
  port_ = ntohs(a.sin_port);
  acceptor_ = std::thread([this] { AcceptLoop(); });
}

Relay::~Relay() {
  stop_ = true;
  acceptor_.join();
  Cut();
  std::lock_guard<std::mutex> l(mu_);
  for (auto& p : pairs_) {
    p->pump.join();
    close(p->a);
    close(p->b);
  }
  close(listen_fd_);
}

void Relay::AcceptLoop() {
  while (!stop_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    int a = accept(listen_fd_, nullptr, nullptr);
    if (a < 0) continue;
    if (refuse_) {
      close(a);
      continue;
    }
    int b = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in t = Loopback(target_port_);
    if (connect(b, reinterpret_cast<sockaddr*>(&t), sizeof(t)) != 0) {
      close(a);
      close(b);
      continue;  // the server is down: the client sees a refused connection
    }
    accepted_++;
    // As the ends do: without it, Nagle and delayed ACKs hold each small
    // frame the relay passes on for tens of milliseconds.
    int one = 1;
    setsockopt(a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(b, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    auto pair = std::make_unique<Pair>();
    pair->a = a;
    pair->b = b;
    Pair* raw = pair.get();
    std::lock_guard<std::mutex> l(mu_);
    pairs_.push_back(std::move(pair));
    raw->pump = std::thread([raw, this] { Pump(raw); });
  }
}

bool Relay::CopyOnce(Pair* p, bool to_server) {
  int from = to_server ? p->a : p->b, to = to_server ? p->b : p->a;
  char buf[64 * 1024];
  ssize_t n = recv(from, buf, sizeof(buf), MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return true;
  if (n <= 0) return false;
  if (to_server) {
    int64_t after = flip_after_;
    if (after >= 0 && p->sent_to_server >= static_cast<uint64_t>(after) &&
        flip_after_.compare_exchange_strong(after, -1)) {
      buf[n / 2] ^= 0x10;
      flipped_ = true;
    }
    p->sent_to_server += static_cast<uint64_t>(n);
  }
  {
    std::lock_guard<std::mutex> l(capture_mu_);
    if (captured_.size() < (256u << 20)) captured_.append(buf, static_cast<size_t>(n));
  }
  for (ssize_t sent = 0; sent < n;) {
    ssize_t m = send(to, buf + sent, static_cast<size_t>(n - sent), MSG_NOSIGNAL);
    if (m < 0 && errno == EINTR) continue;
    if (m <= 0) return false;
    sent += m;
  }
  return true;
}

std::string Relay::Captured() {
  std::lock_guard<std::mutex> l(capture_mu_);
  return captured_;
}

void Relay::FlipOneBitAfter(uint64_t after_bytes) {
  flipped_ = false;
  flip_after_ = static_cast<int64_t>(after_bytes);
}

void Relay::Pump(Pair* p) {
  while (!stop_) {
    pollfd fds[2] = {{p->a, POLLIN, 0}, {p->b, POLLIN, 0}};
    if (poll(fds, 2, 50) < 0 && errno != EINTR) break;
    if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) && !CopyOnce(p, true)) break;
    if ((fds[1].revents & (POLLIN | POLLHUP | POLLERR)) && !CopyOnce(p, false)) break;
  }
  shutdown(p->a, SHUT_RDWR);
  shutdown(p->b, SHUT_RDWR);
}

int Relay::Cut() {
  std::lock_guard<std::mutex> l(mu_);
  int n = 0;
  for (auto& p : pairs_) {
    if (p->a < 0) continue;
    shutdown(p->a, SHUT_RDWR);
    shutdown(p->b, SHUT_RDWR);
    n++;
  }
  return n;
}

}  // namespace cohfs::test
