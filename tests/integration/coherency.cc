// Helpers for the coherency tests; see coherency.h.
#include "tests/integration/coherency.h"

#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <sstream>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>

namespace cohfs::test {
namespace {

std::string Xattrs(const std::string& path) {
  char names[4096];
  ssize_t n = llistxattr(path.c_str(), names, sizeof(names));
  if (n < 0) return " xattrs: " + ErrName(errno);
  std::vector<std::string> list;
  for (ssize_t i = 0; i < n; i += static_cast<ssize_t>(strlen(names + i)) + 1) {
    list.push_back(names + i);
  }
  if (list.empty()) return "";
  std::sort(list.begin(), list.end());
  std::string out = " xattrs={";
  for (const auto& name : list) {
    char value[256];
    ssize_t len = lgetxattr(path.c_str(), name.c_str(), value, sizeof(value));
    out += name + "=" + (len < 0 ? ErrName(errno) : Excerpt(std::string(value, len))) + " ";
  }
  return out + "}";
}

// Everything stat, readlink, read and the xattr calls show about `path` (atime aside).
std::string Describe(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return "lstat: " + ErrName(errno);
  const char* type = S_ISREG(st.st_mode) ? "file" : S_ISDIR(st.st_mode) ? "dir"
                     : S_ISLNK(st.st_mode) ? "symlink" : "other";
  char buf[320];
  snprintf(buf, sizeof(buf), "%s mode=%04o ino=%llu nlink=%llu uid=%u gid=%u size=%lld "
           "mtime=%lld.%09ld ctime=%lld.%09ld", type, st.st_mode & 07777,
           (unsigned long long)st.st_ino, (unsigned long long)st.st_nlink, st.st_uid, st.st_gid,
           (long long)st.st_size, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
           (long long)st.st_ctim.tv_sec, st.st_ctim.tv_nsec);
  std::string out = buf;
  if (S_ISREG(st.st_mode)) out += " data=" + Excerpt(ReadAll(path));
  if (S_ISLNK(st.st_mode)) {
    char target[4096];
    ssize_t n = readlink(path.c_str(), target, sizeof(target));
    out += " target=" + (n < 0 ? ErrName(errno) : Excerpt(std::string(target, n)));
  }
  return out + Xattrs(path);
}

// What one mount shows of a tree: relative path -> how it was found and Describe().
using Snapshot = std::map<std::string, std::string>;

std::string Join(const std::string& dir, const std::string& name) {
  return dir.empty() ? name : dir + "/" + name;
}

// Lists `rel` and describes each entry, recursing into directories. An entry looked up
// before (so in *out already) keeps that description, plus this one if it differs: listing a
// directory must not be what makes a stale stat fresh.
void Walk(const std::string& root, const std::string& rel, Snapshot* out) {
  std::string error;
  std::vector<std::string> names = List(Join(root, rel), &error);
  if (!error.empty()) (*out)[Join(rel, "(listing)")] = error;
  for (size_t i = 0; i < names.size(); i++) {
    std::string path = Join(rel, names[i]);
    if (i > 0 && names[i] == names[i - 1]) {
      (*out)[path] += " (listed twice)";
      continue;
    }
    std::string desc = Describe(root + "/" + path);
    auto it = out->find(path);
    if (it == out->end()) {
      (*out)[path] = "listed, " + desc;
    } else {
      it->second = "listed, " + it->second + (it->second == desc ? "" : " [listed: " + desc + "]");
    }
    if (desc.rfind("dir ", 0) == 0) Walk(root, path, out);
  }
}

// Looks up the probes first, then lists the tree.
Snapshot Take(const std::string& root, const std::vector<std::string>& probes) {
  Snapshot s;
  s["."] = Describe(root);
  for (const auto& p : probes) s[p] = Describe(root + "/" + p);
  Walk(root, "", &s);
  for (auto& [path, desc] : s) {
    if (path != "." && desc.rfind("listed, ", 0) != 0 && path.find('(') == std::string::npos) {
      desc = "not listed, " + desc;
    }
  }
  return s;
}

std::string Diff(const Snapshot& seen, const Snapshot& expected, const std::string& observer) {
  std::set<std::string> keys;
  for (const auto& [k, v] : seen) keys.insert(k);
  for (const auto& [k, v] : expected) keys.insert(k);
  std::string out;
  for (const auto& k : keys) {
    auto s = seen.find(k), e = expected.find(k);
    std::string sv = s == seen.end() ? "(not there)" : s->second;
    std::string ev = e == expected.end() ? "(not there)" : e->second;
    if (sv != ev) {
      out += "  " + k + "\n    " + observer + " sees: " + sv + "\n    writer sees: " + ev + "\n";
    }
  }
  return out;
}

constexpr auto kChildDeadline = std::chrono::seconds(30);
constexpr auto kTestDeadline = std::chrono::seconds(180);

// Reads `fd` to its end; false if the deadline passed first.
bool ReadToEnd(int fd, std::chrono::steady_clock::time_point deadline, std::string* out) {
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd p{fd, POLLIN, 0};
    int r = poll(&p, 1, static_cast<int>(std::max<int64_t>(left.count(), 0)));
    if (r == 0) return false;
    if (r < 0 && errno == EINTR) continue;
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) return true;
    out->append(buf, static_cast<size_t>(n));
  }
}

// Waits up to 10 s for a killed child: one stuck in a FUSE request the daemon has taken
// cannot die until it is answered.
bool Reap(pid_t pid, int* status) {
  return WaitFor([&] { return waitpid(pid, status, WNOHANG) == pid; }, std::chrono::seconds(10));
}

}  // namespace

int AbortFuseMounts(const std::string& dir) {
  static const bool fusectl = mount("fusectl", "/sys/fs/fuse/connections", "fusectl", 0,
                                    nullptr) == 0;  // in this test's own mount namespace
  std::ifstream mounts("/proc/self/mountinfo");
  int aborted = 0;
  for (std::string line; std::getline(mounts, line);) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, point;
    fields >> id >> parent >> dev >> root >> point;
    size_t dash = line.find(" - ");
    if (point.rfind(dir + "/", 0) != 0 || dash == std::string::npos ||
        line.compare(dash + 3, 4, "fuse") != 0) {
      continue;
    }
    unsigned major = 0, minor = 0;
    if (sscanf(dev.c_str(), "%u:%u", &major, &minor) != 2) continue;
    std::ofstream abort("/sys/fs/fuse/connections/" + std::to_string(major << 20 | minor) +
                        "/abort");
    aborted += static_cast<bool>(abort << "1" << std::flush);
  }
  if (aborted == 0) {
    ADD_FAILURE() << "no FUSE connection aborted (fusectl mounted here: " << fusectl << ")";
  }
  return aborted;
}

std::string ErrName(int e) {
  const char* name = strerrorname_np(e);
  return name ? name : "errno " + std::to_string(e);
}

std::string Result(int rc) { return rc == 0 ? "ok" : ErrName(errno); }

std::string PreadAll(int fd) {
  std::string out;
  char buf[65536];
  ssize_t n;
  while ((n = pread(fd, buf, sizeof(buf), static_cast<off_t>(out.size()))) > 0) {
    out.append(buf, static_cast<size_t>(n));
  }
  return n < 0 ? "<read: " + ErrName(errno) + ">" : out;
}

std::string ReadAll(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) return "<open: " + ErrName(errno) + ">";
  std::string out = PreadAll(fd);
  close(fd);
  return out;
}

void WriteAll(const std::string& path, const std::string& data, int flags) {
  int fd = open(path.c_str(), O_CREAT | O_WRONLY | flags, 0644);
  ASSERT_GE(fd, 0) << path << ": " << ErrName(errno);
  EXPECT_EQ(write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size())) << path;
  EXPECT_EQ(close(fd), 0) << path << ": " << ErrName(errno);
}

void Pwrite(int fd, const std::string& data, size_t off, std::string* expected) {
  EXPECT_EQ(pwrite(fd, data.data(), data.size(), static_cast<off_t>(off)),
            static_cast<ssize_t>(data.size()));
  if (expected->size() < off + data.size()) expected->resize(off + data.size(), '\0');
  expected->replace(off, data.size(), data);
}

std::string Pattern(size_t n, char first) {
  std::string s(n, ' ');
  for (size_t i = 0; i < n; i++) s[i] = static_cast<char>('a' + (first - 'a' + i) % 26);
  return s;
}

std::string Excerpt(const std::string& d) {
  char buf[64];
  if (d.size() > 64) {
    snprintf(buf, sizeof(buf), "<%zu bytes, hash %016zx>", d.size(), std::hash<std::string>{}(d));
    return buf;
  }
  std::string out = "\"";
  for (unsigned char ch : d) {
    if (isprint(ch) && ch != '"' && ch != '\\') {
      out += static_cast<char>(ch);
    } else {
      snprintf(buf, sizeof(buf), "\\x%02x", ch);
      out += buf;
    }
  }
  return out + "\"";
}

std::string DataDiff(const std::string& seen, const std::string& expected) {
  if (seen == expected) return "";
  size_t at = std::mismatch(seen.begin(), seen.begin() + std::min(seen.size(), expected.size()),
                            expected.begin()).first - seen.begin();
  return "read " + std::to_string(seen.size()) + " bytes, expected " +
         std::to_string(expected.size()) + "; first difference at offset " + std::to_string(at) +
         ": saw " + Excerpt(seen.substr(at, 24)) + ", expected " + Excerpt(expected.substr(at, 24));
}

std::vector<std::string> List(const std::string& dir, std::string* error) {
  std::vector<std::string> names;
  DIR* d = opendir(dir.c_str());
  if (!d) {
    if (error) *error = "opendir: " + ErrName(errno);
    return names;
  }
  while (dirent* e = readdir(d)) {
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) names.push_back(e->d_name);
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

// fsync of everything under `path`: a scenario's setup is on the server before the change
// under test, so a failure points at the change, not at its preparation.
void Settle(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0 || !(S_ISDIR(st.st_mode) || S_ISREG(st.st_mode))) return;
  if (S_ISDIR(st.st_mode)) {
    for (const auto& name : List(path)) Settle(path + "/" + name);
  }
  int fd = open(path.c_str(), O_RDONLY);
  EXPECT_EQ(Result(fd < 0 ? -1 : fsync(fd)), "ok") << "fsync " << path;
  if (fd >= 0) close(fd);
}

const char* SituationName(Situation s) {
  switch (s) {
    case Situation::kLooked: return "made by the writer, the observer had looked at all of it";
    case Situation::kUnseen: return "made by the writer, the observer had not looked";
    case Situation::kObserverMade: return "made by the observer, which holds and caches it";
  }
  return "?";
}

std::string Coherency::Rel(Situation s, const std::string& name) {
  switch (s) {
    case Situation::kLooked: return "w/" + name + ".looked";
    case Situation::kUnseen: return "w/" + name + ".unseen";
    case Situation::kObserverMade: return "o/" + name + ".theirs";
  }
  return name;
}

void Coherency::SetUp() {
  watchdog_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(watchdog_mu_);
    if (watchdog_cv_.wait_for(lock, kTestDeadline, [this] { return test_done_; })) return;
    ADD_FAILURE() << "still running after " << kTestDeadline.count() << " s, a hung system "
                  << "call? Aborting the cluster's FUSE connections to end the test";
    AbortFuseMounts(c.dir());
  });
  // Each maker makes its objects in its own area, and each mount's first look at the other's
  // area comes after everything in it was made: the setup does not depend on coherency, and a
  // failure is about the change under test. The writer's remount drops its cache (and locks)
  // of the two areas it made; the observer has not looked at anything yet.
  ASSERT_EQ(Result(mkdir((a_ + "/w").c_str(), 0755)), "ok");
  ASSERT_EQ(Result(mkdir((a_ + "/o").c_str(), 0755)), "ok");
  c.Unmount(a_);
  c.Mount(a_);
  c.Mount(b_);
}

void Coherency::TearDown() {
  {
    std::lock_guard<std::mutex> lock(watchdog_mu_);
    test_done_ = true;
  }
  watchdog_cv_.notify_all();
  watchdog_.join();
}

std::vector<std::string> Coherency::RunInParallel(
    const std::vector<std::function<std::string()>>& fns) {
  int go[2];
  if (pipe(go) != 0) return {};
  std::vector<std::pair<pid_t, int>> children;
  for (const auto& fn : fns) {
    int out[2];
    if (pipe(out) != 0) break;
    pid_t pid = fork();
    if (pid == 0) {
      close(go[1]);
      close(out[0]);
      char ch;
      if (read(go[0], &ch, 1) < 0) _exit(3);  // end of file: the parent lets everyone go
      std::string r = fn();
      for (size_t done = 0; done < r.size();) {
        ssize_t n = write(out[1], r.data() + done, r.size() - done);
        if (n <= 0) _exit(2);
        done += static_cast<size_t>(n);
      }
      _exit(0);
    }
    close(out[1]);
    children.push_back({pid, out[0]});
  }
  close(go[0]);
  close(go[1]);
  auto deadline = std::chrono::steady_clock::now() + kChildDeadline;
  std::vector<std::string> results;
  bool hung = false;
  for (auto [pid, fd] : children) {
    std::string r;
    if (!ReadToEnd(fd, deadline, &r) && !hung) {
      hung = true;
      ADD_FAILURE() << "child " << pid << " still running after " << kChildDeadline.count()
                    << " s, a hung system call? Aborting the cluster's FUSE connections";
      AbortFuseMounts(c.dir());
    }
    close(fd);
    if (hung) kill(pid, SIGKILL);
    int status = 0;
    EXPECT_TRUE(Reap(pid, &status)) << "child " << pid << " does not end";
    EXPECT_TRUE(hung || (WIFEXITED(status) && WEXITSTATUS(status) == 0))
        << "child " << pid << " ended with status " << status;
    results.push_back(r);
  }
  return hung ? std::vector<std::string>() : results;
}

void Coherency::Run(const std::vector<Scenario>& scenarios,
                    const std::vector<std::string>& observers) {
  for (Situation situation : kSituations) {  // everything is made before anyone looks
    for (const auto& s : scenarios) {
      std::string dir = Maker(situation) + "/" + Rel(situation, s.name);
      EXPECT_EQ(Result(mkdir(dir.c_str(), 0755)), "ok") << dir;
      if (s.setup) s.setup(dir);
      Settle(dir);
    }
  }
  for (const auto& s : scenarios) {
    for (Situation situation : kSituations) RunRound(s, situation, observers);
  }
}

void Coherency::MakeFiles(const std::string& name, const std::string& data) {
  for (Situation s : kSituations) {
    std::string path = Maker(s) + "/" + Rel(s, name);
    WriteAll(path, data);
    Settle(path);
  }
}

// Failures (ASSERTs in the steps included) end a round, not the test: rounds are independent.
void Coherency::RunRound(const Scenario& s, Situation situation,
                         const std::vector<std::string>& observers) {
  SCOPED_TRACE(s.name + ": " + SituationName(situation));
  std::string sub = Rel(situation, s.name);
  std::string dir = a_ + "/" + sub;
  Snapshot before = Take(dir, s.probes);
  std::vector<std::string> probes = s.probes;  // removed names must be looked up too
  for (const auto& [k, v] : before) {
    if (k != "." && k.find('(') == std::string::npos) probes.push_back(k);
  }
  if (situation != Situation::kUnseen) {
    for (const auto& o : observers) {
      std::string d = Diff(Take(o + "/" + sub, probes), before, o);
      EXPECT_TRUE(d.empty()) << "before " << s.name << " (its setup fsync'ed on "
                             << Maker(situation) << "), " << o << " disagrees with the writer "
                             << a_ << ":\n" << d;
    }
  }
  s.change(dir);
  std::vector<Snapshot> seen;  // all observers first: nobody waits for anything
  for (const auto& o : observers) {
    if (s.check) s.check(o + "/" + sub);
    seen.push_back(Take(o + "/" + sub, probes));
  }
  Snapshot expected = Take(dir, probes);
  for (size_t i = 0; i < observers.size(); i++) {
    std::string d = Diff(seen[i], expected, observers[i]);
    EXPECT_TRUE(d.empty()) << "right after " << s.name << " returned on the writer " << a_ << ", "
                           << observers[i] << " disagrees with it:\n" << d;
  }
}

}  // namespace cohfs::test
