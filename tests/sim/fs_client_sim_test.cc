// Runs the simulation of the real client core against the real server (see
// sim_world.h) for many seeds. Seeds run in blocks of kSeedsPerVolume, one
// after another on one fresh volume per block (a fresh volume costs ~100 ms
// of syncs, a seed a few ms; a volume slows down as seeds churn its namespace).
// A failure names its seed. COHFS_SIM_SEEDS=N sets how many run;
// COHFS_SIM_SEED=N replays seed N exactly as the batch ran it: its block's
// seeds up to N again, on a fresh volume (the volume's history, inode
// numbers included, is part of a seed's input). COHFS_SIM_TRACE=1 prints
// every event as it happens (a failure prints only the last ones).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "server/file_system.h"
#include "storage/fsck.h"
#include "tests/sim/sim_world.h"
#include "tests/unit/storage/test_volume.h"

namespace cohfs::sim {
namespace {

constexpr int kSteps = 1000;
constexpr uint64_t kDefaultSeeds = 4000;
constexpr uint64_t kSeedsPerVolume = 100;

// One volume and the files every seed on it starts from.
class SeedVolume {
 public:
  SeedVolume() : tv_(64ull << 20), fs_(std::make_unique<FileSystem>(tv_.volume())) {
    MakeFixedFiles();
  }
  ~SeedVolume() {
    fs_.reset();
    auto report = Fsck(tv_.volume(), /*verify_checksums=*/true);
    EXPECT_TRUE(report.ok());
    if (report.ok()) {
      for (auto& p : report->problems) ADD_FAILURE() << "fsck: " << p;
    }
  }

  bool RunSeed(uint64_t seed) {
    SCOPED_TRACE("seed " + std::to_string(seed) +
                 " (replay: COHFS_SIM_SEED=" + std::to_string(seed) + ")");
    bool ok;
    {
      World world(*fs_, tv_.volume(), files_, seed);
      for (int i = 0; i < kSteps && !world.failed(); i++) {
        world.Step();
        if (!world.failed()) world.CheckInvariants();
      }
      if (!world.failed()) world.Drain();
      ok = !world.failed();
    }
    Reset();
    return ok && !::testing::Test::HasFailure();
  }

 private:
  // Back to the state every seed starts from: nothing in the root but three
  // new empty files (a seed may have renamed, linked or removed the old ones).
  void Reset() {
    RemoveTree(kRootInode);
    EXPECT_TRUE(fs_->ReclaimAllOrphans().ok());  // as a restarted server would
    MakeFixedFiles();
  }

  void RemoveTree(InodeId dir) {
    auto entries = fs_->ReadDir(Caller{}, dir, 0, 1000);
    ASSERT_TRUE(entries.ok());
    for (const DirEntry& e : *entries) {
      if (S_ISDIR(e.attr.mode)) {
        RemoveTree(e.attr.ino);
        EXPECT_TRUE(fs_->Rmdir(Caller{}, dir, e.name).ok());
      } else {
        EXPECT_TRUE(fs_->Unlink(Caller{}, dir, e.name).ok());
      }
    }
  }

  void MakeFixedFiles() {
    files_.clear();
    auto range = fs_->AllocateInodes(kFixedFiles);
    ASSERT_TRUE(range.ok());
    for (int i = 0; i < kFixedFiles; i++) {
      auto f = fs_->Mknod(Caller{}, kRootInode, "f" + std::to_string(i), S_IFREG, 0,
                          InodeId(range->first + i));
      ASSERT_TRUE(f.ok());
      files_.push_back(f->ino);
    }
  }

  test::TempVolume tv_;
  std::unique_ptr<FileSystem> fs_;
  std::vector<InodeId> files_;
};

// Runs seeds [first, last] on one fresh volume; false at the first failure.
bool RunBlock(uint64_t first, uint64_t last) {
  SeedVolume volume;
  for (uint64_t seed = first; seed <= last; seed++) {
    if (!volume.RunSeed(seed)) return false;
  }
  return true;
}

TEST(FsClientSim, SeedsKeepEveryInvariant) {
  if (const char* one = std::getenv("COHFS_SIM_SEED")) {
    uint64_t seed = std::strtoull(one, nullptr, 10);
    if (seed == 0) return;
    RunBlock((seed - 1) / kSeedsPerVolume * kSeedsPerVolume + 1, seed);
    return;
  }
  const char* count = std::getenv("COHFS_SIM_SEEDS");
  const uint64_t seeds = count ? std::strtoull(count, nullptr, 10) : kDefaultSeeds;
  for (uint64_t first = 1; first <= seeds; first += kSeedsPerVolume) {
    if (!RunBlock(first, std::min(seeds, first + kSeedsPerVolume - 1))) return;
  }
}

}  // namespace
}  // namespace cohfs::sim
