// Rpc: what the client core (FsClient) needs from its connection to the
// server, and nothing more. RpcClient (the TCP connection) is the production
// implementation; the deterministic simulation (tests/sim) has its own, which
// queues the real frames and delivers them when its seed says (STYLE 18; as
// LevelDB's Env is the seam under its storage).
//
// Contract every implementation keeps:
// - Request ids follow send order, and the server sees requests in that order.
// - A reply goes either to its waiter (Send, then Wait) or to the handler given
//   to Post, never to both, exactly once (a failure to get one included).
// - Recalls go to the recall handler, on a thread that must not block on the
//   core (the production network thread; the simulation's step loop).
#pragma once

#include <capnp/message.h>

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "common/squash.h"
#include "common/status.h"
#include "protocol/codec.h"

namespace cohfs {

struct Welcome {
  uint32_t version = 0;
  uint64_t session_id = 0;
  uint64_t session_key = 0;  // with session_id, what a reconnect resumes with
  bool resumed = false;      // a reconnect: the server still has the session ...
  bool reclaim = false;      // ... but restarted: reclaim its locks first
  uint32_t lease_ms = 0;
  InodeId root;
  uint64_t inodes_first = 0;
  uint64_t inodes_count = 0;
  uint64_t server_generation = 0;  // the generation of inodes created now
  uint64_t grant_bytes = 0;        // the first space grant (client/space_grant.h)
  Squash squash = Squash::kNone;   // the server's, applied to local checks too
};

// A reply whose errno was 0; owns the decoded message and its bulk payload.
class RpcReply {
 public:
  explicit RpcReply(std::unique_ptr<DecodedReply> m) : m_(std::move(m)) {}
  wire::Reply::Reader root() const { return m_->root(); }
  std::string& bulk() { return m_->frame().bulk; }
  // The sender's writeback sequence when the request left (WritebackLog).
  uint64_t log_seq() const { return log_seq_; }
  void set_log_seq(uint64_t seq) { log_seq_ = seq; }
  // Request ids follow send order: a reply to request N was produced before
  // the server saw anything this client sent after N.
  uint64_t request_id() const { return m_->frame().header.request_id.value; }
  // The reply reached the client before the server restarted (and it was
  // taken after): the locks it grants are void (the server lost them; the
  // reclaim asked only for those the client held then).
  bool stale_grants() const { return stale_grants_; }
  void set_stale_grants() { stale_grants_ = true; }

 private:
  std::unique_ptr<DecodedReply> m_;
  uint64_t log_seq_ = 0;
  bool stale_grants_ = false;
};

// The errno a decoded reply carries, as a Status (a bad errno is EIO).
inline Status ReplyStatus(wire::Reply::Reader r) {
  if (r.getErrno() == 0) return Status::Ok();
  if (r.getErrno() < 0 || r.getErrno() > 4095) return Status::Error(EIO, "bad errno in reply");
  return Status::Error(r.getErrno(), r.getMessage().cStr());
}

class Rpc {
 public:
  using ReplyHandler = std::function<void(Result<RpcReply>)>;
  using RecallHandler = std::function<void(InodeId ino, LockMode keep)>;

  // One request's reply on its way from the transport to its waiter or handler.
  struct Pending {
    std::mutex mu;  // guards done, error, reply (rank: leaf)
    std::condition_variable cv;
    bool done = false;
    Status error;
    std::unique_ptr<DecodedReply> reply;
    ReplyHandler on_reply;  // set: the reply goes here instead of to a waiter
    uint64_t restarts = 0;  // server restarts the connection had seen when the reply came
  };
  using Ticket = std::shared_ptr<Pending>;

  static constexpr int kCallTimeoutMs = 120000;

  virtual ~Rpc() = default;

  // Sends a request (caller already set in the message); Wait takes its reply.
  Ticket Send(capnp::MallocMessageBuilder& request, std::string bulk = {}) {
    return DoSend(request, std::move(bulk));
  }
  // Waits at most timeout_ms (-1: as long as it takes, for a blocking file lock).
  // A reply carrying an errno comes back as that Status.
  Result<RpcReply> Wait(const Ticket& ticket, int timeout_ms = kCallTimeoutMs) {
    return DoWait(ticket, timeout_ms);
  }
  // Sends without waiting. The reply, if wanted, goes to `on_reply`, which must
  // not block or wait for another reply.
  void Post(capnp::MallocMessageBuilder& request, ReplyHandler on_reply = {},
            std::string bulk = {}) {
    DoPost(request, std::move(on_reply), std::move(bulk));
  }
  // Takes the server's recalls (must not block; set before traffic starts).
  virtual void SetRecallHandler(RecallHandler h) = 0;
  // After a server restart the connection reclaims the session's locks
  // before anything else: `build` fills the reclaim request, `done` takes
  // the reply (set before traffic starts; a transport that never reconnects
  // has no use for it).
  struct Reclaimer {
    std::function<void(wire::Request::Builder)> build;
    std::function<void(wire::Reply::Reader)> done;
  };
  virtual void SetReclaimer(Reclaimer) {}
  // From now on a call fails with EIO once the server has been unreachable
  // for `ms` (a soft mount; and at unmount, so that a dead server cannot
  // hold the daemon forever). 0: never (a hard mount).
  virtual void GiveUpAfter(int64_t) {}
  // Returns once the session's lease covers what the client caches: the
  // server was heard from within a lease, so it cannot have ended the
  // session and given its locks away. While not, waits for the reconnect
  // (EIO: the session ended, or a soft mount gave up).
  virtual Status AwaitLease() { return Status::Ok(); }
  // The id of the newest request handed to the connection (0: none yet).
  virtual uint64_t last_request_id() = 0;
  // The id of the oldest request still waiting for its reply (else the next id).
  virtual uint64_t oldest_unanswered_id() = 0;
  virtual const Welcome& welcome() const = 0;

 protected:
  virtual Ticket DoSend(capnp::MallocMessageBuilder& request, std::string bulk) = 0;
  virtual Result<RpcReply> DoWait(const Ticket& ticket, int timeout_ms) = 0;
  virtual void DoPost(capnp::MallocMessageBuilder& request, ReplyHandler on_reply,
                      std::string bulk) = 0;
};

}  // namespace cohfs
