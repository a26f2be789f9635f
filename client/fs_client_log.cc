// FsClient's writeback log on the wire: the logged changes encoded into one
// commit, and what the server's reply to it says.
#include <sys/stat.h>

#include "client/fs_client.h"
#include "client/fs_client_internal.h"
#include "common/log.h"

namespace cohfs {

// A logged create: mkdir, symlink or mknod by the new inode's type.
static void EncodeCreate(const WritebackLog::Op& op, wire::Request::Builder out) {
  auto common = [&](auto m) {
    m.setParent(op.parent.value);
    m.setName(AsData(op.name));
    m.setNowNs(op.now_ns);
    m.setNewIno(op.ino.value);
  };
  if (S_ISDIR(op.mode)) {
    auto m = out.initMkdir();
    common(m);
    m.setMode(op.mode);
  } else if (S_ISLNK(op.mode)) {
    auto m = out.initSymlink();
    common(m);
    m.setTarget(AsData(op.target));
  } else {
    auto m = out.initMknod();
    common(m);
    m.setMode(op.mode);
    m.setRdev(op.rdev);
  }
}

// One logged change as the server applies it from a commit.
static void EncodeChange(const WritebackLog::Op& op, wire::Request::Builder out) {
  using Kind = WritebackLog::Op::Kind;
  ToWire(op.caller, out.initCaller());
  out.setWithNext(op.with_next);
  auto names = [&](auto b) {
    b.setParent(op.parent.value);
    b.setName(AsData(op.name));
    b.setNowNs(op.now_ns);
  };
  switch (op.kind) {
    case Kind::kSetAttr:
      ToWire(op.ino, op.setattr, out.initSetAttr());
      break;
    case Kind::kCreate:
      EncodeCreate(op, out);
      break;
    case Kind::kLink: {
      auto m = out.initLink();
      m.setIno(op.ino.value);
      m.setNewParent(op.new_parent.value);
      m.setNewName(AsData(op.new_name));
      m.setNowNs(op.now_ns);
      break;
    }
    case Kind::kUnlink:
      names(out.initUnlink());
      break;
    case Kind::kRmdir:
      names(out.initRmdir());
      break;
    case Kind::kRename: {
      auto m = out.initRename();
      names(m);
      m.setNewParent(op.new_parent.value);
      m.setNewName(AsData(op.new_name));
      m.setFlags(op.flags);
      break;
    }
    case Kind::kSetXattr: {
      auto m = out.initSetXattr();
      m.setIno(op.ino.value);
      m.setName(AsData(op.xattr));
      m.setValue(AsData(op.target));
      m.setFlags(static_cast<int32_t>(op.flags));
      m.setNowNs(op.now_ns);
      break;
    }
    case Kind::kRemoveXattr: {
      auto m = out.initRemoveXattr();
      m.setIno(op.ino.value);
      m.setName(AsData(op.xattr));
      m.setNowNs(op.now_ns);
      break;
    }
  }
}

uint64_t FsClient::ShipLogLocked() {
  if (log_.empty()) return log_.last_seq();
  std::vector<WritebackLog::Op> ops = log_.Drain();
  OwnRequest r;
  auto list = r.root.initCommit(static_cast<unsigned>(ops.size()));
  std::vector<std::vector<InodeId>> touched;
  touched.reserve(ops.size());
  for (size_t i = 0; i < ops.size(); i++) {
    EncodeChange(ops[i], list[static_cast<unsigned>(i)]);
    touched.push_back(std::move(ops[i].touched));
  }
  uint64_t seq = log_.last_seq();
  {
    std::lock_guard<std::mutex> l(flight_mu_);
    commits_in_flight_++;
  }
  rpc_.Post(r.message, [this, touched = std::move(touched), seq](Result<RpcReply> reply) {
    OnCommitted(touched, seq, std::move(reply));
  });
  return seq;
}

// Network thread (or a sender, when the connection is gone): record what the
// server refused, take its attributes, and drop what this client and its
// kernel believed of the inodes the refused changes touched.
void FsClient::OnCommitted(const std::vector<std::vector<InodeId>>& touched, uint64_t seq,
                           Result<RpcReply> reply) {
  {
    std::lock_guard<std::mutex> l(flight_mu_);
    commits_in_flight_--;
  }
  flight_cv_.notify_all();
  std::vector<std::pair<size_t, Status>> refused;  // (index in the commit, why)
  if (!reply.ok()) {
    for (size_t i = 0; i < touched.size(); i++) refused.emplace_back(i, reply.status());
  } else {
    reply->set_log_seq(seq);
    Absorb(*reply);
    auto root = reply->root();
    if (root.isFailures()) {
      for (auto f : root.getFailures()) {
        int err = f.getErrno() > 0 && f.getErrno() < 4096 ? f.getErrno() : EIO;
        if (f.getIndex() < touched.size())
          refused.emplace_back(f.getIndex(), Status::Error(err, f.getMessage().cStr()));
      }
    }
  }
  for (auto& [index, st] : refused) {
    for (InodeId ino : touched[index]) {
      LOG(Warn) << "server refused a change of inode " << ino.value
                << " made locally: " << st.ToString();
      errors_.Record(ino, st);
      Post(Task{ino, LockMode::kNone, Task::Kind::kInvalidate, cache_.ForgetDirectory(ino)});
    }
  }
}

}  // namespace cohfs
