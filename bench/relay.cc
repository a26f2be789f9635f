// relay: a TCP relay that adds round-trip time, for benchmarks on a kernel
// without netem.
//
//   relay LISTEN_HOST:LISTEN_PORT TARGET_HOST:TARGET_PORT RTT_MS
//
// Every connection accepted on LISTEN is paired with a new connection to
// TARGET. Each chunk read in either direction is stamped with a due time
// (now + RTT_MS/2) and queued; it is written to the other side once due. So
// a request and its reply see RTT_MS of added latency, chunks keep their
// order, and a burst that arrives together leaves together one half-RTT
// later: the delay does not serialise or accumulate. Bandwidth is not
// limited, except that at most kMaxQueuedBytes are held per direction (then
// the reader stops until the queue drains, which TCP turns into backpressure).
// kMaxQueuedBytes is well above the bandwidth-delay product at 5 ms and a few
// GB/s.
//
// One thread, epoll, non-blocking sockets, TCP_NODELAY on both sides.
// Timing uses epoll_pwait2 (nanosecond timeout) and a 1 us timer slack.
// Prints "relay listening on PORT" once ready (port 0 picks a free port).

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

namespace {

constexpr size_t kChunkBytes = 256 * 1024;
constexpr size_t kMaxQueuedBytes = 64 * 1024 * 1024;

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

[[noreturn]] void Die(const char* what) {
  fprintf(stderr, "relay: %s: %s\n", what, strerror(errno));
  exit(1);
}

bool ParseAddr(const std::string& s, sockaddr_in* out) {
  size_t colon = s.rfind(':');
  if (colon == std::string::npos) return false;
  memset(out, 0, sizeof(*out));
  out->sin_family = AF_INET;
  out->sin_port = htons(static_cast<uint16_t>(atoi(s.c_str() + colon + 1)));
  return inet_pton(AF_INET, s.substr(0, colon).c_str(), &out->sin_addr) == 1;
}

void SetNoDelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

struct Chunk {
  int64_t due_ns;
  std::vector<char> data;  // empty = end of stream (shutdown the writer side)
  size_t sent = 0;
};

// Bytes flowing from fd[from] to fd[1 - from] of a Pair.
struct Direction {
  std::deque<Chunk> queue;
  size_t queued_bytes = 0;
  bool read_eof = false;     // no more reads from the source
  bool write_done = false;   // EOF delivered (shutdown sent) to the sink
  bool write_blocked = false;  // sink returned EAGAIN; wait for EPOLLOUT
};

struct Pair;
struct Endpoint {
  Pair* pair;
  int side;
};

struct Pair {
  int fd[2] = {-1, -1};  // 0 = client side, 1 = server side
  Direction dir[2];      // dir[i]: read from fd[i], written to fd[1 - i]
  Endpoint ep[2];
  uint32_t interest[2] = {0, 0};
  bool dead = false;
};

class Relay {
 public:
  Relay(const sockaddr_in& target, int64_t delay_ns) : target_(target), delay_ns_(delay_ns) {
    epfd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epfd_ < 0) Die("epoll_create1");
  }

  void Listen(const sockaddr_in& addr) {
    lfd_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd_ < 0) Die("socket");
    int one = 1;
    setsockopt(lfd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(lfd_, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) < 0) Die("bind");
    if (listen(lfd_, 64) < 0) Die("listen");
    sockaddr_in bound;
    socklen_t len = sizeof(bound);
    getsockname(lfd_, reinterpret_cast<sockaddr*>(&bound), &len);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = nullptr;  // nullptr = the listening socket
    if (epoll_ctl(epfd_, EPOLL_CTL_ADD, lfd_, &ev) < 0) Die("epoll_ctl listen");
    printf("relay listening on %d, rtt %.3f ms\n", ntohs(bound.sin_port),
           2.0 * static_cast<double>(delay_ns_) / 1e6);
    fflush(stdout);
  }

  void Run() {
    std::vector<epoll_event> events(64);
    for (;;) {
      int64_t next_due = FlushDue();
      timespec timeout{};
      timespec* tp = nullptr;
      if (next_due >= 0) {
        int64_t wait = next_due - NowNs();
        if (wait < 0) wait = 0;
        timeout.tv_sec = wait / 1000000000;
        timeout.tv_nsec = wait % 1000000000;
        tp = &timeout;
      }
      int n = epoll_pwait2(epfd_, events.data(), static_cast<int>(events.size()), tp, nullptr);
      if (n < 0) {
        if (errno == EINTR) continue;
        Die("epoll_pwait2");
      }
      for (int i = 0; i < n; i++) {
        if (events[i].data.ptr == nullptr) {
          Accept();
          continue;
        }
        auto* ep = static_cast<Endpoint*>(events[i].data.ptr);
        Pair* p = ep->pair;
        if (p->dead) continue;
        if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) ReadFrom(p, ep->side);
        if (events[i].events & EPOLLOUT) p->dir[1 - ep->side].write_blocked = false;
      }
      Reap();
    }
  }

 private:
  void Accept() {
    for (;;) {
      int cfd = accept4(lfd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (cfd < 0) return;
      // Connect to the target synchronously: it is on this machine, so this is fast,
      // and a pair is then fully established before any data is relayed.
      int sfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (sfd < 0 || connect(sfd, reinterpret_cast<const sockaddr*>(&target_), sizeof(target_)) < 0) {
        fprintf(stderr, "relay: connect to target: %s\n", strerror(errno));
        close(cfd);
        if (sfd >= 0) close(sfd);
        continue;
      }
      fcntl(sfd, F_SETFL, fcntl(sfd, F_GETFL) | O_NONBLOCK);
      SetNoDelay(cfd);
      SetNoDelay(sfd);
      auto p = std::make_unique<Pair>();
      p->fd[0] = cfd;
      p->fd[1] = sfd;
      for (int s = 0; s < 2; s++) {
        p->ep[s] = Endpoint{p.get(), s};
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.ptr = &p->ep[s];
        p->interest[s] = EPOLLIN;
        if (epoll_ctl(epfd_, EPOLL_CTL_ADD, p->fd[s], &ev) < 0) Die("epoll_ctl add");
      }
      pairs_.push_back(std::move(p));
    }
  }

  void ReadFrom(Pair* p, int side) {
    Direction& d = p->dir[side];
    while (!d.read_eof && d.queued_bytes < kMaxQueuedBytes) {
      ssize_t n = read(p->fd[side], read_buf_.data(), read_buf_.size());
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) break;
        Kill(p);  // reset or error: tear the pair down
        return;
      }
      int64_t due = NowNs() + delay_ns_;
      if (n == 0) {
        d.read_eof = true;
        d.queue.push_back(Chunk{due, {}, 0});
        break;
      }
      std::vector<char> data(read_buf_.begin(), read_buf_.begin() + n);
      d.queued_bytes += data.size();
      d.queue.push_back(Chunk{due, std::move(data), 0});
      if (static_cast<size_t>(n) < kChunkBytes) break;
    }
    UpdateInterest(p);
  }

  // Writes every due chunk that can be written; returns the earliest future due
  // time of a chunk that waits only for its time (-1 if none).
  int64_t FlushDue() {
    int64_t now = NowNs();
    int64_t next = -1;
    for (auto& up : pairs_) {
      Pair* p = up.get();
      if (p->dead) continue;
      for (int side = 0; side < 2 && !p->dead; side++) {
        Direction& d = p->dir[side];
        int out = p->fd[1 - side];
        while (!d.queue.empty() && !d.write_blocked && !p->dead) {
          Chunk& c = d.queue.front();
          if (c.due_ns > now) {
            if (next < 0 || c.due_ns < next) next = c.due_ns;
            break;
          }
          if (c.data.empty()) {
            shutdown(out, SHUT_WR);
            d.write_done = true;
            d.queue.pop_front();
            continue;
          }
          ssize_t n = write(out, c.data.data() + c.sent, c.data.size() - c.sent);
          if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
              d.write_blocked = errno == EAGAIN;
              continue;
            }
            Kill(p);
            break;
          }
          c.sent += static_cast<size_t>(n);
          if (c.sent == c.data.size()) {
            d.queued_bytes -= c.data.size();
            d.queue.pop_front();
          }
        }
        if (!p->dead && d.queue.empty() && d.write_blocked) d.write_blocked = false;
      }
      if (!p->dead) {
        if (p->dir[0].write_done && p->dir[1].write_done) Kill(p);
        else UpdateInterest(p);
      }
      now = NowNs();
    }
    return next;
  }

  void UpdateInterest(Pair* p) {
    if (p->dead) return;
    for (int s = 0; s < 2; s++) {
      uint32_t want = 0;
      const Direction& in = p->dir[s];
      if (!in.read_eof && in.queued_bytes < kMaxQueuedBytes) want |= EPOLLIN;
      if (p->dir[1 - s].write_blocked) want |= EPOLLOUT;
      if (want == p->interest[s]) continue;
      // An fd with nothing to wait for leaves the set: EPOLLHUP cannot be masked and
      // would otherwise wake us in a loop while delayed data drains.
      epoll_event ev{};
      ev.events = want;
      ev.data.ptr = &p->ep[s];
      int op = want == 0 ? EPOLL_CTL_DEL : p->interest[s] == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
      epoll_ctl(epfd_, op, p->fd[s], &ev);
      p->interest[s] = want;
    }
  }

  void Kill(Pair* p) {
    if (p->dead) return;
    p->dead = true;
    for (int s = 0; s < 2; s++) {
      if (p->interest[s] != 0) epoll_ctl(epfd_, EPOLL_CTL_DEL, p->fd[s], nullptr);
      close(p->fd[s]);
    }
  }

  void Reap() {
    for (size_t i = 0; i < pairs_.size();) {
      if (pairs_[i]->dead) {
        pairs_[i] = std::move(pairs_.back());
        pairs_.pop_back();
      } else {
        i++;
      }
    }
  }

  sockaddr_in target_;
  int64_t delay_ns_;
  int epfd_ = -1;
  int lfd_ = -1;
  std::vector<std::unique_ptr<Pair>> pairs_;
  std::vector<char> read_buf_ = std::vector<char>(kChunkBytes);
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: relay LISTEN_HOST:PORT TARGET_HOST:PORT RTT_MS\n");
    return 2;
  }
  sockaddr_in listen_addr, target;
  if (!ParseAddr(argv[1], &listen_addr) || !ParseAddr(argv[2], &target)) {
    fprintf(stderr, "relay: bad address\n");
    return 2;
  }
  double rtt_ms = atof(argv[3]);
  signal(SIGPIPE, SIG_IGN);
  prctl(PR_SET_TIMERSLACK, 1000UL);  // 1 us: the default 50 us would blur 0.1 ms delays
  Relay relay(target, static_cast<int64_t>(rtt_ms * 1e6 / 2));
  relay.Listen(listen_addr);
  relay.Run();
}
