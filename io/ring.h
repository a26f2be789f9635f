// Ring: one io_uring, owned and driven by exactly one thread.
//
// Each operation carries a Completion (borrowed; it must outlive the op) whose
// callback receives cqe->res (negative errno on failure) and cqe->flags.
// Submission never blocks for space: when the SQ is full the ring submits first.
#pragma once

#include <liburing.h>
#include <sys/socket.h>

#include <functional>
#include <memory>
#include <string>

#include "common/status.h"

namespace cohfs {

struct Completion {
  std::function<void(int res, uint32_t flags)> on_complete;
};

class Ring {
 public:
  static Result<std::unique_ptr<Ring>> Create(unsigned entries);
  ~Ring();
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;

  void Accept(int fd, Completion* c);
  void Recv(int fd, void* buf, size_t len, Completion* c);
  void SendMsg(int fd, const msghdr* msg, Completion* c);
  void Read(int fd, void* buf, size_t len, uint64_t offset, Completion* c);
  void Cancel(Completion* target);

  // Submits pending SQEs, waits up to timeout_ms (-1: forever) for at least one
  // completion, then runs every available completion. EINTR is not an error.
  Status RunOnce(int timeout_ms);

 private:
  Ring() = default;
  io_uring_sqe* GetSqe();
  io_uring ring_{};
  bool initialized_ = false;
};

// Sockets (blocking setup calls; data moves through a Ring).
Result<int> ListenTcp(const std::string& host_port, int* bound_port);
// Gives up after timeout_ms (ETIMEDOUT) on an address that does not answer.
Result<int> ConnectTcp(const std::string& host_port, int timeout_ms = 30000);
// Milliseconds of the steady clock (deadlines).
int64_t SteadyNowMs();
Status SetNoDelay(int fd);
// "host:port" -> parts; EINVAL if malformed.
Status SplitHostPort(const std::string& host_port, std::string* host, std::string* port);

// An eventfd that another thread writes to wake a Ring's owner.
class EventFd {
 public:
  EventFd();
  ~EventFd();
  int fd() const { return fd_; }
  void Signal();

 private:
  int fd_;
};

}  // namespace cohfs
