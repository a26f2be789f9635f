// The crash loop (issue 8): kill -9 of the server at random moments under a
// mixed workload, each time followed by fsck and a restart. The mount stays
// up throughout: its client reconnects, reclaims and resends, so every
// change the workload saw succeed, synced or not, must be there at the end.
// COHFS_CRASH_LOOP=N sets the iterations (default 4; the run is 100),
// COHFS_CRASH_SEED the workload's and the kill moments' seed.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <new>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/cluster.h"

namespace cohfs::test {
namespace {

bool Put(const std::string& path, const std::string& data, int flags, bool sync) {
  int fd = open(path.c_str(), O_CREAT | O_WRONLY | flags, 0644);
  if (fd < 0) return false;
  bool ok = write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
  if (sync) ok = fsync(fd) == 0 && ok;
  return close(fd) == 0 && ok;
}

std::string Get(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) return "<" + std::string(strerror(errno)) + ">";
  std::string out;
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  close(fd);
  return out;
}

// What `dir` holds of the names starting with `prefix`: name -> content.
std::map<std::string, std::string> Listing(const std::string& dir, const std::string& prefix) {
  std::map<std::string, std::string> out;
  DIR* d = opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name.rfind(prefix, 0) == 0) out[name] = Get(dir + "/" + name);
  }
  closedir(d);
  return out;
}

std::string Dump(const std::map<std::string, std::string>& files) {
  std::string dump;
  for (auto& [name, data] : files) dump += name + "\n" + std::to_string(data.size()) + "\n" + data;
  return dump;
}

// One random change to the names `prefix`0..39; `model` follows what
// succeeded. False on any error.
bool Step(std::mt19937& rng, const std::string& dir, const std::string& prefix,
          std::map<std::string, std::string>& model) {
  std::string name = prefix + std::to_string(rng() % 40);
  std::string path = dir + "/" + name;
  std::string data = std::to_string(rng()) + std::string(rng() % 9000, 'a' + rng() % 26);
  bool sync = rng() % 3 == 0;
  switch (rng() % 5) {
    case 0:  // create or overwrite
    case 1:
      if (!Put(path, data, O_TRUNC, sync)) return false;
      model[name] = data;
      return true;
    case 2:  // append
      if (!Put(path, data, O_APPEND, sync)) return false;
      model[name] += data;
      return true;
    case 3: {  // rename over another name
      if (model.count(name) == 0) return true;
      std::string to = prefix + std::to_string(rng() % 40);
      if (rename(path.c_str(), (dir + "/" + to).c_str()) != 0) return false;
      std::string moved = model[name];
      model.erase(name);
      model[to] = moved;
      return true;
    }
    default:  // unlink
      if (model.count(name) == 0) return true;
      if (unlink(path.c_str()) != 0) return false;
      model.erase(name);
      return true;
  }
}

// One workload: a child process that changes its names in `dir` (through
// its own mount) until `stop` exists, then checks them against its model
// and writes the model to `stop`.`prefix`. Exits 0 when every call
// succeeded and all of it is there. `steps` (shared memory) counts changes.
struct Workload {
  std::string dir, prefix;
  std::atomic<uint64_t>* steps = nullptr;
  pid_t pid = -1;

  void Start(const std::string& stop, unsigned seed) {
    pid = fork();
    if (pid != 0) return;
    std::mt19937 rng(seed);
    std::map<std::string, std::string> model;
    struct stat st;
    while (stat(stop.c_str(), &st) != 0) {
      if (!Step(rng, dir, prefix, model)) {
        std::fprintf(stderr, "workload %s step %llu: %s\n", prefix.c_str(),
                     static_cast<unsigned long long>(steps->load()), strerror(errno));
        _exit(1);
      }
      steps->fetch_add(1);
    }
    if (Listing(dir, prefix) != model) {
      std::fprintf(stderr, "workload %s: the directory differs from what succeeded\n",
                   prefix.c_str());
      _exit(2);
    }
    _exit(Put(stop + "." + prefix, Dump(model), O_TRUNC, true) ? 0 : 3);
  }
};

int Iterations() {
  const char* v = std::getenv("COHFS_CRASH_LOOP");
  return v ? std::max(1, std::atoi(v)) : 4;
}

// Stops the workloads and checks that what each saw succeed is stored: the
// same through every mount after remounting them all.
void StopAndCheck(Cluster& c, std::vector<Workload>& workloads,
                  const std::vector<std::string>& mounts, const std::string& stop) {
  ASSERT_TRUE(Put(stop, "", 0, false));
  for (Workload& w : workloads) {
    int status = 0;
    bool done = WaitFor([&] { return waitpid(w.pid, &status, WNOHANG) == w.pid; },
                        std::chrono::seconds(120));
    if (done) w.pid = -1;
    ASSERT_TRUE(done) << "workload " << w.prefix << " hangs";
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "workload " << w.prefix << " status " << status;
  }
  // Stored on the server: the same after a remount, through every mount.
  for (const std::string& m : mounts) c.Unmount(m);
  for (const std::string& m : mounts) c.Mount(m);
  for (Workload& w : workloads) {
    for (const std::string& m : mounts) {
      std::string dir = (m.empty() ? c.Path("") : m + "/") + w.dir.substr(w.dir.rfind('/') + 1);
      EXPECT_EQ(Dump(Listing(dir, w.prefix)), Get(stop + "." + w.prefix))
          << "workload " << w.prefix << " through " << (m.empty() ? "the first mount" : m);
    }
  }
}

// Kills the server at random moments while `workloads` run, each kill
// followed by fsck and a restart; then stops them and checks, also after
// remounting every mount, that everything they saw succeed is there.
void RunCrashLoop(Cluster& c, std::vector<Workload>& workloads,
                  const std::vector<std::string>& mounts) {
  std::string stop = c.dir() + "/stop";
  const char* given = std::getenv("COHFS_CRASH_SEED");
  unsigned seed = given ? static_cast<unsigned>(std::strtoul(given, nullptr, 10))
                        : static_cast<unsigned>(std::random_device{}());
  std::mt19937 rng(seed);
  SCOPED_TRACE("seed " + std::to_string(seed) + " (COHFS_CRASH_SEED)");
  const size_t bytes = sizeof(std::atomic<uint64_t>) * workloads.size();
  void* shared = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(shared, MAP_FAILED);
  auto total = [&] {
    uint64_t n = 0;
    for (Workload& w : workloads) n += w.steps->load();
    return n;
  };
  // A failed assertion must not leave a workload blocked on a dead mount.
  struct Reaper {
    std::vector<Workload>& w;
    ~Reaper() {
      for (Workload& one : w) {
        if (one.pid > 0 && kill(one.pid, SIGKILL) == 0) waitpid(one.pid, nullptr, 0);
      }
    }
  } reaper{workloads};
  for (size_t i = 0; i < workloads.size(); i++) {
    workloads[i].steps =
        new (static_cast<std::atomic<uint64_t>*>(shared) + i) std::atomic<uint64_t>(0);
    workloads[i].Start(stop, seed + static_cast<unsigned>(i));
  }
  const int iterations = Iterations();
  for (int i = 0; i < iterations; i++) {
    SCOPED_TRACE("iteration " + std::to_string(i));
    // The mounts are back and working: every workload moves again.
    std::vector<uint64_t> before;
    for (Workload& w : workloads) before.push_back(w.steps->load());
    auto all_moved = [&] {
      for (size_t k = 0; k < workloads.size(); k++) {
        if (workloads[k].steps->load() < before[k] + 5) return false;
      }
      return true;
    };
    ASSERT_TRUE(WaitFor(all_moved, std::chrono::seconds(60)))
        << "a workload stalls after restart " << i;
    // Then a random moment of it (the length of a run is the test, not a wait).
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 400));
    c.KillServer();
    std::string out;
    ASSERT_EQ(c.Fsck(&out), 0) << out;
    c.StartServer();
    for (Workload& w : workloads) {
      int status = 0;
      ASSERT_EQ(waitpid(w.pid, &status, WNOHANG), 0)
          << "workload " << w.prefix << " ended early: " << status;
    }
  }
  StopAndCheck(c, workloads, mounts, stop);
  if (::testing::Test::HasFatalFailure()) return;
  std::fprintf(stderr, "crash loop: %d iterations, %zu mounts, %llu changes, seed %u\n", iterations,
               mounts.size(), static_cast<unsigned long long>(total()), seed);
  munmap(shared, bytes);
}

TEST(CrashLoop, ServerKilledAtRandomMomentsLosesNothingAcknowledged) {
  ClusterOptions o;
  o.serve_flags = "--lease 5";
  Cluster c(o);
  std::string dir = c.Path("w");
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
  std::vector<Workload> workloads{{dir, "f"}};
  RunCrashLoop(c, workloads, {""});
}

// Two mounts change names of their own in one directory, so its lock (and
// its children's) moves between them all the time, across every crash.
TEST(CrashLoop, TwoMountsSharingADirectoryLoseNothingAcknowledged) {
  ClusterOptions o;
  o.serve_flags = "--lease 5";
  Cluster c(o);
  std::string b = c.dir() + "/b";
  c.Mount(b);
  ASSERT_EQ(mkdir(c.Path("w").c_str(), 0755), 0);
  std::vector<Workload> workloads{{c.Path("w"), "a"}, {b + "/w", "b"}};
  RunCrashLoop(c, workloads, {"", b});
}

}  // namespace
}  // namespace cohfs::test
