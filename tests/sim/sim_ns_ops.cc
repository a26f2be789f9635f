// The simulation's namespace operations, driven as client/fuse_ops.cc drives
// them (MakeNode, RemoveName, Rename, Link, SetAttr's truncation): local
// first; for a change in a directory this client does not own, ownership on
// demand (FsClient::SendAcquire, its reply absorbed in a later step, as a
// FUSE thread would wake up) and local again; else the ordinary request.
// A local change's result must be the model's at that moment; a change
// through the server takes effect, and is compared, when the server answers.
#include <sys/stat.h>

#include <algorithm>

#include "tests/sim/sim_world.h"

namespace cohfs::sim {
namespace {

// Where FuseOps goes after an acquire: a rename needs both directories.
void NextAfterAcquire(Op& op, bool owned) {
  if (!owned) {
    op.stage = Op::Stage::kServer;
  } else if (op.kind == Op::Kind::kRename && op.stage == Op::Stage::kAcquireFirst) {
    op.stage = Op::Stage::kAcquireSecond;
  } else {
    op.stage = Op::Stage::kLocalAgain;
  }
}

int ErrnoOf(const Status& st) { return st.ok() ? 0 : st.errno_value(); }

}  // namespace

void World::StartNamespaceOp(Client& c, int which, const std::vector<InodeId>& files) {
  InodeId f = files[Pick(static_cast<int>(files.size()))];
  InodeId mine = c.dir.valid() && Pick(2) ? c.dir : PickDir(c);
  switch (which) {
    case 0:
      return StartMake(c, mine, PickName(mine), /*is_dir=*/false);
    case 1: {
      if (!c.dir.valid()) return StartMake(c, kRootInode, "d" + std::to_string(c.index), true);
      return StartMake(c, mine, PickName(mine), /*is_dir=*/true);
    }
    case 2:
      return StartRemove(c, mine, PickName(mine), /*is_dir=*/false);
    case 3:
      return StartRemove(c, mine, PickName(mine), /*is_dir=*/true);
    case 4:
    case 5: {
      InodeId to = Pick(2) ? mine : PickDir(c);
      const uint32_t flags[] = {0, 0, kRenameNoReplace, kRenameExchange};
      std::string from_name = PickName(mine);
      return StartRename(c, mine, from_name, to, PickName(to), flags[Pick(4)]);
    }
    case 6: {
      InodeId to = PickDir(c);
      return StartLink(c, f, to, PickName(to));
    }
    case 7:
      return StartTruncate(c, f);
    default:
      return StartMake(c, mine, PickName(mine), /*is_dir=*/false);
  }
}

void World::StartMake(Client& c, InodeId dir, const std::string& name, bool is_dir) {
  Op op(Op::Kind::kMake, dir, name);
  op.is_dir = is_dir;
  auto ino = c.core->NewInode(Caller{});
  if (!ino.ok()) return Fail("no inode number: " + ino.status().ToString());
  op.new_ino = InodeId(*ino);
  Drive(c, std::move(op));
}

void World::StartRemove(Client& c, InodeId dir, const std::string& name, bool is_dir) {
  Op op(Op::Kind::kRemove, dir, name);
  op.is_dir = is_dir;
  Drive(c, std::move(op));
}

void World::StartRename(Client& c, InodeId dir, const std::string& name, InodeId dir2,
                        const std::string& name2, uint32_t flags) {
  Op op(Op::Kind::kRename, dir, name);
  op.dir2 = dir2;
  op.name2 = name2;
  op.flags = flags;
  Drive(c, std::move(op));
}

void World::StartLink(Client& c, InodeId f, InodeId dir2, const std::string& name2) {
  Op op(Op::Kind::kLink, f);
  op.dir2 = dir2;
  op.name2 = name2;
  Drive(c, std::move(op));
}

void World::StartTruncate(Client& c, InodeId f) {
  Op op(Op::Kind::kTruncate, f);
  op.size = Pick(kBlocks + 1) * kStampBytes;
  // Buffered data first, as FuseOps::SetAttr sends it.
  if (!c.core->FlushData(f).ok()) return Fail("flush before a truncate failed");
  Drive(c, std::move(op));
}

// As far as `op` can go without a reply; it waits in c.op for the next one.
void World::Drive(Client& c, Op op) {
  if (op.stage == Op::Stage::kLocal) {
    if (TryLocally(c, op)) return;
    const bool acquires =
        op.kind == Op::Kind::kMake || op.kind == Op::Kind::kRemove || op.kind == Op::Kind::kRename;
    op.stage = acquires ? Op::Stage::kAcquireFirst : Op::Stage::kServer;
  }
  while (op.stage == Op::Stage::kAcquireFirst || op.stage == Op::Stage::kAcquireSecond) {
    InodeId dir = op.stage == Op::Stage::kAcquireFirst ? op.ino : op.dir2;
    FsClient::Acquiring sent = c.core->SendAcquire(dir, Caller{});
    if (sent.ticket) {
      op.ticket = sent.ticket;
      op.acquiring = sent;
      op.request_id = c.rpc->last_request_id();
      op.answered_ns = 0;
      Trace("c" + std::to_string(c.index) + " sends #" + std::to_string(op.request_id) +
            ": acquire " + std::to_string(dir.value));
      c.op = std::move(op);
      return;
    }
    NextAfterAcquire(op, sent.owned);
  }
  if (op.stage == Op::Stage::kLocalAgain) {
    if (TryLocally(c, op)) return;
    op.stage = Op::Stage::kServer;
  }
  SendChange(c, std::move(op));
}

void World::TookAcquire(Client& c, Result<RpcReply> reply) {
  Op op = std::move(*c.op);
  c.op.reset();
  InodeId dir = op.stage == Op::Stage::kAcquireFirst ? op.ino : op.dir2;
  const bool owned = c.core->AbsorbAcquire(dir, op.acquiring, std::move(reply));
  Trace("c" + std::to_string(c.index) + (owned ? " owns " : " was refused ") +
        std::to_string(dir.value));
  op.ticket.reset();
  op.acquiring = {};
  NextAfterAcquire(op, owned);
  Drive(c, std::move(op));
}

bool World::TryLocally(Client& c, Op& op) {
  switch (op.kind) {
    case Op::Kind::kMake:
      return MakeLocally(c, op);
    case Op::Kind::kRemove:
      return RemoveLocally(c, op);
    case Op::Kind::kRename:
      return RenameLocally(c, op);
    case Op::Kind::kLink:
      return LinkLocally(c, op);
    case Op::Kind::kTruncate:
      return TruncateLocally(c, op);
    default:
      return false;
  }
}

void World::CheckResult(Client& c, const Op& op, int got, int want, const char* where) {
  Trace("c" + std::to_string(c.index) + " op " + std::to_string(static_cast<int>(op.kind)) + " '" +
        op.name + "' in " + std::to_string(op.ino.value) + " -> '" + op.name2 + "' in " +
        std::to_string(op.dir2.value) + " flags " + std::to_string(op.flags) + " " + where +
        ": errno " + std::to_string(got));
  if (got == want) return;
  Fail("client " + std::to_string(c.index) + ": op " + std::to_string(static_cast<int>(op.kind)) +
       " on '" + op.name + "' in " + std::to_string(op.ino.value) + " gave errno " +
       std::to_string(got) + " " + where + "; the model says " + std::to_string(want));
}

// A logged change: its inodes' locks may not go back before its commit.
void World::Logged(Client& c, wire::Request::Which kind, std::vector<InodeId> inos) {
  std::vector<InodeId> unique;
  for (InodeId ino : inos) {
    if (ino.valid() && std::find(unique.begin(), unique.end(), ino) == unique.end()) {
      unique.push_back(ino);
      c.unsent_changes[ino]++;
    }
  }
  c.unsent_log.emplace_back(kind, std::move(unique));
}

// The kernel's side of a change this client made: it drops the names and
// the attributes the change made stale (fuse_dir_changed, fuse_entry_unlinked).
void World::KernelSawChange(Client& c, const Op& op, InodeId moved, InodeId victim) {
  for (InodeId ino : {op.ino, op.dir2, moved, victim}) c.kernel.attrs.erase(ino);
  if (op.kind == Op::Kind::kRemove || op.kind == Op::Kind::kRename) {
    c.kernel.entries.erase({op.ino, op.name});
  }
  if (op.kind == Op::Kind::kRename) c.kernel.entries.erase({op.dir2, op.name2});
}

bool World::MakeLocally(Client& c, Op& op) {
  FsClient::NewNode node{op.is_dir ? S_IFDIR | 0755u : S_IFREG, {}};
  auto local = c.core->MakeLocally(op.ino, op.name, Caller{}, node, op.new_ino);
  if (!local) return false;
  CheckResult(c, op, ErrnoOf(local->status()), model_.Make(op.ino, op.name, op.new_ino, op.is_dir),
              "locally");
  if (!local->ok() || failed_) return true;
  Logged(c, op.is_dir ? wire::Request::MKDIR : wire::Request::MKNOD, {op.new_ino, op.ino});
  c.born.insert(op.new_ino);
  if (op.is_dir && !c.dir.valid()) c.dir = op.new_ino;
  c.core->WaitForSendWindow();
  KernelSawChange(c, op, InodeId(), InodeId());
  ReplyEntry(c, op.ino, op.name, **local);
  return true;
}

bool World::RemoveLocally(Client& c, Op& op) {
  const InodeId child = model_.Name(op.ino, op.name);
  auto local = c.core->RemoveLocally(op.ino, op.name, Caller{}, op.is_dir);
  if (!local) return false;
  CheckResult(c, op, ErrnoOf(*local), model_.Remove(op.ino, op.name, op.is_dir), "locally");
  if (!local->ok() || failed_) return true;
  Logged(c, op.is_dir ? wire::Request::RMDIR : wire::Request::UNLINK, {op.ino, child});
  c.core->WaitForSendWindow();
  KernelSawChange(c, op, child, InodeId());
  return true;
}

bool World::RenameLocally(Client& c, Op& op) {
  const InodeId src = model_.Name(op.ino, op.name), dst = model_.Name(op.dir2, op.name2);
  auto local = c.core->RenameLocally(op.ino, op.name, op.dir2, op.name2, op.flags, Caller{});
  if (!local) return false;
  CheckResult(c, op, ErrnoOf(*local), model_.Rename(op.ino, op.name, op.dir2, op.name2, op.flags),
              "locally");
  if (!local->ok() || failed_) return true;
  // One inode under both names: nothing changes, nothing is logged.
  if (src != dst) Logged(c, wire::Request::RENAME, {op.ino, op.dir2, src, dst});
  c.core->WaitForSendWindow();
  KernelSawChange(c, op, src, dst);
  return true;
}

bool World::LinkLocally(Client& c, Op& op) {
  auto local = c.core->LinkLocally(op.ino, op.dir2, op.name2, Caller{});
  if (!local) return false;
  CheckResult(c, op, ErrnoOf(local->status()), model_.Link(op.ino, op.dir2, op.name2), "locally");
  if (!local->ok() || failed_) return true;
  Logged(c, wire::Request::LINK, {op.ino, op.dir2});
  c.core->WaitForSendWindow();
  KernelSawChange(c, op, op.ino, InodeId());
  ReplyEntry(c, op.dir2, op.name2, **local);
  return true;
}

// The kernel's pages of a truncated file end where it ends now.
static void TruncatePages(SimKernel& kernel, InodeId ino, uint64_t size) {
  auto it = kernel.pages.find(ino);
  if (it != kernel.pages.end()) it->second.resize(size, '\0');
}

bool World::TruncateLocally(Client& c, Op& op) {
  SetAttrRequest req;
  req.mask = kSetSize;
  req.size = op.size;
  auto local = c.core->SetAttrLocally(op.ino, Caller{}, req);
  if (!local) return false;
  if (!local->ok()) {
    Fail("local truncate failed: " + local->status().ToString());
    return true;
  }
  Trace("c" + std::to_string(c.index) + " truncates " + std::to_string(op.ino.value) + " to " +
        std::to_string(op.size) + " locally");
  model_.Truncate(op.ino, op.size);
  Logged(c, wire::Request::SET_ATTR, {op.ino});
  c.core->WaitForSendWindow();
  TruncatePages(c.kernel, op.ino, op.size);
  ReplyAttr(c, **local);
  return true;
}

// ---- through the server

void World::SendChange(Client& c, Op op) {
  if (op.kind == Op::Kind::kRename) return SendRename(c, std::move(op));
  Request r;
  auto names = [&](auto b) {
    b.setParent(op.ino.value);
    b.setName(AsData(op.name));
  };
  switch (op.kind) {
    case Op::Kind::kMake:
      if (op.is_dir) {
        auto m = r.root.initMkdir();
        names(m);
        m.setMode(0755);
        m.setNewIno(op.new_ino.value);
      } else {
        auto m = r.root.initMknod();
        names(m);
        m.setMode(S_IFREG);
        m.setNewIno(op.new_ino.value);
      }
      break;
    case Op::Kind::kRemove: {
      Attr child;
      // The reply carries the child's server attributes: its data goes first.
      if (c.core->cache().Lookup(op.ino, op.name, &child) == ObjectCache::LookupResult::kFound) {
        if (!c.core->FlushData(child.ino).ok()) return Fail("flush before an unlink failed");
      }
      if (op.is_dir) {
        names(r.root.initRmdir());
      } else {
        names(r.root.initUnlink());
      }
      break;
    }
    case Op::Kind::kLink: {
      if (!c.core->FlushData(op.ino).ok()) return Fail("flush before a link failed");
      auto l = r.root.initLink();
      l.setIno(op.ino.value);
      l.setNewParent(op.dir2.value);
      l.setNewName(AsData(op.name2));
      break;
    }
    case Op::Kind::kTruncate: {
      SetAttrRequest req;
      req.mask = kSetSize;
      req.size = op.size;
      ToWire(op.ino, req, r.root.initSetAttr());
      break;
    }
    default:
      return Fail("no such change");
  }
  op.changes = true;
  Send(c, std::move(op), r.message);
}

void World::SendRename(Client& c, Op op) {
  ObjectCache& cache = c.core->cache();
  op.know_moved = cache.Lookup(op.ino, op.name, &op.moved) == ObjectCache::LookupResult::kFound;
  op.victim_state = cache.Lookup(op.dir2, op.name2, &op.victim);
  for (const Attr* a : {&op.moved, &op.victim}) {
    if (a->ino.valid() && !c.core->FlushData(a->ino).ok()) return Fail("flush failed");
  }
  Request r;
  auto m = r.root.initRename();
  m.setParent(op.ino.value);
  m.setName(AsData(op.name));
  m.setNewParent(op.dir2.value);
  m.setNewName(AsData(op.name2));
  m.setFlags(op.flags);
  op.changes = true;
  Send(c, std::move(op), r.message);
}

// The server answered c's change: it took effect now (or failed now).
void World::Applied(Client& c, int err) {
  Op& op = *c.op;
  op.applied = true;
  op.src = model_.Name(op.ino, op.name);
  op.dst = model_.Name(op.dir2, op.name2);
  const bool gone_ok = err == ENOENT && Gone(op.ino);
  switch (op.kind) {
    case Op::Kind::kChmod:
      if (err == 0) model_.Chmod(op.ino, op.mode);
      break;
    case Op::Kind::kWrite:
      if (err == 0) model_.Write(op.ino, op.block, op.data);
      break;
    case Op::Kind::kTruncate:
      if (err == 0) model_.Truncate(op.ino, op.size);
      break;
    case Op::Kind::kMake:
      return CheckResult(c, op, err, model_.Make(op.ino, op.name, op.new_ino, op.is_dir),
                         "at the server");
    case Op::Kind::kRemove:
      return CheckResult(c, op, err, model_.Remove(op.ino, op.name, op.is_dir), "at the server");
    case Op::Kind::kRename:
      return CheckResult(c, op, err, model_.Rename(op.ino, op.name, op.dir2, op.name2, op.flags),
                         "at the server");
    case Op::Kind::kLink:
      // An inode without names the kernel holds no reference for may be gone first.
      if (gone_ok) return CheckResult(c, op, err, ENOENT, "at the server");
      return CheckResult(c, op, err, model_.Link(op.ino, op.dir2, op.name2), "at the server");
    default:
      return Fail("a read was applied");
  }
  CheckResult(c, op, err, gone_ok ? ENOENT : 0, "at the server");
}

// FuseOps after the server's reply to a change (its result was checked when
// the server gave it).
void World::CompleteChange(Client& c, const Op& op, Result<RpcReply>& reply) {
  if (!reply.ok()) return;
  ObjectCache& cache = c.core->cache();
  LockMode lock;
  switch (op.kind) {
    case Op::Kind::kMake: {
      Attr a = c.core->AbsorbAttr(*reply, &lock);
      cache.AddName(op.ino, op.name, a.ino);
      if (S_ISDIR(a.mode)) cache.SetDirectory(a.ino, {}, FsClient::OrderOf(*reply));
      if (op.is_dir && !c.dir.valid()) c.dir = a.ino;
      KernelSawChange(c, op, InodeId(), InodeId());
      return ReplyEntry(c, op.ino, op.name, a);
    }
    case Op::Kind::kRemove:
      c.core->Absorb(*reply);
      cache.RemoveName(op.ino, op.name);
      return KernelSawChange(c, op, op.src, InodeId());
    case Op::Kind::kRename: {
      c.core->Absorb(*reply);
      cache.NoteRenamed(op.ino, op.name, op.dir2, op.name2, op.flags & kRenameExchange,
                        op.know_moved ? &op.moved : nullptr, op.victim_state, op.victim);
      return KernelSawChange(c, op, op.src, op.dst);
    }
    case Op::Kind::kLink: {
      Attr a = c.core->AbsorbAttr(*reply, &lock);
      cache.AddName(op.dir2, op.name2, a.ino);
      KernelSawChange(c, op, op.ino, InodeId());
      return ReplyEntry(c, op.dir2, op.name2, a);
    }
    case Op::Kind::kTruncate: {
      Attr a = c.core->AbsorbAttr(*reply, &lock);
      TruncatePages(c.kernel, op.ino, op.size);
      return ReplyAttr(c, a);
    }
    default:
      return Fail("not a change");
  }
}

}  // namespace cohfs::sim
