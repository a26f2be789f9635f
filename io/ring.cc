#include "io/ring.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

#include "common/log.h"

namespace cohfs {

Result<std::unique_ptr<Ring>> Ring::Create(unsigned entries) {
  std::unique_ptr<Ring> r(new Ring());
  int rc = io_uring_queue_init(entries, &r->ring_, 0);
  if (rc < 0) return Status::Error(-rc, "io_uring_queue_init");
  r->initialized_ = true;
  return r;
}

Ring::~Ring() {
  if (initialized_) io_uring_queue_exit(&ring_);
}

io_uring_sqe* Ring::GetSqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (!sqe) {
    io_uring_submit(&ring_);
    sqe = io_uring_get_sqe(&ring_);
  }
  CHECK_MSG(sqe != nullptr, "io_uring submission queue full after submit");
  return sqe;
}

void Ring::Accept(int fd, Completion* c) {
  io_uring_sqe* sqe = GetSqe();
  io_uring_prep_accept(sqe, fd, nullptr, nullptr, SOCK_CLOEXEC);
  io_uring_sqe_set_data(sqe, c);
}

void Ring::Recv(int fd, void* buf, size_t len, Completion* c) {
  io_uring_sqe* sqe = GetSqe();
  io_uring_prep_recv(sqe, fd, buf, len, 0);
  io_uring_sqe_set_data(sqe, c);
}

void Ring::SendMsg(int fd, const msghdr* msg, Completion* c) {
  io_uring_sqe* sqe = GetSqe();
  io_uring_prep_sendmsg(sqe, fd, msg, MSG_NOSIGNAL);
  io_uring_sqe_set_data(sqe, c);
}

void Ring::Read(int fd, void* buf, size_t len, uint64_t offset, Completion* c) {
  io_uring_sqe* sqe = GetSqe();
  io_uring_prep_read(sqe, fd, buf, static_cast<unsigned>(len), offset);
  io_uring_sqe_set_data(sqe, c);
}

void Ring::Cancel(Completion* target) {
  io_uring_sqe* sqe = GetSqe();
  io_uring_prep_cancel(sqe, target, 0);
  io_uring_sqe_set_data(sqe, nullptr);
}

Status Ring::RunOnce(int timeout_ms) {
  io_uring_cqe* cqe = nullptr;
  int rc;
  if (timeout_ms < 0) {
    rc = io_uring_submit_and_wait(&ring_, 1);
    if (rc >= 0) rc = io_uring_peek_cqe(&ring_, &cqe);
  } else {
    io_uring_submit(&ring_);
    __kernel_timespec ts{timeout_ms / 1000, (timeout_ms % 1000) * 1000000LL};
    rc = io_uring_wait_cqe_timeout(&ring_, &cqe, &ts);
  }
  if (rc == -EINTR || rc == -ETIME || rc == -EAGAIN) return Status::Ok();
  if (rc < 0) return Status::Error(-rc, "io_uring wait");
  // Run every ready completion. Mark each seen before its callback: the
  // callback may submit more work or destroy the completion's owner.
  while (io_uring_peek_cqe(&ring_, &cqe) == 0) {
    auto* c = static_cast<Completion*>(io_uring_cqe_get_data(cqe));
    int res = cqe->res;
    uint32_t flags = cqe->flags;
    io_uring_cqe_seen(&ring_, cqe);
    if (c && c->on_complete) c->on_complete(res, flags);
  }
  return Status::Ok();
}

Status SplitHostPort(const std::string& host_port, std::string* host, std::string* port) {
  size_t colon = host_port.rfind(':');
  if (colon == std::string::npos || colon + 1 == host_port.size()) {
    return Status::Error(EINVAL, "expected HOST:PORT, got '" + host_port + "'");
  }
  *host = host_port.substr(0, colon);
  *port = host_port.substr(colon + 1);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  return Status::Ok();
}

namespace {

Result<addrinfo*> Resolve(const std::string& host_port, bool passive) {
  std::string host, port;
  RETURN_IF_ERROR(SplitHostPort(host_port, &host, &port));
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  if (passive) hints.ai_flags = AI_PASSIVE;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) {
    return Status::Error(EHOSTUNREACH, "cannot resolve '" + host_port + "': " + gai_strerror(rc));
  }
  return res;
}

// The first address of `host_port` on which `setup(fd, ai)` succeeds.
Result<int> OpenSocket(const std::string& host_port, bool passive, int default_err,
                       const std::function<bool(int fd, const addrinfo* ai)>& setup) {
  ASSIGN_OR_RETURN(addrinfo * res, Resolve(host_port, passive));
  int err = default_err;
  int fd = -1;
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd >= 0 && setup(fd, ai)) break;
    err = errno;
    if (fd >= 0) close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0) return Status::Error(err, host_port + ": " + std::strerror(err));
  return fd;
}

}  // namespace

Result<int> ListenTcp(const std::string& host_port, int* bound_port) {
  ASSIGN_OR_RETURN(int fd,
                   OpenSocket(host_port, true, EADDRNOTAVAIL, [](int fd, const addrinfo* ai) {
                     int one = 1;
                     setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
                     return bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 128) == 0;
                   }));
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  if (bound_port) {
    *bound_port = ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                                           : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  }
  return fd;
}

namespace {

// connect() that gives up at deadline_ms (steady clock; errno ETIMEDOUT), so
// an address that drops SYNs costs a bounded time, not the kernel's minutes.
bool ConnectBefore(int fd, const addrinfo* ai, int64_t deadline_ms) {
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) return false;
  if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
    if (errno != EINPROGRESS) return false;
    while (true) {
      int64_t left = deadline_ms - SteadyNowMs();
      if (left <= 0) {
        errno = ETIMEDOUT;
        return false;
      }
      pollfd p{fd, POLLOUT, 0};
      int n = poll(&p, 1, static_cast<int>(left));
      if (n > 0) break;
      if (n < 0 && errno != EINTR) return false;
    }
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return false;
    if (err != 0) {
      errno = err;
      return false;
    }
  }
  return fcntl(fd, F_SETFL, flags) == 0;  // blocking again, as callers expect
}

}  // namespace

Result<int> ConnectTcp(const std::string& host_port, int timeout_ms) {
  int64_t deadline_ms = SteadyNowMs() + timeout_ms;
  ASSIGN_OR_RETURN(
      int fd, OpenSocket(host_port, false, ECONNREFUSED, [deadline_ms](int fd, const addrinfo* ai) {
        return ConnectBefore(fd, ai, deadline_ms);
      }));
  RETURN_IF_ERROR(SetNoDelay(fd));
  return fd;
}

int64_t SteadyNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

Status SetNoDelay(int fd) {
  int one = 1;
  if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0) {
    return Status::Error(errno, "TCP_NODELAY");
  }
  return Status::Ok();
}

EventFd::EventFd() : fd_(eventfd(0, EFD_CLOEXEC)) { CHECK(fd_ >= 0); }
EventFd::~EventFd() { close(fd_); }
void EventFd::Signal() {
  uint64_t one = 1;
  ssize_t n = write(fd_, &one, sizeof(one));
  CHECK(n == sizeof(one));
}

}  // namespace cohfs
