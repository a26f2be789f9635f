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

// What `dir` holds: name -> content.
std::map<std::string, std::string> Listing(const std::string& dir) {
  std::map<std::string, std::string> out;
  DIR* d = opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") out[name] = Get(dir + "/" + name);
  }
  closedir(d);
  return out;
}

// One random change; `model` follows what succeeded. False on any error.
bool Step(std::mt19937& rng, const std::string& dir, std::map<std::string, std::string>& model) {
  std::string name = "f" + std::to_string(rng() % 40);
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
      std::string to = "f" + std::to_string(rng() % 40);
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

// The workload, in a child process: changes until `stop` exists, then checks
// the directory against its model. Exits 0 when every call succeeded and all
// of it is there. `*steps` (shared memory) counts the changes done.
pid_t StartWorkload(const std::string& dir, const std::string& stop, unsigned seed,
                    std::atomic<uint64_t>* steps) {
  pid_t pid = fork();
  if (pid != 0) return pid;
  std::mt19937 rng(seed);
  std::map<std::string, std::string> model;
  struct stat st;
  while (stat(stop.c_str(), &st) != 0) {
    if (!Step(rng, dir, model)) {
      std::fprintf(stderr, "workload step %llu: %s\n",
                   static_cast<unsigned long long>(steps->load()), strerror(errno));
      _exit(1);
    }
    steps->fetch_add(1);
  }
  if (Listing(dir) != model) {
    std::fprintf(stderr, "workload: the directory differs from what succeeded\n");
    _exit(2);
  }
  std::string dump;
  for (auto& [name, data] : model) dump += name + "\n" + std::to_string(data.size()) + "\n" + data;
  _exit(Put(stop + ".model", dump, O_TRUNC, true) ? 0 : 3);
}

int Iterations() {
  const char* v = std::getenv("COHFS_CRASH_LOOP");
  return v ? std::max(1, std::atoi(v)) : 4;
}

TEST(CrashLoop, ServerKilledAtRandomMomentsLosesNothingAcknowledged) {
  ClusterOptions o;
  o.serve_flags = "--lease 5";
  Cluster c(o);
  std::string dir = c.Path("w");
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
  std::string stop = c.dir() + "/stop";
  const char* given = std::getenv("COHFS_CRASH_SEED");
  unsigned seed = given ? static_cast<unsigned>(std::strtoul(given, nullptr, 10))
                        : static_cast<unsigned>(std::random_device{}());
  std::mt19937 rng(seed);
  SCOPED_TRACE("seed " + std::to_string(seed) + " (COHFS_CRASH_SEED)");
  void* shared = mmap(nullptr, sizeof(std::atomic<uint64_t>), PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(shared, MAP_FAILED);
  auto* steps = new (shared) std::atomic<uint64_t>(0);
  pid_t workload = StartWorkload(dir, stop, seed, steps);
  // A failed assertion must not leave the workload blocked on a dead mount.
  struct Reaper {
    pid_t pid;
    ~Reaper() {
      if (kill(pid, SIGKILL) == 0) waitpid(pid, nullptr, 0);
    }
  } reaper{workload};
  const int iterations = Iterations();
  for (int i = 0; i < iterations; i++) {
    SCOPED_TRACE("iteration " + std::to_string(i));
    // The mount is back and working: the workload moves again.
    uint64_t before = steps->load();
    ASSERT_TRUE(WaitFor([&] { return steps->load() >= before + 5; }, std::chrono::seconds(60)))
        << "the workload stalls after restart " << i;
    // Then a random moment of it (the length of a run is the test, not a wait).
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 400));
    c.KillServer();
    std::string out;
    ASSERT_EQ(c.Fsck(&out), 0) << out;
    c.StartServer();
    int status = 0;
    ASSERT_EQ(waitpid(workload, &status, WNOHANG), 0) << "the workload ended early: " << status;
  }
  ASSERT_TRUE(Put(stop, "", 0, false));
  int status = 0;
  bool done = WaitFor([&] { return waitpid(workload, &status, WNOHANG) == workload; },
                      std::chrono::seconds(120));
  if (!done) kill(workload, SIGKILL);
  ASSERT_TRUE(done) << "the workload hangs";
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "workload status " << status;
  std::string model = Get(stop + ".model");
  // Stored on the server: the same after a remount.
  c.Unmount();
  c.Mount();
  std::string dump;
  for (auto& [name, data] : Listing(dir)) {
    dump += name + "\n" + std::to_string(data.size()) + "\n" + data;
  }
  EXPECT_EQ(dump, model);
  std::fprintf(stderr, "crash loop: %d iterations, %llu changes, seed %u\n", iterations,
               static_cast<unsigned long long>(steps->load()), seed);
  munmap(shared, sizeof(std::atomic<uint64_t>));
}

}  // namespace
}  // namespace cohfs::test
