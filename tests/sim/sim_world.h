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
// Not modelled: more than one operation at a time per client, KernelHold
// (invalidations run inline), lost connections and restarts.
//
// Checked after every step: never two holders of an EXCLUSIVE lock; a
// client's cache believes only in locks the server gives it. Checked as they
// happen: a release or downgrade leaves only after every logged change and
// every written-behind byte of its inode went out, and (giving it up) after
// the kernel's caches under it were dropped; the server refuses no change a
// core acknowledged; every read (the kernel's caches first, then the core's,
// then the server) sees the newest change that took effect before it began,
// or a newer one, in a sequential model of modes, sizes, file contents and
// names. At the end everything drains and unmounts: no frame, task, parked
// request or operation is left, and the server holds the model's last state.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "client/fs_client.h"
#include "server/scheduler.h"
#include "tests/sim/sim_kernel.h"
#include "tests/sim/sim_rpc.h"

namespace cohfs::sim {

constexpr int kClients = 3;
constexpr int kFixedFiles = 3;
constexpr uint64_t kStampBytes = 16;  // files are written in blocks of this size
constexpr int kBlocks = 6;
// An application takes its reply this soon (sim time) after it arrived.
constexpr int64_t kMaxAbsorbNs = 500000000;

// One application operation in progress on a client (one at a time each).
struct Op {
  enum class Kind { kStat, kChmod, kWrite, kRead, kLookup, kCreate, kMkdir };
  Op(Kind k, InodeId i, std::string n = {}) : kind(k), ino(i), name(std::move(n)) {}
  Kind kind;
  InodeId ino;        // the file, or (lookup, create, mkdir) the directory
  std::string name;   // lookup, create, mkdir
  uint32_t mode = 0;  // chmod: the new permission bits
  int block = 0;      // write
  std::string data;   // write
  InodeId new_ino;    // create, mkdir
  // Where the model stood when the operation began (reads).
  size_t mark = 0;
  std::vector<size_t> block_marks;
  uint64_t size_floor = 0;
  // The request it waits for (none: done when it began).
  Rpc::Ticket ticket;
  uint64_t log_seq = 0;
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
  // What the core must send before it gives a lock back (per inode).
  std::map<InodeId, int> unsent_changes;   // logged, in no commit yet
  std::map<InodeId, size_t> unsent_bytes;  // written behind, not sent yet
  std::set<InodeId> born;                  // created locally
  bool sending_own = false;                // the application's own request is being sent
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
  void Connect(Client& c);
  void ToServer(Client& c);
  void Route(Scheduler::Out& out);
  void ToClient(Client& c);
  bool CanAct(const Client& c) const { return c.rpc->commits_unanswered() <= 3; }
  void RunTask(Client& c);
  void OnSend(Client& c, wire::Request::Reader r, const std::string& bulk);
  void CheckRelease(Client& c, InodeId ino, bool keeps_shared);
  void OnReply(Client& c, wire::Request::Which kind, wire::Reply::Reader r);
  void ScanServer();
  void AddObject(const Attr& a);
  bool DrainRound();
  void CheckFinalState();
  void Fail(const std::string& what);
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
  void StartCreate(Client& c, InodeId dir, const std::string& name);
  void StartMkdir(Client& c);
  void Forget(Client& c, InodeId f);
  void ReplyAttr(Client& c, const Attr& attr);
  void ReplyEntry(Client& c, InodeId dir, const std::string& name, const Attr& attr);
  void ReplyNegative(Client& c, InodeId dir, const std::string& name);
  void SawAttr(Client& c, const Op& op, const Attr& attr);
  void SawData(Client& c, const Op& op, const std::string& data);
  void SawName(Client& c, const Op& op, bool found);
  void WroteLocally(Client& c, const Op& op);
  std::vector<InodeId> FilesOf(const Client& c) const;
  InodeId PickDir();
  std::string PickName(InodeId dir);

  FileSystem& fs_;
  LockManager locks_;
  Dispatcher dispatcher_;
  Scheduler scheduler_;
  std::mt19937_64 rng_;
  int64_t now_ns_ = 1000000000;
  Client clients_[kClients];

  // The objects and the sequential model: each history lists what an object
  // held, in the order changes took effect (a local change when its core
  // answered it, a change through the server when the server applied it).
  std::vector<InodeId> fixed_files_, files_, dirs_;
  std::map<InodeId, std::vector<uint32_t>> modes_;
  std::map<std::pair<InodeId, int>, std::vector<std::string>> blocks_;
  std::map<InodeId, uint64_t> size_floor_;                 // the end of the furthest write
  std::map<std::pair<InodeId, std::string>, bool> names_;  // created (names only appear)
  uint32_t next_mode_ = 0;
  uint64_t next_stamp_ = 0;

  bool failed_ = false;
  std::deque<std::string> trace_;  // the last events, printed with a failure
};

}  // namespace cohfs::sim
