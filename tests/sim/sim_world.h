// The deterministic simulation of the coherency protocol (STYLE 18, DESIGN
// §5, §9), with the real client core: three FsClients (client/fs_client.h)
// on the real ObjectCache, WritebackLog and WriteBehind, and the real server
// Scheduler, Dispatcher, LockManager and FileSystem on a real volume, in one
// process and on one thread. Between them, SimRpc carries real frames, one
// per step; a SimKernel per client stands for the kernel's caches.
//
// Determinism: one seeded generator picks every step (which connection's
// next frame moves and which way, which client's application starts or
// finishes an operation, which core runs its next queued task or ticks, when
// the server trims its lock table), and time is the simulation's clock (the
// core's log and release delays and data ages, the server's contention
// window). The cores run without threads of their own (FsClientOptions).
// A core never blocks: applications issue a request (FsClient::SendInOrder)
// and finish it in a later step, after its reply arrived; a core acts only
// while its send window is open (so WaitForSendWindow returns at once); a
// recall waits in the queue while reads of its inode are in flight.
// Assumed, as the core assumes it: an application takes its reply within
// kMaxAbsorbNs of its arrival (revocations are pruned a second later).
// Faults (sim_faults.cc), chosen by the same generator: a client's
// connection is cut (the server sees it close) and comes back within a
// lease; the server crashes (its locks, sessions, grants and parked requests
// are dropped and rebuilt from the store, a grace period begins) and every
// client comes back within the grace period. A client that comes back
// resumes its session, reclaims its locks after a crash, and sends again
// what it got no reply to (SimRpc); the server applies each at most once,
// so every check below holds across faults unchanged.
// Not modelled: more than one operation at a time per client, KernelHold
// (invalidations run inline), a client away past its lease or the grace
// period (its session ends: what it never shipped is lost), a crash that
// loses the store's unsynced writes (the volume stays open), open files
// (a looked-up inode the server holds no reference for may be reclaimed
// after its last name goes: ENOENT is then accepted), symlinks, xattrs,
// permissions (every caller is root), and the kernel's dentries after a
// rename of its own (d_move keeps the old dentry's timeout: FuseOps notes
// the new name under the directory's lock or drops it, NoteRenamedName, and
// an integration test covers it; the simulated kernel forgets both names).
//
// Operations: stat, chmod, truncate, write, read, lookup, forget, and the
// namespace (create, mkdir, unlink, rmdir, rename with its flags, link), each
// driven as client/fuse_ops.cc drives it: local first; for a change in a
// directory not owned, `acquire` (FsClient::SendAcquire, its reply taken in
// a later step) and local again; else the ordinary request.
//
// Checked after every step: never two holders of an EXCLUSIVE lock; a
// client's cache believes only in locks the server gives it (after a crash,
// from its reclaim on); what a client
// (its cache while it holds the directory, or its kernel) believes a name
// maps to is what it maps to now (so no two clients disagree), except in the
// directories of its own request in flight. Checked as they happen: a
// release or downgrade leaves only after every logged change (of any kind:
// the inodes the server checks in its commit) and every written-behind byte
// of its inode went out, in the order they were made, and (giving it up)
// after the kernel's caches under it were dropped; the server refuses no
// change a core acknowledged; every change's result (local or the server's)
// is the one the sequential model (sim_model.h) gives at the moment it takes
// effect; every read (the kernel's caches first, then the core's, then the
// server) sees the newest change that took effect before it began, or a
// newer one: modes, sizes, link counts, file contents and names. At the end
// everything drains and unmounts: no frame, task, parked request or
// operation is left, and the server holds the model's last state (every
// name, size, link count, mode and block).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "client/fs_client.h"
#include "server/scheduler.h"
#include "tests/sim/sim_kernel.h"
#include "tests/sim/sim_model.h"
#include "tests/sim/sim_rpc.h"

namespace cohfs::sim {

// A request an operation sends, stamped with root's identity.
struct Request {
  capnp::MallocMessageBuilder message;
  wire::Request::Builder root;
  Request() : root(message.initRoot<wire::Request>()) { ToWire(Caller{}, root.initCaller()); }
};

constexpr int kClients = 3;
constexpr int kFixedFiles = 3;
// An application takes its reply this soon (sim time) after it arrived.
constexpr int64_t kMaxAbsorbNs = 500000000;

// One application operation in progress on a client (one at a time each).
struct Op {
  enum class Kind {
    kStat,
    kChmod,
    kWrite,
    kRead,
    kLookup,
    kMake,
    kRemove,
    kRename,
    kLink,
    kTruncate
  };
  // How far FuseOps has got with it.
  enum class Stage { kLocal, kAcquireFirst, kAcquireSecond, kLocalAgain, kServer };
  Op(Kind k, InodeId i, std::string n = {}) : kind(k), ino(i), name(std::move(n)) {}
  Kind kind;
  InodeId ino;       // the inode (stat, chmod, write, read, truncate, link), else the directory
  std::string name;  // lookup, make, remove, rename
  InodeId dir2;      // rename, link: the new directory
  std::string name2;
  uint32_t flags = 0;   // rename
  bool is_dir = false;  // make: mkdir; remove: rmdir
  uint32_t mode = 0;    // chmod: the new permission bits
  int block = 0;        // write
  std::string data;     // write
  uint64_t size = 0;    // truncate
  InodeId new_ino;      // make
  Stage stage = Stage::kLocal;
  FsClient::Acquiring acquiring;
  // Where the model stood when the operation began (reads).
  size_t mark = 0;
  size_t mode_mark = 0, size_mark = 0, nlink_mark = 0;
  std::vector<size_t> block_marks;
  // A rename through the server: what the adapter knew of the names before.
  bool know_moved = false;
  Attr moved{}, victim{};
  ObjectCache::LookupResult victim_state = ObjectCache::LookupResult::kUnknown;
  // The request it waits for (none: done when it began).
  Rpc::Ticket ticket;
  uint64_t log_seq = 0;
  uint64_t request_id = 0;
  bool changes = false;  // a change through the server: the model takes it when applied
  bool applied = false;
  InodeId src, dst;         // what the names held when it was applied (rename, remove)
  int64_t answered_ns = 0;  // when its reply reached the core (0: not yet)
  bool gated = false;       // a data read inside BeginRead/EndRead
};

struct Client {
  int index = 0;
  ClientStats stats;
  std::unique_ptr<SimRpc> rpc;
  SimKernel kernel;
  std::unique_ptr<FsClient> core;
  std::optional<Op> op;
  InodeId dir;  // the directory this client made (invalid: none yet)
  // What the core must send before it gives a lock back (per inode), and
  // the logged changes in the order they were made (the commit's kind, and
  // the inodes the server checks it holds).
  std::map<InodeId, int> unsent_changes;
  std::deque<std::pair<wire::Request::Which, std::vector<InodeId>>> unsent_log;
  std::map<InodeId, size_t> unsent_bytes;  // written behind, not sent yet
  std::set<InodeId> born;                  // created locally
  bool sending_own = false;                // the application's own request is being sent
  int64_t back_ns = 0;                     // cut: when it reconnects (0: connected)
  bool reclaimed = true;                   // after a server crash: its locks are back
};

class World {
 public:
  World(FileSystem& fs, const Volume& volume, const std::vector<InodeId>& fixed_files,
        uint64_t seed);
  ~World();

  void Step();
  void CheckInvariants();
  // Delivers, finishes and ships everything, unmounts every core, and checks
  // that nothing is left and the server holds the model's last state.
  void Drain();
  bool failed() const { return failed_; }

 private:
  // sim_world.cc: time, network, server, checks.
  int Pick(int n) { return static_cast<int>(rng_() % static_cast<uint64_t>(n)); }
  int64_t now_ms() const { return now_ns_ / 1000000; }
  void Connect(Client& c, const std::vector<InodeId>& fixed_files);
  void ToServer(Client& c);
  void Route(Scheduler::Out& out);
  void ToClient(Client& c);
  bool CanAct(const Client& c) const { return c.rpc->commits_unanswered() <= 3; }
  void RunTask(Client& c);
  void OnSend(Client& c, wire::Request::Reader r, const std::string& bulk);
  void OnCommit(Client& c, capnp::List<wire::Request>::Reader changes);
  void CheckRelease(Client& c, InodeId ino, bool keeps_shared);
  void OnReply(Client& c, uint64_t id, wire::Request::Which kind, wire::Reply::Reader r);
  void CheckLocks();
  void CheckNames();
  bool DrainRound();
  void CheckFinalState();
  void CheckFinalObject(InodeId ino, const ModelObj& o);
  void Fail(const std::string& what);
  ClientId SessionOf(const Client& c) const { return ClientId(c.rpc->welcome().session_id); }
  Client* OnConn(ConnectionId conn);

  // sim_faults.cc: dropped connections and server crashes.
  bool MaybeFault();
  void CutLink(Client& c);
  void CrashServer();
  void BuildServer();
  void Reconnect(Client& c);
  void ReconnectAll();
  void TraceReclaim(Client& c, wire::Request::Reclaim::Reader r);
  std::unique_ptr<DecodedReply> Exchange(ConnectionId conn, capnp::MallocMessageBuilder& m,
                                         Scheduler::Out& out);
  void EndSessions();
  void Trace(std::string event);
  std::string Traced() const;

  // sim_ops.cc: the applications and their FUSE adapter.
  void StartOp(Client& c);
  void FinishOp(Client& c);
  void Complete(Client& c, Result<RpcReply> reply);
  bool Answered(const Op& op) const { return !op.ticket || op.ticket->done; }
  void Send(Client& c, Op op, capnp::MallocMessageBuilder& m, std::string bulk = {});
  void StartStat(Client& c, InodeId f);
  void StartChmod(Client& c, InodeId f);
  void StartWrite(Client& c, InodeId f);
  void StartRead(Client& c, InodeId f);
  void StartLookup(Client& c, InodeId dir, const std::string& name);
  void Forget(Client& c, InodeId f);
  void ReplyAttr(Client& c, const Attr& attr);
  void ReplyEntry(Client& c, InodeId dir, const std::string& name, const Attr& attr);
  void ReplyNegative(Client& c, InodeId dir, const std::string& name);
  void SawAttr(Client& c, const Op& op, const Attr& attr);
  void SawData(Client& c, const Op& op, const std::string& data);
  void SawName(Client& c, const Op& op, InodeId found);
  void WroteLocally(Client& c, const Op& op);
  void Logged(Client& c, wire::Request::Which kind, std::vector<InodeId> inos);
  std::vector<InodeId> FilesOf(const Client& c, bool dirs = false) const;
  InodeId PickDir(const Client& c);
  std::string PickName(InodeId dir);
  bool Gone(InodeId ino) { return model_.Has(ino) && model_.Obj(ino).nlinks.back() == 0; }

  // sim_ns_ops.cc: the namespace, local first.
  void StartNamespaceOp(Client& c, int which, const std::vector<InodeId>& files);
  void StartMake(Client& c, InodeId dir, const std::string& name, bool is_dir);
  void StartRemove(Client& c, InodeId dir, const std::string& name, bool is_dir);
  void StartRename(Client& c, InodeId dir, const std::string& name, InodeId dir2,
                   const std::string& name2, uint32_t flags);
  void StartLink(Client& c, InodeId f, InodeId dir2, const std::string& name2);
  void StartTruncate(Client& c, InodeId f);
  void Drive(Client& c, Op op);
  void TookAcquire(Client& c, Result<RpcReply> reply);
  bool TryLocally(Client& c, Op& op);
  bool MakeLocally(Client& c, Op& op);
  bool RemoveLocally(Client& c, Op& op);
  bool RenameLocally(Client& c, Op& op);
  bool LinkLocally(Client& c, Op& op);
  bool TruncateLocally(Client& c, Op& op);
  void SendChange(Client& c, Op op);
  void SendRename(Client& c, Op op);
  void Applied(Client& c, int err);
  int ApplyToModel(const Op& op);
  void CheckResult(Client& c, const Op& op, int got, int want, const char* where);
  void CompleteChange(Client& c, const Op& op, Result<RpcReply>& reply);
  void KernelSawChange(Client& c, const Op& op, InodeId moved, InodeId victim);

  FileSystem& fs_;
  const Volume& volume_;
  // The server's memory (lost in a crash); its store is fs_ and volume_.
  std::unique_ptr<LockManager> locks_;
  std::unique_ptr<Dispatcher> dispatcher_;
  std::unique_ptr<Scheduler> scheduler_;
  ConnectionId next_conn_ = kClients + 1;
  int crashes_left_ = 0;
  std::mt19937_64 rng_;
  // Odd seeds: directories past two entries come with lookups a page at a
  // time (ServerConfig::leaf_max_entries), not whole.
  size_t leaf_max_entries_;
  int64_t now_ns_ = 1000000000;
  Client clients_[kClients];

  Model model_;
  uint32_t next_mode_ = 0;
  uint64_t next_stamp_ = 0;

  bool failed_ = false;
  std::deque<std::string> trace_;  // the last events, printed with a failure
};

}  // namespace cohfs::sim
