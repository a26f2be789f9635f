// Helpers for the coherency tests (coherency*_test.cc): two or three mounts of one server,
// where what a call did on one mount must be what the others see right after it returns.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>

#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/cluster.h"

namespace cohfs::test {

std::string ErrName(int e);
// "ok" for a call that returned 0, else the name of its errno.
std::string Result(int rc);

std::string PreadAll(int fd);
// The file's content, or "<open: ENOENT>" and the like.
std::string ReadAll(const std::string& path);
void WriteAll(const std::string& path, const std::string& data, int flags = O_TRUNC);
// pwrite on `fd`, applied to `expected` too (growing it with zeros like a hole).
void Pwrite(int fd, const std::string& data, size_t off, std::string* expected);
std::string Pattern(size_t n, char first);
// Short data verbatim (escaped), long data by length and hash.
std::string Excerpt(const std::string& data);
// "" when equal, else sizes and where `seen` first differs from `expected`.
std::string DataDiff(const std::string& seen, const std::string& expected);
// Sorted names in `dir` (without . and ..); on failure none, and *error says why.
std::vector<std::string> List(const std::string& dir, std::string* error = nullptr);
// fsync of every file and directory under `path`.
void Settle(const std::string& path);

// Who made a scenario's objects, and whether the observer looked at them before the change.
enum class Situation {
  kLooked,        // made by the writer; the observer listed, stat'ed and read all of it
  kUnseen,        // made by the writer; the observer never looked
  kObserverMade,  // made (so held and cached) by the observer, which looked at it again
};
inline constexpr Situation kSituations[] = {Situation::kLooked, Situation::kUnseen,
                                            Situation::kObserverMade};
const char* SituationName(Situation s);

// Aborts the FUSE connection of every mount under `dir`, as `echo 1 > .../abort` does: the
// requests in flight fail, so a hung system call returns and the test can end and clean up.
int AbortFuseMounts(const std::string& dir);

// One step of a scenario, done in the scenario's directory.
using Step = std::function<void(const std::string& dir)>;

// A cluster with a second mount: a_ writes, b_ observes. A test still running after 180 s is
// reported as hung and its FUSE connections are aborted, so that it ends.
class Coherency : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // Runs each function in its own child process, all released at the same moment, and returns
  // what each returned. A child still running after 30 s is reported as hung (a hung system
  // call is a bug) and the cluster's FUSE connections are aborted; then the result is empty.
  std::vector<std::string> RunInParallel(const std::vector<std::function<std::string()>>& fns);

  struct Scenario {
    std::string name = "";
    std::vector<std::string> probes = {};  // names to look up besides listed ones (new, removed)
    Step setup = nullptr;   // on the writer, before; fsync'ed before anyone looks
    Step change = nullptr;  // on the writer: what is tested
    Step check = nullptr;   // on each observer, first thing after the change returned (optional)
  };

  // Runs each scenario in a directory of its own per situation. Right after the change returns
  // on the writer, each observer runs `check` and lists and stats everything, which must match
  // what the writer sees.
  void Run(const std::vector<Scenario>& scenarios, const std::vector<std::string>& observers);
  void Run(const std::vector<Scenario>& scenarios) { Run(scenarios, {b_}); }
  void Run(const Scenario& s) { Run(std::vector<Scenario>{s}); }

  // Makes the file Rel(s, name) holding `data` on the maker of each situation s.
  void MakeFiles(const std::string& name, const std::string& data);

  // The mount that makes the objects of a situation.
  std::string Maker(Situation s) const { return s == Situation::kObserverMade ? b_ : a_; }
  // Where a situation's object `name` lives, relative to a mount's root: w/ holds what the
  // writer made, o/ what the observer made.
  static std::string Rel(Situation s, const std::string& name);

  Cluster c;
  const std::string a_ = c.mnt();            // the writer
  const std::string b_ = c.dir() + "/mnt2";  // the observer

 private:
  void RunRound(const Scenario& s, Situation situation, const std::vector<std::string>& observers);

  std::thread watchdog_;
  std::mutex watchdog_mu_;
  std::condition_variable watchdog_cv_;
  bool test_done_ = false;  // guarded by watchdog_mu_
};

}  // namespace cohfs::test
