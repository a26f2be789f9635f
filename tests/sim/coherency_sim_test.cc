// Deterministic simulation of the coherency protocol (STYLE 18): the real
// server Scheduler, Dispatcher, LockManager and FileSystem (on a real volume),
// and clients that keep their cache in the real ObjectCache and follow the
// client core's rules (local changes under EXCLUSIVE, a recall ships the log,
// drops the lock and only then releases), over a fake network that delivers
// each connection's frames in order but interleaves connections, delays and
// client actions as a seed decides. After every step it checks: never two
// EXCLUSIVE holders; no client believes in a lock the server does not give
// it; no acknowledged change refused; every read returns the newest value
// written before it began, or a newer one. At the end everything drains: no
// request stays parked. A failure names its seed; COHFS_SIM_SEED replays one.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>

#include "client/object_cache.h"
#include "protocol/codec.h"
#include "server/scheduler.h"
#include "tests/unit/server/fs_fixture.h"

namespace cohfs::test {
namespace {

constexpr int kClients = 3;
constexpr int kFiles = 3;
constexpr int kSteps = 1000;

InFrame Receive(const OutFrame& f) {
  std::vector<iovec> iov;
  f.AppendIovecs(0, &iov);
  FrameReader reader;
  for (const iovec& v : iov) {
    size_t avail = 0;
    std::memcpy(reader.WritableTail(v.iov_len, &avail), v.iov_base, v.iov_len);
    reader.CommitReceived(v.iov_len);
  }
  auto next = reader.Next();
  EXPECT_TRUE(next.ok() && next->has_value());
  return std::move(**next);
}

struct Client {
  ConnectionId conn = 0;
  ObjectCache cache;
  uint64_t next_id = 1;
  uint64_t log_seq = 0;                           // local changes made so far
  std::vector<std::pair<InodeId, uint32_t>> log;  // unshipped chmods
  std::deque<OutFrame> to_server, to_client;
  struct Op {
    bool write = false;
    InodeId ino;
    uint32_t value = 0;
    size_t min_index = 0;  // reads: the newest write completed before it began
    uint64_t id = 0;       // the request it waits for (0: none)
    uint64_t sent_seq = 0;
  };
  std::optional<Op> op;
  std::map<uint64_t, uint64_t> sent_seq;  // request id -> log_seq when it left
  std::deque<InFrame> inbox;              // replies received, not yet absorbed
  struct Recall {
    InodeId ino;
    LockMode keep = LockMode::kNone;
    bool revoked = false;
  };
  std::deque<Recall> recalls;  // received, in the core thread's queue
};

class Sim {
 public:
  Sim(FileSystem& fs, const Volume& volume, const std::vector<InodeId>& files, uint64_t seed)
      : fs_(fs),
        dispatcher_(fs, locks_, volume, ServerConfig{}),
        scheduler_(dispatcher_),
        rng_(seed),
        files_(files) {
    for (InodeId f : files_) {  // every seed starts from mode 0: written values are unique
      SetAttrRequest zero;
      zero.mask = kSetMode;
      zero.mode = S_IFREG;
      EXPECT_TRUE(fs.SetAttr(Caller{}, f, zero).ok());
      history_[f] = {0};
    }
    for (int i = 0; i < kClients; i++) {
      clients_[i].conn = static_cast<ConnectionId>(i + 1);
      Send(clients_[i], [](wire::Request::Builder r) {
        auto h = r.initHello();
        h.setVersionMin(wire::PROTOCOL_VERSION);
        h.setVersionMax(wire::PROTOCOL_VERSION);
      });
    }
  }

  // One step: deliver a frame one way or the other, or let a client act.
  void Step() {
    Client& cl = clients_[Pick(kClients)];
    switch (Pick(6)) {
      case 0:
        if (!cl.to_server.empty()) return ToServer(cl);
        break;
      case 1:
        if (!cl.to_client.empty()) return ToClient(cl);
        break;
      case 2:
        if (!cl.inbox.empty()) return Absorb(cl);
        break;
      case 3:
        if (!cl.recalls.empty()) return AdvanceRecall(cl);
        break;
      case 4:
        if (!cl.op) return StartOp(cl);
        break;
      default:
        if (!cl.log.empty() && Pick(3) == 0) return Ship(cl);
        break;
    }
  }

  // Delivers everything until the network is quiet; ops finish.
  void Drain() {
    for (int round = 0; round < 100000; round++) {
      bool moved = false;
      for (Client& cl : clients_) {
        if (!cl.to_server.empty()) ToServer(cl), moved = true;
        if (!cl.to_client.empty()) ToClient(cl), moved = true;
        if (!cl.inbox.empty()) Absorb(cl), moved = true;
        if (!cl.recalls.empty()) AdvanceRecall(cl), moved = true;
        if (!cl.log.empty() && !cl.op) Ship(cl), moved = true;
      }
      if (!moved) break;
    }
    for (Client& cl : clients_) EXPECT_FALSE(cl.op.has_value()) << "an operation never finished";
    EXPECT_EQ(scheduler_.parked(), 0u) << "requests still parked";
  }

  void CheckInvariants() {
    for (InodeId f : files_) {
      int exclusive = 0, holders = 0;
      for (Client& cl : clients_) {
        LockMode server = locks_.HeldBy(scheduler_.ClientOf(cl.conn), f);
        holders += server != LockMode::kNone;
        exclusive += server == LockMode::kExclusive;
        ASSERT_LE(cl.cache.lock(f), server)
            << "client " << cl.conn << " believes in a lock on " << f.value
            << " the server does not give it; last events:\n"
            << Traced();
      }
      ASSERT_TRUE(exclusive == 0 || holders == 1) << "inode " << f.value << ": EXCLUSIVE shared";
    }
  }

 private:
  int Pick(int n) { return static_cast<int>(rng_() % static_cast<uint64_t>(n)); }

  template <typename Fill>
  uint64_t Send(Client& cl, Fill fill) {
    capnp::MallocMessageBuilder m;
    auto r = m.initRoot<wire::Request>();
    ToWire(Caller{}, r.initCaller());
    fill(r);
    uint64_t id = cl.next_id++;
    cl.sent_seq[id] = cl.log_seq;
    cl.to_server.push_back(EncodeFrame(FrameKind::kRequest, RequestId(id), m));
    return id;
  }

  void ToServer(Client& cl) {
    auto decoded = DecodedRequest::Decode(Receive(cl.to_server.front()));
    cl.to_server.pop_front();
    ASSERT_TRUE(decoded.ok());
    Trace("server <- c" + std::to_string(cl.conn) + " #" +
          std::to_string((*decoded)->frame().header.request_id.value) + " " +
          std::to_string(static_cast<int>((*decoded)->root().which())));
    Scheduler::Out out;
    now_ms_ += Pick(400);  // a recalled inode stays contended for a few deliveries
    scheduler_.OnRequest(cl.conn, std::move(decoded).value(), now_ms_, out);
    for (auto& [conn, id] : out.after_sync) {
      out.frames.push_back(OutgoingReply{conn, Dispatcher::SyncReply(id, Status::Ok())});
    }
    for (auto& f : out.frames) clients_[f.conn - 1].to_client.push_back(std::move(f.frame));
    // A write through the server takes effect here, where the server applies
    // it (a write under EXCLUSIVE took effect when its client answered it).
    for (InodeId f : files_) {
      uint32_t v = fs_.GetAttr(f)->mode & 07777;  // values are unique per write
      std::vector<uint32_t>& h = history_[f];
      if (std::find(h.begin(), h.end(), v) == h.end()) h.push_back(v);
    }
  }

  // The network thread: a reply goes to the thread that waits for it, a
  // recall to the core's thread; either may run later than the other.
  void ToClient(Client& cl) {
    InFrame frame = Receive(cl.to_client.front());
    cl.to_client.pop_front();
    if (frame.header.kind == FrameKind::kRecall) {
      auto recall = DecodedRecall::Decode(std::move(frame));
      ASSERT_TRUE(recall.ok());
      cl.recalls.push_back(
          {InodeId((*recall)->root().getIno()), FromWire((*recall)->root().getMode()), false});
      return;
    }
    cl.inbox.push_back(std::move(frame));
  }

  void Absorb(Client& cl) {
    size_t i = static_cast<size_t>(Pick(static_cast<int>(cl.inbox.size())));
    InFrame frame = std::move(cl.inbox[i]);
    cl.inbox.erase(cl.inbox.begin() + static_cast<ptrdiff_t>(i));
    uint64_t id = frame.header.request_id.value;
    auto reply = DecodedReply::Decode(std::move(frame));
    ASSERT_TRUE(reply.ok());
    OnReply(cl, id, (*reply)->root());
  }

  // As the client core answers a recall, in two steps with anything in
  // between: the lock drops (grants already on the wire are voided) and the
  // log ships; later, the release or downgrade goes out (FsClient::SendRelease).
  void AdvanceRecall(Client& cl) {
    Client::Recall& r = cl.recalls.front();
    if (!r.revoked) {
      Trace("c" + std::to_string(cl.conn) + " recall ino " + std::to_string(r.ino.value) +
            " keep " + std::to_string(static_cast<int>(r.keep)));
      cl.cache.Revoke(r.ino, r.keep, cl.next_id - 1);
      Ship(cl);
      r.revoked = true;
      return;
    }
    Client::Recall done = r;
    cl.recalls.pop_front();
    // The release gives back every grant in replies to requests before it.
    cl.cache.Revoke(done.ino, done.keep, cl.next_id - 1);
    Trace("c" + std::to_string(cl.conn) + " releases ino " + std::to_string(done.ino.value) +
          " as #" + std::to_string(cl.next_id));
    Send(cl, [&](wire::Request::Builder m) {
      auto list = done.keep == LockMode::kNone ? m.initRelease(1) : m.initDowngrade(1);
      list.set(0, done.ino.value);
    });
  }

  void OnReply(Client& cl, uint64_t id, wire::Reply::Reader r) {
    ObjectCache::ReplyOrder order(cl.sent_seq[id], id);
    cl.sent_seq.erase(id);
    LockMode granted = LockMode::kNone;
    for (auto g : r.getGrants()) granted = std::max(granted, FromWire(g.getMode()));
    if (r.isFailures()) {
      ASSERT_EQ(r.getFailures().size(), 0u)
          << "an acknowledged change was refused: " << r.getFailures()[0].getMessage().cStr();
    }
    Trace("c" + std::to_string(cl.conn) + " reply #" + std::to_string(id) + " grant " +
          std::to_string(static_cast<int>(granted)));
    if (!cl.op || cl.op->id != id) return;
    ASSERT_EQ(r.getErrno(), 0) << r.getMessage().cStr();
    Attr now = cl.cache.PutAttr(FromWire(r.getAttr()), granted, order);
    Finish(cl, now.mode & 07777);
  }

  void StartOp(Client& cl) {
    Client::Op op;
    op.ino = files_[Pick(kFiles)];
    op.write = Pick(2) == 0;
    if (Pick(8) == 0) return Forget(cl, op.ino);
    if (op.write) {
      op.value = 1 + (next_value_++ % 4000);
      auto local = cl.cache.UpdateAttr(op.ino, cl.log_seq + 1, [&](Attr& a) {
        a.mode = (a.mode & ~07777u) | op.value;
        return Status::Ok();
      });
      if (local) {  // owned: answered now, shipped later
        ASSERT_TRUE(local->ok());
        cl.log_seq++;
        cl.log.emplace_back(op.ino, op.value);
        cl.op = op;
        return Finish(cl, op.value);
      }
    } else {
      op.min_index = history_[op.ino].size() - 1;
      if (auto a = cl.cache.GetAttr(op.ino)) {
        cl.op = op;
        return Finish(cl, a->mode & 07777);
      }
    }
    cl.op = op;
    cl.op->id = Send(cl, [&](wire::Request::Builder r) {
      if (!op.write) return r.setGetAttr(op.ino.value);
      SetAttrRequest req;
      req.mask = kSetMode;
      req.mode = S_IFREG | op.value;
      ToWire(op.ino, req, r.initSetAttr());
    });
  }

  void Finish(Client& cl, uint32_t value) {
    Client::Op op = *cl.op;
    cl.op.reset();
    Trace("c" + std::to_string(cl.conn) + (op.write ? " wrote " : " read ") +
          std::to_string(value) + " ino " + std::to_string(op.ino.value) + " lock " +
          std::to_string(static_cast<int>(cl.cache.lock(op.ino))));
    std::vector<uint32_t>& h = history_[op.ino];
    if (op.write) {
      ASSERT_EQ(value, op.value);
      if (op.id == 0) h.push_back(value);  // local: it takes effect now
      return;
    }
    size_t newest_before = op.min_index;
    bool fresh = false;
    for (size_t i = newest_before; i < h.size(); i++) fresh |= h[i] == value;
    // A write through the server is seen once applied, before its writer hears back.
    for (Client& other : clients_) {
      fresh |= other.op && other.op->write && other.op->ino == op.ino && other.op->value == value;
    }
    ASSERT_TRUE(fresh) << "client " << cl.conn << " read " << value << " on inode " << op.ino.value
                       << "; the newest write before the read was " << h[newest_before]
                       << "; last events:\n"
                       << Traced();
  }

  void Ship(Client& cl) {
    if (cl.log.empty()) return;
    auto log = std::move(cl.log);
    cl.log.clear();
    Send(cl, [&](wire::Request::Builder r) {
      auto list = r.initCommit(static_cast<unsigned>(log.size()));
      for (size_t i = 0; i < log.size(); i++) {
        ToWire(Caller{}, list[i].initCaller());
        SetAttrRequest req;
        req.mask = kSetMode;
        req.mode = S_IFREG | log[i].second;
        ToWire(log[i].first, req, list[i].initSetAttr());
      }
    });
  }

  // The kernel forgot the inode: its changes ship, then its lock goes back.
  void Forget(Client& cl, InodeId ino) {
    if (cl.cache.lock(ino) == LockMode::kNone) return;
    Ship(cl);
    cl.cache.Revoke(ino, LockMode::kNone, cl.next_id - 1);
    Send(cl, [&](wire::Request::Builder r) { r.initRelease(1).set(0, ino.value); });
  }

  FileSystem& fs_;
  LockManager locks_;
  Dispatcher dispatcher_;
  Scheduler scheduler_;
  std::mt19937_64 rng_;
  std::vector<InodeId> files_;
  Client clients_[kClients];
  std::map<InodeId, std::vector<uint32_t>> history_;  // values in the order writes finished
  uint32_t next_value_ = 0;
  int64_t now_ms_ = 0;
  std::deque<std::string> trace_;  // the last events, printed with a failure
  void Trace(std::string e) {
    trace_.push_back(std::move(e));
    if (trace_.size() > 60) trace_.pop_front();
  }
  std::string Traced() const {
    std::string out;
    for (const auto& e : trace_) out += "  " + e + "\n";
    return out;
  }
};

class CoherencySim : public FsTest {
 protected:
  std::vector<InodeId> MakeFiles() {
    std::vector<InodeId> files;
    for (int i = 0; i < kFiles; i++)
      files.push_back(Create(kRootInode, "f" + std::to_string(i)).ino);
    return files;
  }
  bool RunSeed(const std::vector<InodeId>& files, uint64_t seed) {
    SCOPED_TRACE("seed " + std::to_string(seed) +
                 " (replay: COHFS_SIM_SEED=" + std::to_string(seed) + ")");
    Sim sim(*fs_, tv_.volume(), files, seed);
    for (int i = 0; i < kSteps && !HasFatalFailure(); i++) {
      sim.Step();
      if (!HasFatalFailure()) sim.CheckInvariants();
    }
    if (!HasFatalFailure()) sim.Drain();
    return !HasFailure();
  }
};

TEST_F(CoherencySim, ThousandsOfSeedsKeepEveryInvariant) {
  std::vector<InodeId> files = MakeFiles();
  if (const char* one = std::getenv("COHFS_SIM_SEED")) {
    RunSeed(files, std::strtoull(one, nullptr, 10));
    return;
  }
  const char* count = std::getenv("COHFS_SIM_SEEDS");
  uint64_t seeds = count ? std::strtoull(count, nullptr, 10) : 2000;
  for (uint64_t seed = 1; seed <= seeds; seed++) {
    if (!RunSeed(files, seed)) return;  // the first failing seed is reported
  }
}

}  // namespace
}  // namespace cohfs::test
