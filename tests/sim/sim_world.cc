// The simulation's world: time, the network between the cores and the
// server, the server itself, and the checks (see sim_world.h).
#include "tests/sim/sim_world.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "common/check.h"

namespace cohfs::sim {
namespace {

constexpr size_t kClientMaxLocks = 6;  // small: the cores give back their LRU locks

}  // namespace

World::World(FileSystem& fs, const Volume& volume, const std::vector<InodeId>& fixed_files,
             uint64_t seed)
    : fs_(fs), volume_(volume), rng_(seed), leaf_max_entries_(seed % 2 ? 2 : 256) {
  BuildServer();
  crashes_left_ = Pick(3) == 0 ? 1 : 0;  // a third of the seeds see the server crash
  // The model starts from the server: the root and the fixed files in it.
  auto root = fs_.GetAttr(kRootInode);
  CHECK(root.ok());
  model_.AddObject(*root, kRootInode);
  for (const std::string& name : Model::NamesIn(kRootInode)) {
    auto child = fs_.Lookup(Caller{}, kRootInode, name);
    model_.AddName(kRootInode, name, child.ok() ? child->ino : InodeId());
    if (child.ok()) model_.AddObject(*child, kRootInode);
  }
  for (InodeId f : fixed_files) CHECK(model_.Has(f));
  for (int i = 0; i < kClients; i++) Connect(clients_[i], fixed_files);
  for (Client& c : clients_) c.core->Start();
}

World::~World() {
  EndSessions();
  for (Client& c : clients_) c.core.reset();  // before the connections they use
}

Client* World::OnConn(ConnectionId conn) {
  for (Client& c : clients_) {
    if (c.rpc->connected() && c.rpc->conn() == conn) return &c;
  }
  return nullptr;
}

// The Hello goes through the real server at once: the core starts from its Welcome.
void World::Connect(Client& c, const std::vector<InodeId>& fixed_files) {
  c.index = static_cast<int>(&c - clients_);
  c.rpc = std::make_unique<SimRpc>(static_cast<ConnectionId>(c.index + 1));
  capnp::MallocMessageBuilder m;
  InitHello(m.initRoot<wire::Request>(), "sim", SpaceGrant::kWantBytes);
  auto hello =
      DecodedRequest::Decode(ThroughWire(EncodeFrame(FrameKind::kRequest, RequestId(1), m)));
  CHECK(hello.ok());
  Scheduler::Out out;
  scheduler_->OnRequest(c.rpc->conn(), std::move(hello).value(), now_ms(), out);
  CHECK(out.frames.size() == 1);
  auto reply = DecodedReply::Decode(ThroughWire(out.frames[0].frame));
  CHECK(reply.ok());
  auto w = (*reply)->root().getWelcome();
  Welcome welcome;
  welcome.version = w.getVersion();
  welcome.session_id = w.getSessionId();
  welcome.session_key = w.getSessionKey();
  welcome.lease_ms = w.getLeaseMs();
  welcome.root = InodeId(w.getRootIno());
  welcome.inodes_first = w.getInodes().getFirst();
  welcome.inodes_count = w.getInodes().getCount();
  welcome.server_generation = w.getServerGeneration();
  welcome.grant_bytes = w.getGrantBytes();
  c.rpc->set_welcome(welcome);
  c.rpc->set_observers([this, &c](uint64_t, wire::Request::Reader r,
                                  const std::string& bulk) { OnSend(c, r, bulk); },
                       [this, &c](uint64_t id, wire::Request::Which kind, wire::Reply::Reader r) {
                         OnReply(c, id, kind, r);
                       });
  c.rpc->set_pump([this] { return DrainRound(); });
  FsClientOptions options;
  options.own_threads = false;
  options.clock_ns = [this] { return now_ns_; };
  c.core = std::make_unique<FsClient>(*c.rpc, c.stats, kClientMaxLocks, options);
  c.core->set_kernel(&c.kernel);
  for (InodeId f : fixed_files) {  // looked up before the seed began (no lock yet)
    c.core->cache().AddLookup(f);
    c.kernel.nlookup[f] = 1;
  }
}

void World::Step() {
  now_ns_ += Pick(20) * 1000000;  // 0-19 ms: delays and contention windows do pass
  // The core forgets revocations a second after the requests they cap were
  // answered (FsClient::Tick): it assumes a thread takes its reply sooner.
  for (Client& late : clients_) {
    if (late.op && late.op->answered_ns && now_ns_ - late.op->answered_ns > kMaxAbsorbNs) {
      return FinishOp(late);
    }
  }
  if (MaybeFault()) return;
  Client& c = clients_[Pick(kClients)];
  switch (Pick(12)) {
    case 0:
    case 1:
    case 2:
      if (c.rpc->HasToServer()) return ToServer(c);
      break;
    case 3:
    case 4:
    case 5:
      if (c.rpc->HasToClient()) return ToClient(c);
      break;
    case 6:
      if (c.op && Answered(*c.op)) return FinishOp(c);
      break;
    case 7:
      if (CanAct(c)) return RunTask(c);
      break;
    case 8:
      if (Pick(4) == 0) {
        Trace("c" + std::to_string(c.index) + " tick");
        return c.core->Tick();
      }
      break;
    case 9:
      if (Pick(8) == 0) {
        Scheduler::Out out;
        scheduler_->Tick(now_ms(), out);
        return Route(out);
      }
      break;
    default:
      if (!c.op && CanAct(c)) return StartOp(c);
      break;
  }
}

void World::ToServer(Client& c) {
  auto decoded = DecodedRequest::Decode(ThroughWire(*c.rpc->TakeToServer()));
  CHECK(decoded.ok());
  Trace("server <- c" + std::to_string(c.index) + " #" +
        std::to_string((*decoded)->frame().header.request_id.value) + " kind " +
        std::to_string(static_cast<int>((*decoded)->root().which())));
  Scheduler::Out out;
  scheduler_->OnRequest(c.rpc->conn(), std::move(decoded).value(), now_ms(), out);
  Route(out);
}

void World::Route(Scheduler::Out& out) {
  for (auto& [conn, id] : out.after_sync) {
    out.frames.push_back(OutgoingReply{conn, Dispatcher::SyncReply(id, Status::Ok())});
  }
  for (auto& f : out.frames) {
    Client* on = OnConn(f.conn);
    if (!on) {  // its connection is gone: the client sends the request again
      Trace("server -> connection " + std::to_string(f.conn) + ": lost");
      continue;
    }
    Client& c = *on;
    if (!f.is_reply) Trace("server recalls from c" + std::to_string(c.index));
    // A change through the server takes effect when the server answers it.
    if (f.is_reply && c.op && c.op->changes && !c.op->applied) {
      FrameHeader h;
      CHECK(DecodeFrameHeader(f.frame.header, &h).ok());
      if (h.request_id.value == c.op->request_id) {
        auto reply = DecodedReply::Decode(ThroughWire(f.frame));
        CHECK(reply.ok());
        Applied(c, (*reply)->root().getErrno());
      }
    }
    c.rpc->PushToClient(std::move(f.frame));
  }
}

void World::ToClient(Client& c) {
  Trace("c" + std::to_string(c.index) + " <- server");
  c.rpc->DeliverToClient();
  if (c.op && c.op->ticket && c.op->ticket->done && !c.op->answered_ns) c.op->answered_ns = now_ns_;
}

void World::RunTask(Client& c) {
  if (c.core->RunPendingTask()) Trace("c" + std::to_string(c.index) + " ran a task");
}

// The transport's view of a core's sends: what a release must come after.
void World::OnSend(Client& c, wire::Request::Reader r, const std::string& bulk) {
  switch (r.which()) {
    case wire::Request::COMMIT:
      OnCommit(c, r.getCommit());
      break;
    case wire::Request::WRITE:
      if (!c.sending_own) {
        size_t& n = c.unsent_bytes[InodeId(r.getWrite().getIno())];
        if (n < bulk.size()) Fail("the core sent data it was never given");
        n -= std::min(n, bulk.size());
      }
      break;
    case wire::Request::RELEASE:
      for (uint64_t ino : r.getRelease()) CheckRelease(c, InodeId(ino), false);
      break;
    case wire::Request::UNLOCK:
      for (uint64_t ino : r.getUnlock()) CheckRelease(c, InodeId(ino), false);
      break;
    case wire::Request::DOWNGRADE:
      for (uint64_t ino : r.getDowngrade()) CheckRelease(c, InodeId(ino), true);
      break;
    default:
      break;
  }
}

// The log leaves in the order its changes were made, each change as made.
void World::OnCommit(Client& c, capnp::List<wire::Request>::Reader changes) {
  for (auto op : changes) {
    if (c.unsent_log.empty()) return Fail("the core committed a change it never acknowledged");
    auto& [kind, inos] = c.unsent_log.front();
    if (op.which() != kind) return Fail("the core committed its changes out of order");
    for (InodeId ino : inos) c.unsent_changes[ino]--;
    c.unsent_log.pop_front();
  }
}

void World::CheckRelease(Client& c, InodeId ino, bool keeps_shared) {
  Trace("c" + std::to_string(c.index) + (keeps_shared ? " downgrades " : " releases ") +
        std::to_string(ino.value));
  std::string who =
      "client " + std::to_string(c.index) + " gave back inode " + std::to_string(ino.value);
  if (c.unsent_changes[ino] != 0) Fail(who + " before its logged changes were sent");
  if (c.unsent_bytes[ino] != 0) Fail(who + " before its written-behind data was sent");
  if (!keeps_shared && c.kernel.CachesUnder(ino)) {
    Fail(who + " while the kernel still caches what the lock covered");
  }
}

// Every change a core acknowledged must be taken by the server.
void World::OnReply(Client& c, uint64_t id, wire::Request::Which kind, wire::Reply::Reader r) {
  const bool own = c.op && c.op->request_id == id;  // the application's, not written behind
  if (kind == wire::Request::COMMIT && r.isFailures() && r.getFailures().size() > 0) {
    Fail("client " + std::to_string(c.index) + ": an acknowledged change to inode " +
         std::to_string(r.getFailures()[0].getIno()) + " was refused: errno " +
         std::to_string(r.getFailures()[0].getErrno()) + " " +
         r.getFailures()[0].getMessage().cStr());
  }
  if (kind == wire::Request::WRITE && !own && r.getErrno() != 0) {
    Fail("client " + std::to_string(c.index) +
         ": written-behind data was refused: " + r.getMessage().cStr());
  }
}

void World::CheckInvariants() {
  CheckLocks();
  if (!failed_) CheckNames();
}

void World::CheckLocks() {
  for (const auto& [ino, obj] : model_.objs()) {
    int exclusive = 0, holders = 0;
    for (Client& c : clients_) {
      LockMode server = locks_->HeldBy(SessionOf(c), ino);
      holders += server != LockMode::kNone;
      exclusive += server == LockMode::kExclusive;
      // An inode created locally is born EXCLUSIVE here; the server learns of
      // it (and of the lock) from the commit.
      LockMode cached = c.core->cache().lock(ino);
      // After a server crash, locks come back when the client reclaims them.
      if (c.reclaimed && cached > server && !(c.born.count(ino) && !fs_.GetAttr(ino).ok())) {
        return Fail("client " + std::to_string(c.index) + " believes in a lock on inode " +
                    std::to_string(ino.value) + " the server does not give it");
      }
    }
    if (exclusive > 0 && holders > 1) {
      return Fail("inode " + std::to_string(ino.value) + ": EXCLUSIVE held with another lock");
    }
  }
}

// What a client believes of a name (its cache, while it holds the directory,
// and its kernel) is what the name maps to now: two clients never disagree.
// The directories of a change of its own in flight through the server are
// the exception: the kernel holds them locked until the reply is taken.
void World::CheckNames() {
  for (Client& c : clients_) {
    auto busy = [&](InodeId dir) {
      return c.op && c.op->changes && (c.op->ino == dir || c.op->dir2 == dir);
    };
    auto check = [&](InodeId dir, const std::string& name, InodeId believed, const char* who) {
      InodeId now = model_.Name(dir, name);
      if (believed == now || busy(dir)) return;
      Fail("client " + std::to_string(c.index) + "'s " + who + " believes '" + name + "' in " +
           std::to_string(dir.value) + " is inode " + std::to_string(believed.value) + "; it is " +
           std::to_string(now.value));
    };
    for (const auto& [key, ino] : c.kernel.entries) check(key.first, key.second, ino, "kernel");
    for (const auto& [dir, obj] : model_.objs()) {
      if (!obj.dir || c.core->cache().lock(dir) == LockMode::kNone) continue;
      for (const std::string& name : Model::NamesIn(dir)) {
        if (auto believed = c.core->cache().PeekName(dir, name))
          check(dir, name, *believed, "cache");
      }
    }
    if (failed_) return;
  }
}

// One round of everything that can move; false when nothing did.
bool World::DrainRound() {
  bool moved = false;
  now_ns_ += 200000000;  // the log's and the releases' delays pass
  ReconnectAll();
  for (Client& c : clients_) {
    while (c.rpc->HasToServer()) ToServer(c), moved = true;
    while (c.rpc->HasToClient()) ToClient(c), moved = true;
    if (c.op && Answered(*c.op)) FinishOp(c), moved = true;
    while (CanAct(c) && c.core->RunPendingTask()) moved = true;
    c.core->Tick();
    moved |= c.rpc->HasToServer();
  }
  return moved;
}

void World::Drain() {
  for (int round = 0; round < 1000 && !failed_ && DrainRound(); round++) {
  }
  for (Client& c : clients_) {
    if (failed_) return;
    for (const auto& [ino, obj] : model_.objs()) {
      if (!obj.dir) (void)c.core->FlushAndDropData(ino);  // every file is closed
    }
    c.core->Unmount();  // sends queued releases and syncs, pumping the world
  }
  for (int round = 0; round < 1000 && !failed_ && DrainRound(); round++) {
  }
  if (failed_) return;
  for (Client& c : clients_) {
    if (c.op) Fail("client " + std::to_string(c.index) + ": an operation never finished");
    while (c.core->RunPendingTask()) {
    }  // a tick queues a data flush: it must find nothing to send
    if (!c.rpc->idle()) Fail("client " + std::to_string(c.index) + ": frames never delivered");
  }
  if (scheduler_->parked() != 0) Fail("requests still parked at the server");
  CheckFinalState();
}

// Nothing acknowledged was lost: the server holds every name and object as
// the model last had it.
void World::CheckFinalState() {
  for (const auto& [key, history] : model_.names()) {
    auto child = fs_.Lookup(Caller{}, key.first, key.second);
    InodeId got = child.ok() ? child->ino : InodeId();
    if (got != history.back()) {
      return Fail("'" + key.second + "' in " + std::to_string(key.first.value) + " ends as inode " +
                  std::to_string(got.value) + ", not " + std::to_string(history.back().value));
    }
  }
  for (const auto& [ino, obj] : model_.objs()) {
    if (obj.nlinks.back() > 0) CheckFinalObject(ino, obj);
  }
}

void World::CheckFinalObject(InodeId ino, const ModelObj& o) {
  const std::string what = "inode " + std::to_string(ino.value);
  auto attr = fs_.GetAttr(ino);
  if (!attr.ok()) return Fail(what + " never reached the server");
  if (attr->nlink != o.nlinks.back() || attr->size != o.sizes.back()) {
    return Fail(what + " ends with " + std::to_string(attr->nlink) + " links and size " +
                std::to_string(attr->size) + ", not " + std::to_string(o.nlinks.back()) + " and " +
                std::to_string(o.sizes.back()));
  }
  if (o.dir) {
    auto entries = fs_.ReadDir(Caller{}, ino, 0, 100);
    CHECK(entries.ok());
    for (const DirEntry& e : *entries) {
      if (model_.Name(ino, e.name) != e.attr.ino) return Fail(what + " holds '" + e.name + "'");
    }
    return;
  }
  if ((attr->mode & 07777) != o.modes.back()) {
    return Fail(what + " ends with mode " + std::to_string(attr->mode & 07777) +
                ", not the last one set, " + std::to_string(o.modes.back()));
  }
  auto data = fs_.Read(Caller{}, ino, 0, kBlocks * kStampBytes);
  CHECK(data.ok());
  for (int b = 0; b < kBlocks; b++) {
    std::string block = b * kStampBytes < data->size() ? data->substr(b * kStampBytes, kStampBytes)
                                                       : std::string(kStampBytes, '\0');
    if (block != o.blocks.at(b).back()) {
      return Fail(what + " block " + std::to_string(b) + " lost its last write");
    }
  }
}

void World::Fail(const std::string& what) {
  if (failed_) return;
  failed_ = true;
  ADD_FAILURE() << what << "\nlast events:\n" << Traced();
}

void World::Trace(std::string event) {
  if (std::getenv("COHFS_SIM_TRACE")) fprintf(stderr, "TRACE %s\n", event.c_str());
  trace_.push_back(std::move(event));
  if (trace_.size() > 80) trace_.pop_front();
}

std::string World::Traced() const {
  std::string out;
  for (const auto& e : trace_) out += "  " + e + "\n";
  return out;
}

}  // namespace cohfs::sim
