#include "fuzz/fuzz_requests.h"

#include <sys/stat.h>

#include "common/limits.h"
#include "protocol/codec.h"

namespace cohfs::fuzz {
namespace {

constexpr uint32_t kNamespaceKinds = 11;  // FillNamespace
constexpr uint32_t kDataKinds = 13;       // FillData
constexpr uint32_t kSessionKinds = 14;    // FillSession
constexpr uint32_t kCommitChanges = 8;    // at most, in one commit

}  // namespace

uint64_t RequestBuilder::Ino() {
  switch (in_.Below(8)) {
    case 0:
    case 1:
      return kRootInode.value;
    case 5:
      return known_.own_first + in_.Below(16);
    case 6:
      return known_.other_first + in_.Below(16);
    case 7:
      return in_.Int<uint64_t>();
    default:
      if (known_.inodes.empty()) return kRootInode.value;
      return known_.inodes[in_.Below(static_cast<uint32_t>(known_.inodes.size()))];
  }
}

uint64_t RequestBuilder::NewIno() {
  switch (in_.Below(8)) {
    case 6:
      return known_.other_first + in_.Below(32);
    case 7:
      return in_.Int<uint64_t>();
    default:
      return known_.own_first + in_.Below(32);
  }
}

// Mostly a few short names (so requests meet each other's objects); else the
// names a server must refuse, or raw bytes.
std::string RequestBuilder::Name() {
  uint32_t pick = in_.Below(16);
  if (pick < 10) return std::string(1, static_cast<char>('a' + pick % 5));
  switch (pick) {
    case 10:
      return "";
    case 11:
      return in_.Bool() ? "." : "..";
    case 12:
      return std::string(kMaxNameBytes + in_.Below(2), 'n');
    case 13:
      return "a/b";
    default:
      return in_.Bytes(16);
  }
}

uint32_t RequestBuilder::Mode() {
  switch (in_.Below(4)) {
    case 0:
      return S_IFREG | 0644;
    case 1:
      return S_IFDIR | 0755;
    case 2:
      return in_.Int<uint16_t>() & 07777;
    default:
      return in_.Int<uint32_t>();
  }
}

uint64_t RequestBuilder::Offset() {
  switch (in_.Below(4)) {
    case 0:
      return 0;
    case 1:
      return in_.Int<uint16_t>();
    case 2:
      return uint64_t{kBlockBytes} * in_.Below(512);
    default:
      return in_.Int<uint64_t>();
  }
}

int64_t RequestBuilder::NowNs() { return in_.Below(4) == 0 ? in_.Int<int64_t>() : 0; }

void RequestBuilder::Caller(wire::Caller::Builder c) {
  switch (in_.Below(4)) {
    case 2:
      c.setUid(1000);
      c.setGid(1000);
      break;
    case 3: {
      c.setUid(in_.Int<uint32_t>());
      c.setGid(in_.Int<uint32_t>());
      auto groups = c.initGroups(in_.Below(4));
      for (unsigned i = 0; i < groups.size(); i++) groups.set(i, in_.Int<uint32_t>());
      break;
    }
    default:
      break;  // root
  }
}

void RequestBuilder::FillInodes(capnp::List<uint64_t>::Builder list) {
  for (unsigned i = 0; i < list.size(); i++) list.set(i, Ino());
}

void RequestBuilder::FillLock(wire::FileLock::Builder l) {
  l.setIno(Ino());
  l.setOwner(in_.Below(3));
  l.setStart(Offset());
  l.setEnd(in_.Bool() ? ~uint64_t{0} : Offset());
  l.setType(in_.Below(4));
  l.setFlock(in_.Bool());
  l.setPid(in_.U8());
}

void RequestBuilder::FillChange(wire::Request::Builder r) {
  Caller(r.initCaller());
  if (in_.Below(16) == 0) {
    std::string ignored;
    return Fill(r, &ignored);  // refused: not a change a commit may carry
  }
  FillNamespace(r, in_.Below(kNamespaceKinds - 1));  // no lookup
}

void RequestBuilder::FillCommit(wire::Request::Builder r) {
  auto ops = r.initCommit(1 + in_.Below(kCommitChanges));
  for (unsigned i = 0; i < ops.size(); i++) {
    FillChange(ops[i]);
    ops[i].setWithNext(in_.Below(4) == 0);
  }
}

void RequestBuilder::Fill(wire::Request::Builder r, std::string* bulk) {
  Caller(r.initCaller());
  uint32_t kind = in_.Below(kNamespaceKinds + kDataKinds + kSessionKinds);
  if (FillNamespace(r, kind)) return;
  kind -= kNamespaceKinds;
  if (FillData(r, kind, bulk)) return;
  FillSession(r, kind - kDataKinds);
}

// mknod (1), mkdir (2) or symlink (3).
void RequestBuilder::FillCreate(wire::Request::Builder r, uint32_t kind) {
  auto data = [](const std::string& s) { return AsData(s); };
  uint64_t parent = Ino();
  std::string name = Name();
  if (kind == 1) {
    auto m = r.initMknod();
    m.setParent(parent);
    m.setName(data(name));
    m.setMode(in_.Bool() ? S_IFREG | 0644 : Mode());
    m.setRdev(in_.Below(4) == 0 ? in_.Int<uint64_t>() : 0);
    m.setNewIno(NewIno());
    m.setNowNs(NowNs());
  } else if (kind == 2) {
    auto m = r.initMkdir();
    m.setParent(parent);
    m.setName(data(name));
    m.setMode(in_.Bool() ? 0755 : Mode());
    m.setNewIno(NewIno());
    m.setNowNs(NowNs());
  } else {
    auto m = r.initSymlink();
    m.setParent(parent);
    m.setName(data(name));
    std::string target = in_.Below(8) == 0 ? std::string(kMaxSymlinkBytes + 1, 't') : Name();
    m.setTarget(data(target));
    m.setNewIno(NewIno());
    m.setNowNs(NowNs());
  }
}

void RequestBuilder::FillXattr(wire::Request::Builder r, bool remove) {
  static const char* kXattrs[] = {"user.a",     "user.b",   "trusted.t",
                                  "security.s", "system.x", "user."};
  std::string name = in_.Below(8) == 0 ? in_.Bytes(300) : kXattrs[in_.Below(6)];
  if (remove) {
    auto x = r.initRemoveXattr();
    x.setIno(Ino());
    x.setName(AsData(name));
    x.setNowNs(NowNs());
    return;
  }
  auto x = r.initSetXattr();
  x.setIno(Ino());
  x.setName(AsData(name));
  std::string value =
      in_.Below(8) == 0 ? std::string(kMaxXattrValueBytes + in_.Below(2), 'v') : in_.Bytes(64);
  x.setValue(AsData(value));
  x.setFlags(static_cast<int32_t>(in_.Below(4)));
  x.setNowNs(NowNs());
}

// Kinds [0, kNamespaceKinds): the changes a commit carries, then lookup.
bool RequestBuilder::FillNamespace(wire::Request::Builder r, uint32_t kind) {
  auto data = [](const std::string& s) { return AsData(s); };
  switch (kind) {
    case 0: {
      auto a = r.initSetAttr();
      a.setIno(Ino());
      a.setMask(in_.Int<uint16_t>());
      a.setMode(Mode());
      a.setUid(in_.Below(4) == 0 ? in_.Int<uint32_t>() : 1000 * in_.Below(2));
      a.setGid(in_.Below(4) == 0 ? in_.Int<uint32_t>() : 1000 * in_.Below(2));
      a.setSize(Offset());
      a.setAtimeNs(NowNs());
      a.setMtimeNs(NowNs());
      a.setHasOpenHandle(in_.Bool());
      a.setNowNs(NowNs());
      return true;
    }
    case 1:
    case 2:
    case 3:
      FillCreate(r, kind);
      return true;
    case 4: {
      auto m = r.initLink();
      m.setIno(Ino());
      m.setNewParent(Ino());
      m.setNewName(data(Name()));
      m.setNowNs(NowNs());
      return true;
    }
    case 5:
    case 6: {
      uint64_t parent = Ino();
      std::string name = Name();
      if (kind == 5) {
        r.initUnlink().setParent(parent);
        r.getUnlink().setName(data(name));
        r.getUnlink().setNowNs(NowNs());
      } else {
        r.initRmdir().setParent(parent);
        r.getRmdir().setName(data(name));
        r.getRmdir().setNowNs(NowNs());
      }
      return true;
    }
    case 7: {
      auto m = r.initRename();
      m.setParent(Ino());
      m.setName(data(Name()));
      m.setNewParent(Ino());
      m.setNewName(data(Name()));
      m.setFlags(in_.Below(4) == 0 ? in_.Int<uint32_t>() : in_.Below(3));
      m.setNowNs(NowNs());
      return true;
    }
    case 8:
    case 9:
      FillXattr(r, kind == 9);
      return true;
    case 10: {
      auto l = r.initLookup();
      l.setParent(Ino());
      l.setName(data(Name()));
      l.setWantLeaf(in_.Bool());
      return true;
    }
    default:
      return false;
  }
}

// Kinds [0, kDataKinds): attributes, data, directories, xattrs read.
bool RequestBuilder::FillData(wire::Request::Builder r, uint32_t kind, std::string* bulk) {
  switch (kind) {
    case 0:
      r.setGetAttr(Ino());
      return true;
    case 1:
      r.setReadLink(Ino());
      return true;
    case 2:
      r.initOpen().setIno(Ino());
      r.getOpen().setFlags(static_cast<int32_t>(in_.Int<uint32_t>()));
      return true;
    case 3: {
      auto rd = r.initRead();
      rd.setIno(Ino());
      rd.setOffset(Offset());
      rd.setLength(in_.Below(4) == 0 ? in_.Int<uint32_t>() : in_.Int<uint16_t>());
      return true;
    }
    case 4: {
      auto w = r.initWrite();
      w.setIno(Ino());
      w.setOffset(Offset());
      w.setAppend(in_.Below(4) == 0);
      w.setGrantBytes(in_.Below(4) == 0 ? in_.Int<uint64_t>() : in_.Int<uint16_t>());
      w.setWantGrant(in_.Below(4) == 0 ? in_.Int<uint64_t>() : uint64_t{1} << 20);
      if (in_.Bool()) {
        *bulk = in_.Bytes(256);
      } else {  // a large write costs the input a few bytes only
        bulk->assign(in_.Int<uint32_t>() % (kMaxBulkBytes + 1), static_cast<char>(in_.U8()));
      }
      return true;
    }
    case 5:
      r.setFsync(Ino());
      return true;
    case 6: {
      auto d = r.initReadDir();
      d.setIno(Ino());
      d.setCookie(in_.Below(4) == 0 ? in_.Int<uint64_t>() : in_.Below(8));
      d.setMaxEntries(in_.Int<uint32_t>());
      return true;
    }
    case 7:
      r.setStatFs();
      return true;
    case 8:
      r.initGetXattr().setIno(Ino());
      r.getGetXattr().setName(AsData(in_.Bool() ? "user.a" : in_.Bytes(16)));
      return true;
    case 9:
      r.setListXattr(Ino());
      return true;
    case 10: {
      auto f = r.initFallocate();
      f.setIno(Ino());
      f.setMode(static_cast<int32_t>(in_.Below(4) == 0 ? in_.Int<uint32_t>() : in_.Below(0x40)));
      f.setOffset(Offset());
      f.setLength(Offset());
      return true;
    }
    case 11: {
      auto l = r.initLseek();
      l.setIno(Ino());
      l.setOffset(Offset());
      l.setWhence(static_cast<int32_t>(in_.Below(6)));
      return true;
    }
    case 12:
      r.initAccess().setIno(Ino());
      r.getAccess().setMask(static_cast<int32_t>(in_.Below(16)));
      return true;
    default:
      return false;
  }
}

// Kinds [0, kSessionKinds): locks, sessions, commits.
bool RequestBuilder::FillSession(wire::Request::Builder r, uint32_t kind) {
  switch (kind) {
    case 0:
      FillInodes(r.initRelease(in_.Below(4)));
      return true;
    case 1:
      r.setAllocInodes(in_.Below(4) == 0 ? in_.Int<uint64_t>() : in_.Below(64));
      return true;
    case 2:
      r.setRenew();
      return true;
    case 3:
      r.setSyncFs();
      return true;
    case 4:
      r.setGoodbye();
      return true;
    case 5:
    case 6:
      FillCommit(r);
      return true;
    case 7:
      FillInodes(r.initDowngrade(in_.Below(4)));
      return true;
    case 8:
      FillLock(r.initSetLock().initLock());
      r.getSetLock().setWait(in_.Bool());
      return true;
    case 9:
      FillLock(r.initGetLock());
      return true;
    case 10:
      FillInodes(r.initUnlock(in_.Below(4)));
      return true;
    case 11:
      r.setAcquire(Ino());
      return true;
    case 12: {
      auto rc = r.initReclaim();
      auto locks = rc.initLocks(in_.Below(4));
      for (auto g : locks) {
        g.setIno(Ino());
        g.setMode(static_cast<wire::LockMode>(in_.Below(4)));
      }
      FillInodes(rc.initRefs(in_.Below(3)));
      rc.setGrantBytes(in_.Below(4) == 0 ? in_.Int<uint64_t>() : 0);
      return true;
    }
    default: {  // a second hello
      auto h = r.initHello();
      h.setVersionMin(wire::PROTOCOL_VERSION);
      h.setVersionMax(wire::PROTOCOL_VERSION);
      return true;
    }
  }
}

}  // namespace cohfs::fuzz
