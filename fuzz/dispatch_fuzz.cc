#include "fuzz/dispatch_fuzz.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "common/check.h"
#include "fuzz/fuzz_requests.h"
#include "fuzz/fuzz_targets.h"
#include "server/scheduler.h"
#include "storage/fsck.h"

namespace cohfs::fuzz {
namespace {

constexpr int kConns = 3;
constexpr size_t kMaxSteps = 96;  // per run: bounds a run's time
constexpr size_t kMaxKnown = 64;  // inodes remembered from replies
constexpr uint32_t kLeaseMs = 1000;
constexpr uint64_t kImageBytes = 64ull << 20;
// Deleted keys pile up in RocksDB's memtable and slow every scan (sessions,
// fsck): a new volume now and then keeps a run's cost flat.
constexpr uint64_t kRunsPerVolume = 256;

// Small limits, so that a short script reaches them (trimming, leaves, grants).
ServerConfig FuzzConfig() {
  ServerConfig c;
  c.lease_ms = kLeaseMs;
  c.inode_range_size = 1024;
  c.leaf_max_entries = 8;
  c.acquire_max_entries = 16;
  c.max_locked_inodes = 32;
  c.max_grant_bytes = 8ull << 20;
  return c;
}

// The server's core for one server lifetime: a restart makes a new one.
struct Core {
  Core(FileSystem& fs, const Volume& volume)
      : dispatcher(fs, locks, volume, FuzzConfig()), scheduler(dispatcher, kLeaseMs, kLeaseMs) {}
  LockManager locks;
  Dispatcher dispatcher;
  Scheduler scheduler;
};

struct Conn {
  bool open = false;              // has sent its hello
  uint64_t session = 0, key = 0;  // from its latest welcome
  uint64_t first_ino = 0;
  uint64_t next_id = 1;
};

// One run of a script against the volume.
class Script {
 public:
  Script(FuzzInput& in, FileSystem& fs, const Volume& volume)
      : in_(in), fs_(fs), volume_(volume), core_(std::make_unique<Core>(fs, volume)) {
    CHECK(core_->scheduler.Start(now_ms_).ok());
  }

  void Run() {
    for (size_t step = 0; step < kMaxSteps && !in_.empty(); step++) {
      Step();
      Scheduler::Out out;
      core_->scheduler.Tick(now_ms_, out);  // after every batch, as the executor does
      Route(out);
      CheckLocks();
    }
  }

  // Every session ends, as silent clients' sessions do; nothing may stay stored.
  void Finish() {
    Scheduler::Out out;
    for (int c = 0; c < kConns; c++) core_->scheduler.OnClosed(ConnOf(c), now_ms_, true, out);
    now_ms_ += 10 * kLeaseMs;
    core_->scheduler.Tick(now_ms_, out);  // the detached ones and the grace period
    Route(out);
    core_->scheduler.EndAll();
    auto stored = core_->dispatcher.session_store().LoadAll();
    CHECK(stored.ok());
    CHECK_MSG(stored->empty(), "a session ended but stays stored");
  }

 private:
  static ConnectionId ConnOf(int c) { return static_cast<ConnectionId>(c + 1); }

  void Step() {
    int c = static_cast<int>(in_.Below(kConns));
    switch (in_.Below(16)) {
      case 10:
        return SendRaw(c);
      case 11: {
        Scheduler::Out out;
        core_->scheduler.OnClosed(ConnOf(c), now_ms_, in_.Bool(), out);
        conns_[c].open = false;
        return Route(out);
      }
      case 12:
        now_ms_ += in_.U8() * int64_t{20};  // up to five leases
        return;
      case 13:
        return Restart();
      case 14: {  // a resend: the same request id again
        uint64_t& next = conns_[c].next_id;
        uint64_t id = next - std::min<uint64_t>(next - 1, 1 + in_.Below(4));
        return conns_[c].open ? Send(c, id) : Hello(c);
      }
      default:
        return conns_[c].open ? Send(c, conns_[c].next_id++) : Hello(c);
    }
  }

  // A new session or, now and then, the resumption of the last one.
  void Hello(int c) {
    capnp::MallocMessageBuilder m;
    auto h = m.initRoot<wire::Request>().initHello();
    h.setVersionMin(wire::PROTOCOL_VERSION);
    h.setVersionMax(in_.Below(8) == 0 ? 0 : wire::PROTOCOL_VERSION);
    h.setClientName("fuzz");
    h.setWantGrant(in_.Bool() ? 1u << 20 : in_.Int<uint64_t>());
    if (in_.Bool()) {
      h.setResumeSession(conns_[c].session);
      h.setResumeKey(conns_[c].key);
    }
    Deliver(c, EncodeFrame(FrameKind::kRequest, RequestId(conns_[c].next_id++), m));
  }

  void Send(int c, uint64_t id) {
    Known known{inodes_, conns_[c].first_ino, conns_[(c + 1) % kConns].first_ino};
    capnp::MallocMessageBuilder m;
    auto r = m.initRoot<wire::Request>();
    std::string bulk;
    RequestBuilder(in_, known).Fill(r, &bulk);
    if (in_.Below(4) == 0) r.setRepliedBelow(id - std::min<uint64_t>(id, in_.Below(3)));
    Deliver(c, EncodeFrame(FrameKind::kRequest, RequestId(id), m, std::move(bulk)));
  }

  // Message bytes from the input as they are: hostile structure.
  void SendRaw(int c) {
    std::string bytes = in_.Bytes(1024);
    if (bytes.size() < sizeof(capnp::word)) return;
    InFrame f;
    f.header.request_id = RequestId(conns_[c].next_id++);
    f.message = kj::heapArray<capnp::word>(bytes.size() / sizeof(capnp::word));
    std::memcpy(f.message.begin(), bytes.data(), f.message.asBytes().size());
    f.header.message_bytes = static_cast<uint32_t>(f.message.asBytes().size());
    Receive(c, std::move(f));
  }

  // Through the wire: bytes, FrameReader, the decoder, as the reactor does.
  void Deliver(int c, const OutFrame& frame) { Receive(c, ThroughWire(frame)); }

  void Receive(int c, InFrame frame) {
    Scheduler::Out out;
    auto decoded = DecodedRequest::Decode(std::move(frame));
    if (decoded.ok()) {
      bool hello = !conns_[c].open;
      core_->scheduler.OnRequest(ConnOf(c), std::move(decoded).value(), now_ms_, out);
      conns_[c].open = hello ? core_->scheduler.ClientOf(ConnOf(c)).valid() : conns_[c].open;
    } else {  // the reactor drops the connection
      core_->scheduler.OnClosed(ConnOf(c), now_ms_, false, out);
      conns_[c].open = false;
    }
    Route(out);
  }

  // A server stop and start on the same volume: sessions come back from the store.
  void Restart() {
    core_->scheduler.EndAll();
    CHECK(fs_.Sync().ok());
    core_.reset();
    core_ = std::make_unique<Core>(fs_, volume_);
    CHECK(core_->scheduler.Start(now_ms_).ok());
    for (Conn& conn : conns_) conn.open = false;
  }

  void Route(Scheduler::Out& out) {
    if (!out.after_sync.empty()) {
      Status st = fs_.Sync();
      for (auto& [conn, id] : out.after_sync) {
        out.frames.push_back(OutgoingReply{conn, Dispatcher::SyncReply(id, st)});
      }
    }
    for (OutgoingReply& r : out.frames) Learn(r);
    for (ConnectionId closed : out.closes) conns_[closed - 1].open = false;
  }

  // Every frame decodes as the client decodes it; replies teach inode numbers.
  void Learn(OutgoingReply& r) {
    std::vector<iovec> iov;
    r.frame.AppendIovecs(0, &iov);
    InFrame f;
    CHECK(DecodeFrameHeader(static_cast<const char*>(iov[0].iov_base), &f.header).ok());
    f.message = kj::heapArray<capnp::word>(r.frame.message.size());
    std::memcpy(f.message.begin(), r.frame.message.begin(), r.frame.message.asBytes().size());
    if (!r.is_reply) {
      CHECK_MSG(DecodedRecall::Decode(std::move(f)).ok(), "a recall that does not decode");
      return;
    }
    auto decoded = DecodedReply::Decode(std::move(f));
    CHECK_MSG(decoded.ok(), "a reply that does not decode");
    auto reply = (*decoded)->root();
    auto note = [&](uint64_t ino) {
      if (ino == 0 || std::count(inodes_.begin(), inodes_.end(), ino) > 0) return;
      if (inodes_.size() == kMaxKnown) inodes_.erase(inodes_.begin());
      inodes_.push_back(ino);
    };
    if (reply.isWelcome()) {
      Conn& conn = conns_[r.conn - 1];
      conn.session = reply.getWelcome().getSessionId();
      conn.key = reply.getWelcome().getSessionKey();
      if (reply.getWelcome().hasInodes())
        conn.first_ino = reply.getWelcome().getInodes().getFirst();
    }
    if (reply.isAttr()) note(reply.getAttr().getIno());
    if (reply.isRemoved()) note(reply.getRemoved());
    if (reply.isEntries()) {
      for (auto e : reply.getEntries()) note(e.getAttr().getIno());
    }
    for (auto e : reply.getLeaf()) note(e.getAttr().getIno());
    for (auto a : reply.getChanged()) note(a.getIno());
  }

  // Single writer: an EXCLUSIVE holder is the only holder.
  void CheckLocks() {
    for (uint64_t v : inodes_) {
      int holders = 0, exclusive = 0;
      for (const Conn& conn : conns_) {
        if (conn.session == 0) continue;
        LockMode m = core_->locks.HeldBy(ClientId(conn.session), InodeId(v));
        holders += m != LockMode::kNone;
        exclusive += m == LockMode::kExclusive;
      }
      CHECK_MSG(exclusive == 0 || holders == 1, "an EXCLUSIVE lock with another holder");
    }
  }

  FuzzInput& in_;
  FileSystem& fs_;
  const Volume& volume_;
  std::unique_ptr<Core> core_;
  Conn conns_[kConns];
  std::vector<uint64_t> inodes_{kRootInode.value};
  int64_t now_ms_ = 1000000;
};

const Caller kRootCaller{};

// Removes everything in `dir`, depth first.
void Empty(FileSystem& fs, InodeId dir) {
  while (true) {
    auto entries = fs.ReadDir(kRootCaller, dir, 0, 256);
    CHECK_MSG(entries.ok(), "cleanup: readdir");
    if (entries->empty()) return;
    for (const DirEntry& e : *entries) {
      if (S_ISDIR(e.attr.mode)) {
        Empty(fs, e.attr.ino);
        CHECK_MSG(fs.Rmdir(kRootCaller, dir, e.name).ok(), "cleanup: rmdir");
      } else {
        CHECK_MSG(fs.Unlink(kRootCaller, dir, e.name).ok(), "cleanup: unlink");
      }
    }
  }
}

}  // namespace

DispatchFuzzer::DispatchFuzzer(const std::string& parent) {
  std::string tmpl = parent + "/cohfs-fuzz-XXXXXX";
  CHECK(mkdtemp(tmpl.data()) != nullptr);
  dir_ = tmpl;
  NewVolume();
}

void DispatchFuzzer::NewVolume() {
  fs_.reset();
  volume_.reset();
  std::error_code ec;
  std::filesystem::remove_all(dir_ + "/image", ec);
  std::filesystem::remove_all(dir_ + "/image.meta", ec);
  FormatOptions f;
  f.device = dir_ + "/image";
  int fd = open(f.device.c_str(), O_CREAT | O_RDWR, 0644);
  CHECK(fd >= 0 && ftruncate(fd, static_cast<off_t>(kImageBytes)) == 0);
  close(fd);
  CHECK(Volume::Format(f).ok());
  VolumeOptions o;
  o.device = f.device;
  auto v = Volume::Open(o);
  CHECK(v.ok());
  volume_ = std::move(v).value();
  fs_ = std::make_unique<FileSystem>(*volume_);
}

DispatchFuzzer::~DispatchFuzzer() {
  fs_.reset();
  volume_.reset();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

void DispatchFuzzer::Run(const uint8_t* data, size_t size) {
  if (++runs_ % kRunsPerVolume == 0) NewVolume();
  FuzzInput in(data, size);
  {
    Script script(in, *fs_, *volume_);
    script.Run();
    script.Finish();
  }
  Reset();
}

void DispatchFuzzer::Reset() {
  Empty(*fs_, kRootInode);
  auto xattrs = fs_->ListXattr(kRootCaller, kRootInode);
  CHECK(xattrs.ok());
  for (const std::string& name : *xattrs) {
    CHECK(fs_->RemoveXattr(kRootCaller, kRootInode, name).ok());
  }
  SetAttrRequest root;
  root.mask = kSetMode | kSetUid | kSetGid;
  root.mode = 0755;
  CHECK(fs_->SetAttr(kRootCaller, kRootInode, root).ok());
  CHECK(fs_->ReclaimAllOrphans().ok());
  CHECK(fs_->Sync().ok());
  auto report = Fsck(*volume_, /*verify_checksums=*/true);
  CHECK_MSG(report.ok(), "fsck could not run");
  for (const std::string& p : report->problems) fprintf(stderr, "fsck: %s\n", p.c_str());
  CHECK_MSG(report->ok(), "fsck found the volume damaged");
}

}  // namespace cohfs::fuzz
