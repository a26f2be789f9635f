// The simulation's world: time, the network between the cores and the
// server, the server itself, and the checks (see sim_world.h).
#include "tests/sim/sim_world.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>

#include "common/check.h"

namespace cohfs::sim {
namespace {

ServerConfig SimServerConfig() {
  ServerConfig c;
  c.max_locked_inodes = 10;  // small: the server recalls locks to stay under it
  return c;
}

constexpr size_t kClientMaxLocks = 6;  // small: the cores give back their LRU locks

}  // namespace

World::World(FileSystem& fs, const Volume& volume, const std::vector<InodeId>& fixed_files,
             uint64_t seed)
    : fs_(fs),
      dispatcher_(fs, locks_, volume, SimServerConfig()),
      scheduler_(dispatcher_),
      rng_(seed),
      fixed_files_(fixed_files),
      files_(fixed_files) {
  dirs_.push_back(kRootInode);
  for (const char* name : {"a", "b", "c"}) names_[{kRootInode, name}] = false;
  for (int i = 0; i < kClients; i++) names_[{kRootInode, "d" + std::to_string(i)}] = false;
  files_.clear();
  for (int i = 0; i < kFixedFiles; i++) {
    names_[{kRootInode, "f" + std::to_string(i)}] = true;
    AddObject(*fs_.GetAttr(fixed_files_[i]));
  }
  for (int i = 0; i < kClients; i++) Connect(clients_[i]);
  for (Client& c : clients_) c.core->Start();
}

World::~World() {
  for (Client& c : clients_) c.core.reset();  // before the connections they use
}

// The Hello goes through the real server at once: the core starts from its Welcome.
void World::Connect(Client& c) {
  c.index = static_cast<int>(&c - clients_);
  c.rpc = std::make_unique<SimRpc>(static_cast<ConnectionId>(c.index + 1));
  capnp::MallocMessageBuilder m;
  auto h = m.initRoot<wire::Request>().initHello();
  h.setVersionMin(wire::PROTOCOL_VERSION);
  h.setVersionMax(wire::PROTOCOL_VERSION);
  h.setClientName("sim");
  h.setWantGrant(SpaceGrant::kWantBytes);
  auto hello =
      DecodedRequest::Decode(ThroughWire(EncodeFrame(FrameKind::kRequest, RequestId(1), m)));
  CHECK(hello.ok());
  Scheduler::Out out;
  scheduler_.OnRequest(c.rpc->conn(), std::move(hello).value(), now_ms(), out);
  CHECK(out.frames.size() == 1);
  auto reply = DecodedReply::Decode(ThroughWire(out.frames[0].frame));
  CHECK(reply.ok());
  auto w = (*reply)->root().getWelcome();
  Welcome welcome;
  welcome.version = w.getVersion();
  welcome.session_id = w.getSessionId();
  welcome.root = InodeId(w.getRootIno());
  welcome.inodes_first = w.getInodes().getFirst();
  welcome.inodes_count = w.getInodes().getCount();
  welcome.server_generation = w.getServerGeneration();
  welcome.grant_bytes = w.getGrantBytes();
  c.rpc->set_welcome(welcome);
  c.rpc->set_observers([this, &c](uint64_t, wire::Request::Reader r,
                                  const std::string& bulk) { OnSend(c, r, bulk); },
                       [this, &c](uint64_t, wire::Request::Which kind, wire::Reply::Reader r) {
                         OnReply(c, kind, r);
                       });
  c.rpc->set_pump([this] { return DrainRound(); });
  FsClientOptions options;
  options.own_threads = false;
  options.clock_ns = [this] { return now_ns_; };
  c.core = std::make_unique<FsClient>(*c.rpc, c.stats, kClientMaxLocks, options);
  c.core->set_kernel(&c.kernel);
  for (InodeId f : fixed_files_) {  // looked up before the seed began (no lock yet)
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
        scheduler_.Trim(now_ms(), out);
        return Route(out);
      }
      break;
    default:
      if (!c.op && CanAct(c)) return StartOp(c);
      break;
  }
}

void World::ToServer(Client& c) {
  auto decoded = DecodedRequest::Decode(ThroughWire(c.rpc->TakeToServer()));
  CHECK(decoded.ok());
  Trace("server <- c" + std::to_string(c.index) + " #" +
        std::to_string((*decoded)->frame().header.request_id.value) + " kind " +
        std::to_string(static_cast<int>((*decoded)->root().which())));
  Scheduler::Out out;
  scheduler_.OnRequest(c.rpc->conn(), std::move(decoded).value(), now_ms(), out);
  Route(out);
}

void World::Route(Scheduler::Out& out) {
  for (auto& [conn, id] : out.after_sync) {
    out.frames.push_back(OutgoingReply{conn, Dispatcher::SyncReply(id, Status::Ok())});
  }
  for (auto& f : out.frames) {
    if (!f.is_reply) Trace("server recalls from c" + std::to_string(f.conn - 1));
    clients_[f.conn - 1].rpc->PushToClient(std::move(f.frame));
  }
  if (out.mutated) ScanServer();
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
      for (auto op : r.getCommit()) {
        if (op.isSetAttr()) c.unsent_changes[InodeId(op.getSetAttr().getIno())]--;
        if (op.isMknod()) {
          c.unsent_changes[InodeId(op.getMknod().getNewIno())]--;
          c.unsent_changes[InodeId(op.getMknod().getParent())]--;
        }
      }
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
void World::OnReply(Client& c, wire::Request::Which kind, wire::Reply::Reader r) {
  if (kind == wire::Request::COMMIT && r.isFailures() && r.getFailures().size() > 0) {
    Fail("client " + std::to_string(c.index) +
         ": an acknowledged change was refused: " + r.getFailures()[0].getMessage().cStr());
  }
  if (kind == wire::Request::WRITE && !c.sending_own && r.getErrno() != 0) {
    Fail("client " + std::to_string(c.index) +
         ": written-behind data was refused: " + r.getMessage().cStr());
  }
}

// A change through the server takes effect where the server applies it.
void World::ScanServer() {
  for (InodeId f : files_) {
    auto attr = fs_.GetAttr(f);
    if (!attr.ok()) continue;  // created locally, not shipped yet
    std::vector<uint32_t>& h = modes_[f];
    if (std::find(h.begin(), h.end(), attr->mode & 07777) == h.end())
      h.push_back(attr->mode & 07777);
    size_floor_[f] = std::max(size_floor_[f], attr->size);
    auto data = fs_.Read(f, 0, kBlocks * kStampBytes);
    CHECK(data.ok());
    for (int b = 0; b * kStampBytes < data->size(); b++) {
      std::string block = data->substr(b * kStampBytes, kStampBytes);
      std::vector<std::string>& bh = blocks_[{f, b}];
      if (std::find(bh.begin(), bh.end(), block) == bh.end()) bh.push_back(block);
    }
  }
  std::vector<Attr> born;
  for (auto& [key, present] : names_) {
    if (present) continue;
    auto child = fs_.Lookup(Caller{}, key.first, key.second);
    present = child.ok();
    if (present) born.push_back(*child);
  }
  for (const Attr& a : born) AddObject(a);
}

// A new object, as the server made it (a local create adds its own).
void World::AddObject(const Attr& a) {
  if (S_ISDIR(a.mode)) {
    if (std::find(dirs_.begin(), dirs_.end(), a.ino) != dirs_.end()) return;
    dirs_.push_back(a.ino);
    for (const char* name : {"a", "b", "c"}) names_[{a.ino, name}] = false;
    return;
  }
  if (std::find(files_.begin(), files_.end(), a.ino) != files_.end()) return;
  files_.push_back(a.ino);
  modes_[a.ino] = {a.mode & 07777};
  for (int b = 0; b < kBlocks; b++) blocks_[{a.ino, b}] = {std::string(kStampBytes, '\0')};
}

void World::CheckInvariants() {
  std::vector<InodeId> all = files_;
  all.insert(all.end(), dirs_.begin(), dirs_.end());
  for (InodeId ino : all) {
    int exclusive = 0, holders = 0;
    for (Client& c : clients_) {
      LockMode server = locks_.HeldBy(scheduler_.ClientOf(c.rpc->conn()), ino);
      holders += server != LockMode::kNone;
      exclusive += server == LockMode::kExclusive;
      // A file created locally is born EXCLUSIVE here; the server learns of
      // it (and of the lock) from the commit.
      bool unborn = c.born.count(ino) && !fs_.GetAttr(ino).ok();
      if (c.core->cache().lock(ino) > server && !unborn) {
        return Fail("client " + std::to_string(c.index) + " believes in a lock on inode " +
                    std::to_string(ino.value) + " the server does not give it");
      }
    }
    if (exclusive > 0 && holders > 1) {
      return Fail("inode " + std::to_string(ino.value) + ": EXCLUSIVE held with another lock");
    }
  }
}

// One round of everything that can move; false when nothing did.
bool World::DrainRound() {
  bool moved = false;
  now_ns_ += 200000000;  // the log's and the releases' delays pass
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
    for (InodeId f : files_) (void)c.core->FlushAndDropData(f);  // every file is closed
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
  if (scheduler_.parked() != 0) Fail("requests still parked at the server");
  CheckFinalState();
}

// Nothing acknowledged was lost: the server holds each object's last state.
void World::CheckFinalState() {
  ScanServer();
  for (InodeId f : files_) {
    auto attr = fs_.GetAttr(f);
    if (!attr.ok()) return Fail("file " + std::to_string(f.value) + " never reached the server");
    if ((attr->mode & 07777) != modes_[f].back()) {
      Fail("file " + std::to_string(f.value) + " ends with mode " +
           std::to_string(attr->mode & 07777) + ", not the last one set, " +
           std::to_string(modes_[f].back()));
    }
    auto data = fs_.Read(f, 0, kBlocks * kStampBytes);
    for (int b = 0; b < kBlocks; b++) {
      std::string block = b * kStampBytes < data->size()
                              ? data->substr(b * kStampBytes, kStampBytes)
                              : std::string(kStampBytes, '\0');
      if (block != blocks_[{f, b}].back()) {
        Fail("file " + std::to_string(f.value) + " block " + std::to_string(b) +
             " lost its last write");
      }
    }
  }
}

void World::Fail(const std::string& what) {
  if (failed_) return;
  failed_ = true;
  ADD_FAILURE() << what << "\nlast events:\n" << Traced();
}

void World::Trace(std::string event) {
  trace_.push_back(std::move(event));
  if (trace_.size() > 80) trace_.pop_front();
}

std::string World::Traced() const {
  std::string out;
  for (const auto& e : trace_) out += "  " + e + "\n";
  return out;
}

}  // namespace cohfs::sim
