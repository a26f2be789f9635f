// Shared fixture for the Commit request tests: the real dispatcher and lock
// manager over a real volume (FsTest, fsck-checked after every test), with
// builders for the changes a client commits.
#pragma once

#include <capnp/message.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "protocol/codec.h"
#include "server/dispatch.h"
#include "server/lock_manager.h"
#include "tests/unit/server/fs_fixture.h"

namespace cohfs::test {

class CommitTest : public FsTest {
 protected:
  CommitTest() : dispatcher_(*fs_, locks_, tv_.volume(), ServerConfig{}) {
    auto reply = Open(&session_);
    EXPECT_TRUE(reply->root().isWelcome());
    first_ino_ = reply->root().getWelcome().getInodes().getFirst();
  }

  // A new session, as a hello (wanting `want_grant`) opens it; returns the welcome.
  std::unique_ptr<DecodedReply> Open(Session* s, uint64_t want_grant = 0) {
    auto fresh = dispatcher_.NewSession("test");
    EXPECT_TRUE(fresh.ok());
    *s = std::move(*fresh);
    capnp::MallocMessageBuilder m;
    InitHello(m.initRoot<wire::Request>(), "", want_grant);
    auto hello = Decode<DecodedRequest>(EncodeFrame(FrameKind::kRequest, RequestId(0), m));
    return Decode<DecodedReply>(dispatcher_.Welcome(*s, *hello, /*resumed=*/false));
  }

  // Encodes, frames, decodes and dispatches one request; decodes the reply.
  std::unique_ptr<DecodedReply> Roundtrip(capnp::MallocMessageBuilder& m) {
    auto request = Decode<DecodedRequest>(EncodeFrame(FrameKind::kRequest, RequestId(1), m));
    auto out = dispatcher_.Handle(session_, *request, 0);
    EXPECT_FALSE(out.needs_sync);
    return Decode<DecodedReply>(std::move(out.reply));
  }

  template <typename Decoded>
  std::unique_ptr<Decoded> Decode(const OutFrame& f) {
    auto decoded = Decoded::Decode(ThroughWire(f));
    EXPECT_TRUE(decoded.ok()) << decoded.status().ToString();
    return std::move(decoded).value();
  }

  // A file created through the dispatcher: born EXCLUSIVE to this client.
  InodeId CreateOwned(const std::string& name) {
    capnp::MallocMessageBuilder m;
    auto r = m.initRoot<wire::Request>();
    ToWire(kRoot, r.initCaller());
    auto mk = r.initMknod();
    mk.setParent(kRootInode.value);
    mk.setName(AsData(name));
    mk.setMode(S_IFREG | 0644);
    mk.setNewIno(first_ino_ + owned_++);
    auto reply = Roundtrip(m);
    EXPECT_EQ(reply->root().getErrno(), 0) << reply->root().getMessage().cStr();
    EXPECT_EQ(locks_.HeldBy(session_.client, InodeId(mk.getNewIno())), LockMode::kExclusive);
    return InodeId(mk.getNewIno());
  }

  // A commit of `n` changes under construction; each change sets its caller.
  struct CommitMessage {
    capnp::MallocMessageBuilder m;
    capnp::List<wire::Request>::Builder ops;
    explicit CommitMessage(unsigned n) {
      auto r = m.initRoot<wire::Request>();
      ToWire(kRoot, r.initCaller());
      ops = r.initCommit(n);
    }
  };
  static void SetMknod(wire::Request::Builder op, InodeId parent, const char* name, uint32_t mode,
                       uint64_t ino, int64_t now_ns = 0) {
    ToWire(kRoot, op.initCaller());
    auto mk = op.initMknod();
    mk.setParent(parent.value);
    mk.setName(AsData(name));
    mk.setMode(mode);
    mk.setNewIno(ino);
    mk.setNowNs(now_ns);
  }

  static void SetMkdir(wire::Request::Builder op, InodeId parent, const char* name, uint64_t ino,
                       int64_t now_ns = 0) {
    ToWire(kRoot, op.initCaller());
    auto m = op.initMkdir();
    m.setParent(parent.value);
    m.setName(AsData(name));
    m.setMode(0755);
    m.setNewIno(ino);
    m.setNowNs(now_ns);
  }
  static void SetSymlink(wire::Request::Builder op, InodeId parent, const char* name,
                         const char* target, uint64_t ino, int64_t now_ns = 0) {
    ToWire(kRoot, op.initCaller());
    auto m = op.initSymlink();
    m.setParent(parent.value);
    m.setName(AsData(name));
    m.setTarget(AsData(target));
    m.setNewIno(ino);
    m.setNowNs(now_ns);
  }
  static void SetLink(wire::Request::Builder op, InodeId ino, InodeId new_parent, const char* name,
                      int64_t now_ns = 0) {
    ToWire(kRoot, op.initCaller());
    auto m = op.initLink();
    m.setIno(ino.value);
    m.setNewParent(new_parent.value);
    m.setNewName(AsData(name));
    m.setNowNs(now_ns);
  }
  static void SetUnlink(wire::Request::Builder op, InodeId parent, const char* name,
                        int64_t now_ns = 0) {
    ToWire(kRoot, op.initCaller());
    auto m = op.initUnlink();
    m.setParent(parent.value);
    m.setName(AsData(name));
    m.setNowNs(now_ns);
  }
  static void SetRmdir(wire::Request::Builder op, InodeId parent, const char* name,
                       int64_t now_ns = 0) {
    ToWire(kRoot, op.initCaller());
    auto m = op.initRmdir();
    m.setParent(parent.value);
    m.setName(AsData(name));
    m.setNowNs(now_ns);
  }
  static void SetRename(wire::Request::Builder op, InodeId parent, const char* name,
                        InodeId new_parent, const char* new_name, uint32_t flags = 0,
                        int64_t now_ns = 0) {
    ToWire(kRoot, op.initCaller());
    auto m = op.initRename();
    m.setParent(parent.value);
    m.setName(AsData(name));
    m.setNewParent(new_parent.value);
    m.setNewName(AsData(new_name));
    m.setFlags(flags);
    m.setNowNs(now_ns);
  }
  static void SetXattr(wire::Request::Builder op, InodeId ino, const char* name, const char* value,
                       int64_t now_ns = 0) {
    ToWire(kRoot, op.initCaller());
    auto m = op.initSetXattr();
    m.setIno(ino.value);
    m.setName(AsData(name));
    m.setValue(AsData(value));
    m.setNowNs(now_ns);
  }
  static void SetRemoveXattr(wire::Request::Builder op, InodeId ino, const char* name,
                             int64_t now_ns = 0) {
    ToWire(kRoot, op.initCaller());
    auto m = op.initRemoveXattr();
    m.setIno(ino.value);
    m.setName(AsData(name));
    m.setNowNs(now_ns);
  }
  static void SetTruncate(wire::Request::Builder op, InodeId ino, uint64_t size,
                          int64_t now_ns = 0) {
    ToWire(kRoot, op.initCaller());
    SetAttrRequest req;
    req.mask = kSetSize;
    req.size = size;
    req.has_open_handle = true;
    req.now_ns = now_ns;
    ToWire(ino, req, op.initSetAttr());
  }

  // (index, errno) of each refused change, in reply order.
  static std::vector<std::pair<uint32_t, int>> Failures(const DecodedReply& reply) {
    std::vector<std::pair<uint32_t, int>> out;
    for (auto f : reply.root().getFailures()) out.emplace_back(f.getIndex(), f.getErrno());
    return out;
  }
  // Whether the reply's `changed` carries the attributes of `ino`.
  static bool Changed(const DecodedReply& reply, InodeId ino) {
    for (auto a : reply.root().getChanged()) {
      if (a.getIno() == ino.value) return true;
    }
    return false;
  }
  // The inode `name` names in `dir`, or an invalid one.
  InodeId Named(InodeId dir, const std::string& name) {
    auto a = fs_->Lookup(kRoot, dir, name);
    return a.ok() ? a->ino : InodeId();
  }
  // Gives the inode to another client (SHARED), in the way of every change to it.
  void OtherHolds(InodeId ino) {
    ASSERT_EQ(locks_.Acquire(kOtherClient, ino, LockMode::kShared), LockMode::kShared);
  }
  // A request answered outside a commit (release, ordinary changes).
  std::unique_ptr<DecodedReply> Send(const std::function<void(wire::Request::Builder)>& fill) {
    capnp::MallocMessageBuilder m;
    auto r = m.initRoot<wire::Request>();
    ToWire(kRoot, r.initCaller());
    fill(r);
    return Roundtrip(m);
  }
  uint64_t NextOwned() { return first_ino_ + owned_++; }
  static constexpr ClientId kOtherClient = ClientId(8);

  struct Op {
    Caller caller;
    InodeId ino;
    SetAttrRequest req;
  };
  std::unique_ptr<DecodedReply> Commit(const std::vector<Op>& ops) {
    CommitMessage c(static_cast<unsigned>(ops.size()));
    for (size_t i = 0; i < ops.size(); i++) {
      ToWire(ops[i].caller, c.ops[i].initCaller());
      ToWire(ops[i].ino, ops[i].req, c.ops[i].initSetAttr());
    }
    return Roundtrip(c.m);
  }

  static SetAttrRequest ChmodAt(uint32_t mode, int64_t now_ns) {
    SetAttrRequest req;
    req.mask = kSetMode;
    req.mode = mode;
    req.now_ns = now_ns;
    return req;
  }

  LockManager locks_;
  Dispatcher dispatcher_;
  Session session_;
  uint64_t first_ino_ = 0;
  uint64_t owned_ = 0;
};

}  // namespace cohfs::test
