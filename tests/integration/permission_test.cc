// The server decides permissions: a request is checked for the caller it
// names, whatever the client checked (or did not), and an inode number is
// served only to a caller that could reach it by a path. Refusals are shown
// twice: through a raw protocol peer that forges an unprivileged caller and
// guesses inode numbers, and through a real mount used by an unprivileged user.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "common/squash.h"
#include "tests/integration/cluster.h"
#include "tests/integration/protocol_peer.h"

namespace cohfs::test {
namespace {

const Caller kRootCaller{0, 0, {}, 0};
const Caller kUserCaller{1000, 1000, {}, 0};

// Root's tree, made through the mount: /secret (0700) holds inner (0644);
// /private (0600), /public (0644) and /tmp (1777) are in the root.
struct Tree {
  uint64_t secret = 0, inner = 0, priv = 0, pub = 0, tmp = 0;
};

uint64_t InoOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
  return st.st_ino;
}

Tree MakeTree(Cluster& c) {
  EXPECT_EQ(mkdir(c.Path("secret").c_str(), 0700), 0);
  WriteFile(c.Path("secret/inner"), "inner data", 0644);
  WriteFile(c.Path("private"), "root only", 0600);
  WriteFile(c.Path("public"), "public data", 0644);
  EXPECT_EQ(mkdir(c.Path("tmp").c_str(), 0777), 0);
  EXPECT_EQ(chmod(c.Path("tmp").c_str(), 01777), 0);
  return Tree{InoOf(c.Path("secret")), InoOf(c.Path("secret/inner")), InoOf(c.Path("private")),
              InoOf(c.Path("public")), InoOf(c.Path("tmp"))};
}

// Requests of the raw peer; each returns the reply's errno.
int GetAttr(ProtocolPeer& p, const Caller& c, uint64_t ino, Attr* out = nullptr) {
  return p.Call(
      c, [&](wire::Request::Builder r) { r.setGetAttr(ino); },
      [&](wire::Reply::Reader r, const std::string&) {
        if (out && r.isAttr()) *out = FromWire(r.getAttr());
      });
}

int Read(ProtocolPeer& p, const Caller& c, uint64_t ino, std::string* data = nullptr) {
  return p.Call(
      c,
      [&](wire::Request::Builder r) {
        r.initRead().setIno(ino);
        r.getRead().setLength(4096);
      },
      [&](wire::Reply::Reader, const std::string& bulk) {
        if (data) *data = bulk;
      });
}

int Write(ProtocolPeer& p, const Caller& c, uint64_t ino, const std::string& data) {
  return p.Call(
      c, [&](wire::Request::Builder r) { r.initWrite().setIno(ino); }, nullptr, data);
}

int SetAttr(ProtocolPeer& p, const Caller& c, uint64_t ino, const SetAttrRequest& req) {
  return p.Call(c, [&](wire::Request::Builder r) { ToWire(InodeId(ino), req, r.initSetAttr()); });
}

int Lookup(ProtocolPeer& p, const Caller& c, uint64_t parent, const std::string& name) {
  return p.Call(c, [&](wire::Request::Builder r) {
    r.initLookup().setParent(parent);
    r.getLookup().setName(AsData(name));
  });
}

int ReadDir(ProtocolPeer& p, const Caller& c, uint64_t ino) {
  return p.Call(c, [&](wire::Request::Builder r) {
    r.initReadDir().setIno(ino);
    r.getReadDir().setMaxEntries(16);
  });
}

int Mkdir(ProtocolPeer& p, const Caller& c, uint64_t parent, const std::string& name,
          uint64_t new_ino, Attr* out) {
  return p.Call(
      c,
      [&](wire::Request::Builder r) {
        auto m = r.initMkdir();
        m.setParent(parent);
        m.setName(AsData(name));
        m.setMode(0755);
        m.setNewIno(new_ino);
      },
      [&](wire::Reply::Reader r, const std::string&) {
        if (r.isAttr()) *out = FromWire(r.getAttr());
      });
}

// A chmod shipped as a change the client claims it made locally; returns the
// errno the commit reports for it (0: applied).
int CommitChmod(ProtocolPeer& p, const Caller& c, uint64_t ino, uint32_t mode) {
  int refused = 0;
  int err = p.Call(
      {},
      [&](wire::Request::Builder r) {
        auto op = r.initCommit(1)[0];
        ToWire(c, op.initCaller());
        ToWire(InodeId(ino), SetAttrRequest{kSetMode, mode}, op.initSetAttr());
      },
      [&](wire::Reply::Reader r, const std::string&) {
        for (auto f : r.getFailures()) refused = f.getErrno();
      });
  return err != 0 ? err : refused;
}

SetAttrRequest Truncation(bool open_handle) {
  SetAttrRequest req{kSetSize};
  req.has_open_handle = open_handle;
  return req;
}

// Restarts the server with `flags`, the mount gone (its cache would answer for it).
void RestartServerWith(Cluster& c, const std::string& flags) {
  c.Unmount();
  c.StopServer();
  c.set_serve_flags(flags);
  c.StartServer();
}

TEST(Permissions, TheServerRefusesAForgedUnprivilegedCaller) {
  Cluster c;
  Tree t = MakeTree(c);
  c.Unmount();
  ProtocolPeer p(c.port(), c.key_file());
  ASSERT_TRUE(p.Hello("forger"));
  // Below an unsearchable directory: not by name, not by a guessed number.
  EXPECT_EQ(Lookup(p, kUserCaller, t.secret, "inner"), EACCES);
  EXPECT_EQ(GetAttr(p, kUserCaller, t.inner), EACCES);
  EXPECT_EQ(Read(p, kUserCaller, t.inner), EACCES);
  EXPECT_EQ(Write(p, kUserCaller, t.inner, "mine"), EACCES);
  EXPECT_EQ(ReadDir(p, kUserCaller, t.secret), EACCES);
  // Reachable, but the mode says no.
  EXPECT_EQ(Read(p, kUserCaller, t.priv), EACCES);
  EXPECT_EQ(Write(p, kUserCaller, t.pub, "mine"), EACCES);
  EXPECT_EQ(SetAttr(p, kUserCaller, t.pub, Truncation(false)), EACCES);
  EXPECT_EQ(SetAttr(p, kUserCaller, t.pub, Truncation(true)), EACCES);  // "I have it open"
  EXPECT_EQ(SetAttr(p, kUserCaller, t.pub, SetAttrRequest{kSetMode, 04777}), EPERM);
  EXPECT_EQ(SetAttr(p, kUserCaller, t.pub, SetAttrRequest{kSetUid | kSetGid, 0, 1000, 1000}),
            EPERM);
  EXPECT_EQ(SetAttr(p, kUserCaller, t.pub, SetAttrRequest{kSetGid, 0, 0, 1000}), EPERM);
  EXPECT_EQ(CommitChmod(p, kUserCaller, t.priv, 04777), EPERM);
  // What the user may do, it may.
  std::string data;
  EXPECT_EQ(Read(p, kUserCaller, t.pub, &data), 0);
  EXPECT_EQ(data, "public data");
  EXPECT_EQ(GetAttr(p, kUserCaller, t.secret), 0);
  EXPECT_EQ(Read(p, kRootCaller, t.inner, &data), 0);
  EXPECT_EQ(data, "inner data");
  // Nothing changed.
  Attr pub, priv;
  ASSERT_EQ(GetAttr(p, kRootCaller, t.pub, &pub), 0);
  ASSERT_EQ(GetAttr(p, kRootCaller, t.priv, &priv), 0);
  EXPECT_EQ(pub.mode, S_IFREG | 0644u);
  EXPECT_EQ(pub.uid, 0u);
  EXPECT_EQ(pub.size, 11u);
  EXPECT_EQ(priv.mode, S_IFREG | 0600u);
}

TEST(Permissions, RootSquashMakesRootNobody) {
  Cluster c;
  Tree t = MakeTree(c);
  RestartServerWith(c, "--root-squash");
  ProtocolPeer p(c.port(), c.key_file());
  ASSERT_TRUE(p.Hello("squashed"));
  EXPECT_EQ(Read(p, kRootCaller, t.priv), EACCES);
  EXPECT_EQ(GetAttr(p, kRootCaller, t.inner), EACCES);
  EXPECT_EQ(Write(p, kRootCaller, t.pub, "mine"), EACCES);
  EXPECT_EQ(SetAttr(p, kRootCaller, t.pub, SetAttrRequest{kSetMode, 0777}), EPERM);
  std::string data;
  EXPECT_EQ(Read(p, kRootCaller, t.pub, &data), 0);
  EXPECT_EQ(data, "public data");
  Attr made;
  ASSERT_EQ(Mkdir(p, kRootCaller, t.tmp, "by-root", p.inodes_first(), &made), 0);
  EXPECT_EQ(made.uid, kNobodyUid);
  EXPECT_EQ(made.gid, kNogroupGid);
  // Other users stay who they are.
  ASSERT_EQ(Mkdir(p, kUserCaller, t.tmp, "by-user", p.inodes_first() + 1, &made), 0);
  EXPECT_EQ(made.uid, 1000u);
}

TEST(Permissions, AllSquashMakesEveryoneNobody) {
  Cluster c;
  Tree t = MakeTree(c);
  WriteFile(c.Path("tmp/users"), "user data", 0600);
  ASSERT_EQ(chown(c.Path("tmp/users").c_str(), 1000, 1000), 0);
  uint64_t users = InoOf(c.Path("tmp/users"));
  RestartServerWith(c, "--all-squash");
  ProtocolPeer p(c.port(), c.key_file());
  ASSERT_TRUE(p.Hello("squashed"));
  EXPECT_EQ(Read(p, kUserCaller, users), EACCES);  // its own file, but it is nobody now
  EXPECT_EQ(Read(p, kRootCaller, t.priv), EACCES);
  Attr made;
  ASSERT_EQ(Mkdir(p, kUserCaller, t.tmp, "by-user", p.inodes_first(), &made), 0);
  EXPECT_EQ(made.uid, kNobodyUid);
  EXPECT_EQ(made.gid, kNogroupGid);
}

// A root-squashed mount checks root as nobody itself, at once, rather than
// accepting a local change the server refuses later (a deferred error).
TEST(Permissions, ARootSquashedMountChecksRootAsNobodyItself) {
  Cluster c;
  MakeTree(c);
  RestartServerWith(c, "--root-squash");
  c.Mount();
  EXPECT_EQ(mkdir(c.Path("rootdir").c_str(), 0755), -1) << "root wrote in a root 0755 dir";
  EXPECT_EQ(errno, EACCES);
  int fd = open(c.Path("private").c_str(), O_RDONLY);
  EXPECT_EQ(fd, -1) << "root read a root 0600 file";
  if (fd >= 0) close(fd);
  // Made in a world-writable directory: nobody's, here and on the server.
  ASSERT_EQ(mkdir(c.Path("tmp/mine").c_str(), 0755), 0) << strerror(errno);
  struct stat st;
  ASSERT_EQ(stat(c.Path("tmp/mine").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, kNobodyUid);
  EXPECT_EQ(st.st_gid, kNogroupGid);
  c.Unmount();
  c.Mount();
  ASSERT_EQ(stat(c.Path("tmp/mine").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, kNobodyUid);
}

// The errno of `call` (0: it succeeded) in a child running as uid/gid 1000.
int AsUser(const std::function<bool()>& call) {
  return RunAs(1000, 1000, [&] { return call() ? 0 : errno; });
}

TEST(Permissions, AnUnprivilegedUserOfTheMountIsRefusedAsOnLinux) {
  Cluster c;
  MakeTree(c);
  std::string priv = c.Path("private"), pub = c.Path("public");
  struct stat st;
  EXPECT_EQ(AsUser([&] { return open(priv.c_str(), O_RDONLY) >= 0; }), EACCES);
  EXPECT_EQ(AsUser([&] { return stat(c.Path("secret/inner").c_str(), &st) == 0; }), EACCES);
  EXPECT_EQ(AsUser([&] { return open(c.Path("secret").c_str(), O_RDONLY) >= 0; }), EACCES);
  EXPECT_EQ(AsUser([&] { return open(pub.c_str(), O_WRONLY) >= 0; }), EACCES);
  EXPECT_EQ(AsUser([&] { return truncate(pub.c_str(), 0) == 0; }), EACCES);
  EXPECT_EQ(AsUser([&] { return chmod(pub.c_str(), 04777) == 0; }), EPERM);
  EXPECT_EQ(AsUser([&] { return chown(pub.c_str(), 1000, 1000) == 0; }), EPERM);
  EXPECT_EQ(AsUser([&] { return link(priv.c_str(), c.Path("tmp/l").c_str()) == 0; }), EPERM);
  EXPECT_EQ(AsUser([&] { return stat(pub.c_str(), &st) == 0; }), 0);
}

// Writes through an fd keep working when the mode no longer allows them (the
// server sees each write without the open: the owner may write its own file).
TEST(Permissions, AnOwnerWritesThroughItsFdWhateverTheMode) {
  Cluster c;
  MakeTree(c);
  std::string ro = c.Path("tmp/ro"), locked = c.Path("tmp/locked");
  EXPECT_EQ(AsUser([&] {
              int fd = open(ro.c_str(), O_CREAT | O_WRONLY, 0444);
              return fd >= 0 && write(fd, "created 0444", 12) == 12 && fsync(fd) == 0 &&
                     close(fd) == 0;
            }),
            0);
  EXPECT_EQ(AsUser([&] {
              int fd = open(locked.c_str(), O_CREAT | O_RDWR, 0644);
              return fd >= 0 && fchmod(fd, 0) == 0 && write(fd, "chmod 0", 7) == 7 &&
                     ftruncate(fd, 5) == 0 && fsync(fd) == 0 && close(fd) == 0;
            }),
            0);
  c.Unmount();  // what the server stored, not the client's cache
  c.Mount();
  auto content = [](const std::string& path) {
    char buf[32] = {};
    int fd = open(path.c_str(), O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf)) : -1;
    if (fd >= 0) close(fd);
    return n >= 0 ? std::string(buf, static_cast<size_t>(n)) : std::string("(unreadable)");
  };
  EXPECT_EQ(content(ro), "created 0444");
  EXPECT_EQ(content(locked), "chmod");
  struct stat st;
  ASSERT_EQ(stat(locked.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0u);
  EXPECT_EQ(st.st_uid, 1000u);
}

}  // namespace
}  // namespace cohfs::test
