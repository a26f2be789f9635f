// A random model check of coherency: 1,000 operations on a few files and two directories, each
// through a randomly chosen one of three mounts, compared with an in-memory model; right after
// each one, what it touched is also checked through another mount. COHFS_SEED=N repeats a run.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <iterator>
#include <numeric>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "tests/integration/coherency.h"

namespace cohfs::test {
namespace {

constexpr int kOps = 1000;

struct Node {
  bool dir = false;
  mode_t mode = 0;
  std::string data;
};
using Model = std::map<std::string, Node>;  // relative path ("d0", "d0/f1", "f2") -> node

enum class Kind { kPwrite, kAppend, kTruncate, kRead, kCreate, kUnlink, kRename, kMkdir, kRmdir,
                  kChmod, kStat };
constexpr const char* kKindNames[] = {"pwrite", "O_APPEND write", "ftruncate", "read", "create",
                                      "unlink", "rename", "mkdir", "rmdir", "chmod", "stat"};
constexpr int kKindWeights[] = {3, 2, 1, 3, 2, 1, 2, 1, 1, 1, 2};

struct Op {
  Kind kind = Kind::kStat;
  std::string path = "", to = "";  // `to`: where rename moves `path`
  size_t offset = 0;               // where pwrite writes; the size ftruncate sets
  std::string data = "";
  mode_t mode = 0;
};

std::string ToString(const Op& op) {
  std::string s = std::string(kKindNames[static_cast<int>(op.kind)]) + " " + op.path;
  if (op.kind == Kind::kRename) s += " -> " + op.to;
  if (op.kind == Kind::kPwrite) s += " at " + std::to_string(op.offset);
  if (op.kind == Kind::kTruncate) s += " to " + std::to_string(op.offset);
  if (!op.data.empty()) s += ", " + std::to_string(op.data.size()) + " bytes";
  if (op.kind == Kind::kChmod) {
    char mode[16];
    snprintf(mode, sizeof(mode), " %04o", op.mode);
    s += mode;
  }
  return s;
}

// What an operation gave back: "ok" or an errno name, and what it read.
struct Outcome {
  std::string err = "ok";
  std::string data = "";
};

class Random {
 public:
  explicit Random(uint64_t seed) : rng_(seed) {}
  size_t Below(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }
  std::string Letters(size_t n) {
    std::string s(n, ' ');
    for (auto& ch : s) ch = static_cast<char>('a' + Below(26));
    return s;
  }
  // Mostly a file that exists (most operations should do something), else any file name.
  std::string File(const Model& m) {
    std::vector<std::string> files;
    for (const auto& [path, node] : m) {
      if (!node.dir) files.push_back(path);
    }
    if (!files.empty() && Below(10) < 7) return files[Below(files.size())];
    static const char* kParents[] = {"", "d0/", "d1/"};
    return kParents[Below(3)] + std::string("f") + std::to_string(Below(4));
  }
  std::string Dir() { return Below(2) ? "d1" : "d0"; }

 private:
  std::mt19937_64 rng_;
};

Op RandomOp(Random& r, const Model& m) {
  Op op;
  size_t pick = r.Below(std::accumulate(std::begin(kKindWeights), std::end(kKindWeights), 0));
  int k = 0;
  while (pick >= static_cast<size_t>(kKindWeights[k])) pick -= kKindWeights[k++];
  op.kind = static_cast<Kind>(k);
  bool on_dir = op.kind == Kind::kMkdir || op.kind == Kind::kRmdir ||
                ((op.kind == Kind::kChmod || op.kind == Kind::kStat) && r.Below(4) == 0);
  op.path = on_dir ? r.Dir() : r.File(m);
  if (op.kind == Kind::kRename) op.to = r.File(m);
  if (op.kind == Kind::kChmod) {
    op.mode = (on_dir ? 0700 : 0600) | static_cast<mode_t>(r.Below(0100));
  }
  if (op.kind == Kind::kPwrite) op.offset = r.Below(8000), op.data = r.Letters(1 + r.Below(300));
  if (op.kind == Kind::kAppend) op.data = r.Letters(1 + r.Below(100));
  if (op.kind == Kind::kTruncate) op.offset = r.Below(9000);
  return op;
}

std::string Parent(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? "" : path.substr(0, slash);
}

bool ParentExists(const Model& m, const std::string& path) {
  return Parent(path).empty() || m.count(Parent(path));
}

std::string StatLine(bool dir, mode_t mode, size_t size) {
  char buf[64];
  snprintf(buf, sizeof(buf), "%s mode=%04o size=%zu", dir ? "dir" : "file", mode & 07777,
           dir ? 0 : size);
  return buf;
}

// What `op` must give, applied to the model.
Outcome Predict(Model& m, const Op& op, mode_t umask_bits) {
  auto it = m.find(op.path);
  bool exists = it != m.end();  // no path is in the model without its parent
  if (op.kind == Kind::kCreate || op.kind == Kind::kMkdir) {
    if (!ParentExists(m, op.path)) return {"ENOENT"};
    if (exists) return {"EEXIST"};
    bool dir = op.kind == Kind::kMkdir;
    m[op.path] = Node{dir, static_cast<mode_t>((dir ? 0755 : 0644) & ~umask_bits), ""};
    return {};
  }
  if (op.kind == Kind::kRename) {
    if (!exists || !ParentExists(m, op.to)) return {"ENOENT"};
    Node moved = it->second;
    m.erase(it);
    m[op.to] = moved;  // over any file there; a rename onto itself changes nothing
    return {};
  }
  if (!exists) return {"ENOENT"};
  Node& n = it->second;
  switch (op.kind) {
    case Kind::kPwrite:
      if (n.data.size() < op.offset + op.data.size()) n.data.resize(op.offset + op.data.size());
      n.data.replace(op.offset, op.data.size(), op.data);
      break;
    case Kind::kAppend: n.data += op.data; break;
    case Kind::kTruncate: n.data.resize(op.offset); break;
    case Kind::kRead: return {"ok", n.data};
    case Kind::kStat: return {"ok", StatLine(n.dir, n.mode, n.data.size())};
    case Kind::kChmod: n.mode = op.mode; break;
    case Kind::kRmdir:
      for (const auto& [path, node] : m) {
        if (Parent(path) == op.path) return {"ENOTEMPTY"};
      }
      [[fallthrough]];
    case Kind::kUnlink: m.erase(it); break;
    default: break;
  }
  return {};
}

Outcome Fail() { return {ErrName(errno)}; }

// Opens `path`, runs `fn` on the fd ("ok" or what failed) and closes it, which may fail too.
Outcome WithFd(const std::string& path, int flags, const std::function<std::string(int)>& fn) {
  int fd = open(path.c_str(), flags, 0644);
  if (fd < 0) return Fail();
  Outcome out{fn(fd)};
  if (close(fd) != 0 && out.err == "ok") out.err = "close: " + ErrName(errno);
  return out;
}

std::string Wrote(ssize_t n, size_t size) {
  if (n < 0) return "write: " + ErrName(errno);
  return n == static_cast<ssize_t>(size) ? "ok" : "short write of " + std::to_string(n);
}

// `op` done through the mount at `root`.
Outcome Perform(const std::string& root, const Op& op) {
  std::string p = root + "/" + op.path;
  auto rc = [](int r) { return r == 0 ? Outcome{} : Fail(); };
  switch (op.kind) {
    case Kind::kPwrite:
      return WithFd(p, O_WRONLY, [&](int fd) {
        return Wrote(pwrite(fd, op.data.data(), op.data.size(), static_cast<off_t>(op.offset)),
                     op.data.size());
      });
    case Kind::kAppend:
      return WithFd(p, O_WRONLY | O_APPEND, [&](int fd) {
        return Wrote(write(fd, op.data.data(), op.data.size()), op.data.size());
      });
    case Kind::kTruncate:
      return WithFd(p, O_WRONLY, [&](int fd) {
        return Result(ftruncate(fd, static_cast<off_t>(op.offset)));
      });
    case Kind::kRead: {
      std::string data;
      Outcome out = WithFd(p, O_RDONLY, [&](int fd) { return data = PreadAll(fd), "ok"; });
      out.data = data;
      return out;
    }
    case Kind::kCreate:
      return WithFd(p, O_CREAT | O_EXCL | O_WRONLY, [](int) { return "ok"; });
    case Kind::kUnlink: return rc(unlink(p.c_str()));
    case Kind::kRename: return rc(rename(p.c_str(), (root + "/" + op.to).c_str()));
    case Kind::kMkdir: return rc(mkdir(p.c_str(), 0755));
    case Kind::kRmdir: return rc(rmdir(p.c_str()));
    case Kind::kChmod: return rc(chmod(p.c_str(), op.mode));
    case Kind::kStat: {
      struct stat st;
      if (lstat(p.c_str(), &st) != 0) return Fail();
      return {"ok", StatLine(S_ISDIR(st.st_mode), st.st_mode, static_cast<size_t>(st.st_size))};
    }
  }
  return {"unknown operation"};
}

// "" if `path` through `root` is what the model says, else what differs.
std::string CheckPath(const Model& m, const std::string& root, const std::string& path) {
  auto it = m.find(path);
  Outcome seen = Perform(root, Op{.kind = Kind::kStat, .path = path});
  std::string expected =
      it == m.end() ? "ENOENT" : StatLine(it->second.dir, it->second.mode, it->second.data.size());
  std::string got = seen.err == "ok" ? seen.data : seen.err;
  if (got != expected) return path + ": lstat shows " + got + ", the model " + expected;
  if (it == m.end() || it->second.dir) return "";
  std::string diff = DataDiff(ReadAll(root + "/" + path), it->second.data);
  return diff.empty() ? "" : path + ": " + diff;
}

// "" if listing `dir` through `root` gives the model's names, else both.
std::string CheckListing(const Model& m, const std::string& root, const std::string& dir) {
  if (!dir.empty() && !m.count(dir)) return "";
  std::string expected, got, error;
  for (const auto& [path, node] : m) {
    if (Parent(path) == dir) expected += " " + path.substr(dir.empty() ? 0 : dir.size() + 1);
  }
  for (const auto& name : List(dir.empty() ? root : root + "/" + dir, &error)) got += " " + name;
  if (!error.empty()) got = error;
  return got == expected ? "" : "listing '" + dir + "' gives" + got + "; the model has" + expected;
}

uint64_t Seed() {
  const char* env = getenv("COHFS_SEED");
  if (env) return strtoull(env, nullptr, 0);
  return static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
}

TEST_F(Coherency, RandomOperationsMatchAModel) {
  std::string third = c.dir() + "/mnt3";
  c.Mount(third);
  ASSERT_EQ(Result(mkdir((a_ + "/model").c_str(), 0755)), "ok");  // before anyone else looks
  const std::vector<std::string> mounts = {a_ + "/model", b_ + "/model", third + "/model"};
  const uint64_t seed = Seed();
  std::printf("COHFS_SEED=%llu (set it to repeat this run)\n",
              static_cast<unsigned long long>(seed));
  RecordProperty("seed", std::to_string(seed));
  Random r(seed);
  mode_t umask_bits = umask(0);
  umask(umask_bits);
  Model model;
  std::deque<std::string> recent;  // for the failure message
  for (int i = 0; i < kOps; i++) {
    Op op = RandomOp(r, model);
    size_t on = r.Below(3), other = (on + 1 + r.Below(2)) % 3;
    recent.push_back("#" + std::to_string(i) + " " + ToString(op) + " through " + mounts[on]);
    if (recent.size() > 40) recent.pop_front();
    Outcome expected = Predict(model, op, umask_bits);
    Outcome got = Perform(mounts[on], op);
    std::string problem;
    if (got.err != expected.err) {
      problem = "returned " + got.err + ", the model says " + expected.err;
    }
    if (problem.empty() && got.data != expected.data) {
      problem = "gave back other data: " + DataDiff(got.data, expected.data);
    }
    // Then, at once, through another mount: the paths touched and their directories' listings.
    for (const std::string& path : {op.path, op.to}) {
      if (!problem.empty() || path.empty()) continue;
      problem = CheckPath(model, mounts[other], path);
      if (problem.empty()) problem = CheckListing(model, mounts[other], Parent(path));
      if (!problem.empty()) problem = "then through " + mounts[other] + ": " + problem;
    }
    if (!problem.empty()) {
      std::string history;
      for (const auto& line : recent) history += "  " + line + "\n";
      FAIL() << "COHFS_SEED=" << seed << ", operation #" << i << " (" << ToString(op)
             << " through " << mounts[on] << "): " << problem << "\nlast operations:\n"
             << history;
    }
  }
}

}  // namespace
}  // namespace cohfs::test
