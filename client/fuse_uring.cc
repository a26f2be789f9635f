#include "client/fuse_uring.h"

#include <liburing.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <thread>

#include "client/fuse_uring_abi.h"
#include "common/check.h"
#include "common/log.h"

namespace cohfs {
namespace {

constexpr uint64_t kTagEntry = 1;  // the entry's REGISTER / COMMIT_AND_FETCH
constexpr uint64_t kTagWake = 2;   // the wake eventfd's read (Stop)
// Room before the payload for the in header and the first argument, so that a
// request becomes one contiguous /dev/fuse-style buffer without moving data.
constexpr size_t kLeadBytes = 4096;
static_assert(kLeadBytes >= sizeof(fuse_in_header) + kFuseUringOpInBytes);

struct FreeDeleter {
  void operator()(char* p) const { std::free(p); }
};

// A thread's io_uring: 128-byte SQEs (the command area), two in flight at most.
int InitRing(io_uring* ring) {
  int rc = io_uring_queue_init(
      4, ring, IORING_SETUP_SQE128 | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER);
  // Kernels before 6.0 lack SINGLE_ISSUER; SQE128 itself is what matters.
  if (rc == -EINVAL) rc = io_uring_queue_init(4, ring, IORING_SETUP_SQE128);
  return rc;
}

}  // namespace

struct FuseUring::Worker {
  explicit Worker(unsigned q) : qid(q) {}
  const unsigned qid;
  io_uring ring{};
  bool ring_ok = false;
  int wake_fd = -1;
  uint64_t wake_value = 0;
  alignas(64) FuseUringReqHeader header{};
  std::unique_ptr<char, FreeDeleter> buf;  // kLeadBytes, then the payload
  char* payload = nullptr;
  iovec iov[2]{};
  bool registered = false;          // a request came: the REGISTER was taken
  uint64_t commit_id = 0;           // the request being answered
  bool committed = false;           // its reply went back early (CommitOwnReply)
  std::atomic<uint64_t> unique{0};  // the request the entry holds (0: none)
  std::mutex mu;                    // guards replied (rank: leaf)
  std::condition_variable cv;
  bool replied = false;
  std::thread thread;
};

thread_local FuseUring::Worker* FuseUring::current_ = nullptr;

FuseUring::FuseUring(fuse_session* se, int fuse_fd, ClientStats& stats, unsigned threads_per_queue)
    : se_(se), fuse_fd_(fuse_fd), stats_(stats), threads_per_queue_(threads_per_queue) {}

FuseUring::~FuseUring() { Stop(); }

unsigned FuseUring::PossibleCpus() {
  // "0-1" or "0,2-3": the highest CPU number plus one is the kernel's count.
  std::ifstream in("/sys/devices/system/cpu/possible");
  std::string s;
  if (!std::getline(in, s)) return 0;
  size_t p = s.find_last_of(",-");
  unsigned long last = std::strtoul(s.c_str() + (p == std::string::npos ? 0 : p + 1), nullptr, 10);
  return static_cast<unsigned>(last + 1);
}

bool FuseUring::Prepare() {
  const unsigned queues = PossibleCpus();
  if (queues == 0 || queues > 1024) {
    LOG(Warn) << "FUSE over io_uring: cannot count the possible CPUs";
    return false;
  }
  for (unsigned q = 0; q < queues; q++)
    for (unsigned t = 0; t < threads_per_queue_; t++)
      workers_.push_back(std::make_unique<Worker>(q));
  // Made here, before the threads, so that Stop can always reach them.
  for (auto& w : workers_) {
    w->wake_fd = eventfd(0, EFD_CLOEXEC);
    if (w->wake_fd < 0) {
      LOG(Warn) << "FUSE over io_uring: eventfd: " << strerror(errno);
      return false;
    }
  }
  for (auto& w : workers_) w->thread = std::thread(&FuseUring::Run, this, w.get());
  std::unique_lock<std::mutex> l(mu_);
  const int total = static_cast<int>(workers_.size());
  bool done = cv_.wait_for(l, std::chrono::seconds(10),
                           [&] { return prepared_ < 0 || prepared_ == total; });
  bool ok = done && prepared_ == total;
  l.unlock();
  if (!ok) Stop();
  return ok;
}

void FuseUring::Start(const fuse_init_out& init) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  // The kernel wants max(8 KiB, max_write, max_pages pages) (32 pages without FUSE_MAX_PAGES).
  const size_t pages = (init.flags & FUSE_MAX_PAGES) ? std::max<size_t>(init.max_pages, 32) : 32;
  std::lock_guard<std::mutex> l(mu_);
  payload_bytes_ = std::max({size_t{8192}, size_t{init.max_write}, pages * page});
  go_ = true;
  cv_.notify_all();
}

void FuseUring::Stop() {
  if (stop_.exchange(true)) return;
  {
    std::lock_guard<std::mutex> l(mu_);
    cv_.notify_all();
  }
  for (auto& w : workers_) {
    if (w->wake_fd >= 0) (void)!eventfd_write(w->wake_fd, 1);
    {
      std::lock_guard<std::mutex> l(w->mu);
      w->cv.notify_all();
    }
  }
  for (auto& w : workers_) {
    if (w->thread.joinable()) w->thread.join();
    if (w->wake_fd >= 0) close(w->wake_fd);
    w->wake_fd = -1;
  }
}

bool FuseUring::AwaitGo() {
  std::unique_lock<std::mutex> l(mu_);
  cv_.wait(l, [&] { return go_ || stop_.load(); });
  return go_ && !stop_.load();
}

void FuseUring::Run(Worker* w) {
  current_ = w;
  bool ok = Setup(w);
  {
    std::lock_guard<std::mutex> l(mu_);
    if (prepared_ >= 0) prepared_ = ok ? prepared_ + 1 : -1;
    cv_.notify_all();
  }
  if (ok && AwaitGo() && Register(w)) Serve(w);
  if (w->ring_ok) io_uring_queue_exit(&w->ring);
}

bool FuseUring::Setup(Worker* w) {
  // Near the callers the kernel queues for: requests from CPU q go to queue q.
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  CPU_SET(w->qid, &cpus);
  (void)sched_setaffinity(0, sizeof(cpus), &cpus);
  int rc = InitRing(&w->ring);
  if (rc < 0) {
    LOG(Warn) << "FUSE over io_uring: io_uring_queue_init: " << strerror(-rc);
    return false;
  }
  w->ring_ok = true;
  io_uring_sqe* sqe = io_uring_get_sqe(&w->ring);
  io_uring_prep_read(sqe, w->wake_fd, &w->wake_value, sizeof(w->wake_value), 0);
  io_uring_sqe_set_data64(sqe, kTagWake);
  rc = io_uring_submit(&w->ring);
  if (rc < 0) LOG(Warn) << "FUSE over io_uring: submit: " << strerror(-rc);
  return rc >= 0;
}

namespace {

// An IORING_OP_URING_CMD on /dev/fuse for `w`'s entry; the command area
// carries the queue and, for a commit, the request being answered.
void PrepEntryCmd(io_uring* ring, int fuse_fd, uint32_t op, unsigned qid, uint64_t commit_id,
                  const iovec* iov) {
  io_uring_sqe* sqe = io_uring_get_sqe(ring);
  CHECK(sqe != nullptr);                  // one entry command and one eventfd read in a 4-deep ring
  std::memset(sqe, 0, 2 * sizeof(*sqe));  // a 128-byte SQE
  sqe->opcode = IORING_OP_URING_CMD;
  sqe->fd = fuse_fd;
  sqe->cmd_op = op;
  sqe->addr = reinterpret_cast<uintptr_t>(iov);
  sqe->len = 2;
  sqe->user_data = kTagEntry;
  FuseUringCmdReq req{};
  req.commit_id = commit_id;
  req.qid = static_cast<uint16_t>(qid);
  std::memcpy(sqe->cmd, &req, sizeof(req));
}

}  // namespace

bool FuseUring::Register(Worker* w) {
  w->buf.reset(static_cast<char*>(std::aligned_alloc(4096, kLeadBytes + payload_bytes_)));
  CHECK(w->buf != nullptr);
  w->payload = w->buf.get() + kLeadBytes;
  w->iov[0] = {&w->header, sizeof(w->header)};
  w->iov[1] = {w->payload, payload_bytes_};
  PrepEntryCmd(&w->ring, fuse_fd_, kFuseIoUringCmdRegister, w->qid, 0, w->iov);
  int rc = io_uring_submit(&w->ring);
  if (rc < 0) LOG(Error) << "FUSE over io_uring: submit REGISTER: " << strerror(-rc);
  return rc >= 0;
}

// One thread's loop: each entry completion is a request to answer; the
// kernel ends the entry (ENOTCONN) when the connection goes away.
void FuseUring::Serve(Worker* w) {
  while (true) {
    io_uring_cqe* cqe = nullptr;
    int rc = io_uring_wait_cqe(&w->ring, &cqe);
    if (rc == -EINTR) continue;
    if (rc < 0) {
      LOG(Error) << "FUSE over io_uring: wait: " << strerror(-rc);
      return;
    }
    const uint64_t tag = cqe->user_data;
    const int res = cqe->res;
    io_uring_cqe_seen(&w->ring, cqe);
    if (tag == kTagWake) return;  // Stop()
    if (res < 0) {
      EntryFailed(w, -res);
      return;
    }
    if (!w->registered) {
      w->registered = true;
      stats_.fuse_uring_entries++;
    }
    w->commit_id = w->header.ring_ent_in_out.commit_id;
    w->committed = false;
    if (!Process(w)) return;
    if (!w->committed && !Commit(w)) return;
  }
}

// After this the kernel may put the next request in the entry's buffers.
bool FuseUring::Commit(Worker* w) {
  PrepEntryCmd(&w->ring, fuse_fd_, kFuseIoUringCmdCommitAndFetch, w->qid, w->commit_id, w->iov);
  int rc = io_uring_submit(&w->ring);
  if (rc < 0) {
    LOG(Error) << "FUSE over io_uring: submit COMMIT_AND_FETCH: " << strerror(-rc);
    return false;
  }
  w->committed = true;
  return true;
}

void FuseUring::CommitOwnReply() {
  Worker* w = current_;
  if (w == nullptr || w->unique.load() == 0 || w->committed) return;
  {
    std::lock_guard<std::mutex> l(w->mu);
    if (!w->replied) return;
  }
  // A failed submit leaves the entry to Serve, which ends on it.
  (void)Commit(w);
}

void FuseUring::EntryFailed(Worker* w, int err) {
  // The connection ending is the normal end of an entry.
  if (err == ENOTCONN || err == ECONNABORTED || err == ECANCELED) return;
  if (!w->registered) {
    // The kernel fell back to /dev/fuse for the whole connection (it answers
    // REGISTER errors by clearing its io_uring flag).
    stats_.fuse_uring_register_errno = static_cast<uint64_t>(err);
    LOG(Error) << "FUSE over io_uring: REGISTER on queue " << w->qid << ": " << strerror(err)
               << "; requests go through /dev/fuse";
    return;
  }
  stats_.fuse_uring_errors++;
  LOG(Error) << "FUSE over io_uring: COMMIT_AND_FETCH on queue " << w->qid << ": " << strerror(err)
             << "; this entry ends";
}

// Makes the entry's request one contiguous buffer, as read(/dev/fuse) gives
// it, hands it to libfuse and waits for its reply (normally already written
// by then, from this thread). False when stopping without a reply.
bool FuseUring::Process(Worker* w) {
  fuse_in_header in;
  std::memcpy(&in, w->header.in_out, sizeof(in));
  const uint32_t payload_sz = w->header.ring_ent_in_out.payload_sz;
  // in.len counts the first argument, which the kernel put in op_in.
  const int64_t op_in = int64_t{in.len} - int64_t{sizeof(in)} - int64_t{payload_sz};
  w->unique = in.unique;
  {
    std::lock_guard<std::mutex> l(w->mu);
    w->replied = false;
  }
  stats_.fuse_uring_requests++;
  if (op_in < 0 || op_in > int64_t{kFuseUringOpInBytes} || payload_sz > payload_bytes_) {
    LOG(Error) << "FUSE over io_uring: request " << in.unique << " opcode " << in.opcode
               << " has len " << in.len << " and payload " << payload_sz;
    ReplyError(in.unique, EIO);
  } else {
    char* start = w->payload - sizeof(in) - op_in;
    std::memcpy(start, &in, sizeof(in));
    std::memcpy(start + sizeof(in), w->header.op_in, static_cast<size_t>(op_in));
    fuse_buf buf{};
    buf.size = in.len;
    buf.mem = start;
    fuse_session_process_buf(se_, &buf);
  }
  std::unique_lock<std::mutex> l(w->mu);
  w->cv.wait(l, [&] { return w->replied || stop_.load(); });
  w->unique = 0;
  return w->replied;
}

void FuseUring::ReplyError(uint64_t unique, int err) {
  fuse_out_header oh{};
  oh.len = sizeof(oh);
  oh.error = -err;
  oh.unique = unique;
  iovec iov = {&oh, sizeof(oh)};
  CHECK(Reply(&iov, 1));  // on the entry's own thread
}

bool FuseUring::Reply(const iovec* iov, int count) {
  if (count < 1 || iov[0].iov_len != sizeof(fuse_out_header)) return false;
  fuse_out_header oh;
  std::memcpy(&oh, iov[0].iov_base, sizeof(oh));
  if (oh.unique == 0) return false;  // a notification
  Worker* w = current_;
  if (w == nullptr || w->unique.load() != oh.unique) {
    w = nullptr;
    for (auto& c : workers_)
      if (c->unique.load() == oh.unique) w = c.get();
    if (w == nullptr) return false;  // a request that came through /dev/fuse
  }
  size_t bytes = 0;
  for (int i = 1; i < count; i++) bytes += iov[i].iov_len;
  if (bytes > payload_bytes_) {
    LOG(Error) << "FUSE over io_uring: a reply of " << bytes << " bytes for a ring entry of "
               << payload_bytes_;
    oh.error = -EIO;
    count = 1;
    bytes = 0;
  }
  char* p = w->payload;
  for (int i = 1; i < count; i++) {
    std::memmove(p, iov[i].iov_base, iov[i].iov_len);  // the reply may quote the request
    p += iov[i].iov_len;
  }
  std::memcpy(w->header.in_out, &oh, sizeof(oh));
  w->header.ring_ent_in_out = {};
  w->header.ring_ent_in_out.payload_sz = static_cast<uint32_t>(bytes);
  {
    std::lock_guard<std::mutex> l(w->mu);
    w->replied = true;
  }
  if (w != current_) w->cv.notify_one();
  return true;
}

}  // namespace cohfs
