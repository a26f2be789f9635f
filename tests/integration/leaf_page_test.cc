// Leaves (server/dispatch.cc Dispatcher::Lookup): a lookup in a directory too
// large to come whole brings the entries that follow the name, so a cold stat
// of every file costs a round trip per page, not per file; small files'
// content rides along, so reading them costs none; and names and content
// known from a leaf follow another mount's changes as anything cached does.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "tests/integration/cluster.h"
#include "tests/integration/coherency.h"

namespace cohfs::test {
namespace {

constexpr int kFiles = 2000;  // ServerConfig::leaf_max_entries is 256
constexpr int kPage = 256;

std::string Name(int i) {
  char n[16];
  std::snprintf(n, sizeof(n), "f%05d", i);
  return n;
}

// Files of i % 97 bytes, made in order (their order in the directory).
void MakeManyFiles(const std::string& dir) {
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
  for (int i = 0; i < kFiles; i++) {
    WriteAll(dir + "/" + Name(i), std::string(static_cast<size_t>(i % 97), 'x'), O_EXCL);
  }
  Settle(dir);
}

TEST(LeafPages, ColdStatOfALargeDirectoryCostsARoundTripPerPage) {
  Cluster c;
  MakeManyFiles(c.Path("big"));
  c.Unmount();
  c.Mount();  // cold: nothing cached
  const uint64_t before = StatValue(c.Stats(), "round_trips");
  for (int i = 0; i < kFiles; i++) {
    struct stat st;
    ASSERT_EQ(lstat(c.Path("big/" + Name(i)).c_str(), &st), 0) << Name(i) << ": " << ErrName(errno);
    ASSERT_EQ(st.st_size, i % 97) << Name(i);
  }
  const uint64_t trips = StatValue(c.Stats(), "round_trips") - before;
  std::printf("cold stat of %d files in one directory: %lu round trips\n", kFiles,
              static_cast<unsigned long>(trips));
  // A page per 256 names, and a few for the path and the mount's own business.
  EXPECT_LE(trips, static_cast<uint64_t>(kFiles / kPage + 10));
  struct stat st;
  EXPECT_EQ(Result(lstat(c.Path("big/absent").c_str(), &st)), "ENOENT");
}

// 200 small files and a large one in src/, on a cold mount.
void MakeSmallFiles(Cluster& c) {
  ASSERT_EQ(mkdir(c.Path("src").c_str(), 0755), 0);
  for (int i = 0; i < 200; i++) WriteAll(c.Path("src/" + Name(i)), Pattern(100 + i * 20, 'a'));
  WriteAll(c.Path("src/large"), Pattern(100000, 'L'));  // past what rides along
  Settle(c.Path("src"));
  c.Unmount();
  c.Mount();
}

// As `find | xargs cat` does: readdir first, then each file.
TEST(LeafPages, ReadingSmallFilesAfterAListingCostsNoRoundTripEach) {
  Cluster c;
  MakeSmallFiles(c);
  const uint64_t before = StatValue(c.Stats(), "round_trips");
  EXPECT_EQ(List(c.Path("src")).size(), 201u);
  for (int i = 0; i < 200; i++) {
    ASSERT_EQ(ReadAll(c.Path("src/" + Name(i))), Pattern(100 + i * 20, 'a')) << Name(i);
  }
  const uint64_t trips = StatValue(c.Stats(), "round_trips") - before;
  std::printf("listing and reading 200 small files: %lu round trips\n",
              static_cast<unsigned long>(trips));
  EXPECT_LE(trips, 5u);
}

TEST(LeafPages, ColdReadOfSmallFilesCostsNoRoundTripEach) {
  Cluster c;
  MakeSmallFiles(c);
  const uint64_t before = StatValue(c.Stats(), "round_trips");
  for (int i = 0; i < 200; i++) {
    ASSERT_EQ(ReadAll(c.Path("src/" + Name(i))), Pattern(100 + i * 20, 'a')) << Name(i);
  }
  const uint64_t trips = StatValue(c.Stats(), "round_trips") - before;
  std::printf("cold read of 200 small files: %lu round trips\n", static_cast<unsigned long>(trips));
  EXPECT_LE(trips, 5u);
  EXPECT_EQ(ReadAll(c.Path("src/large")), Pattern(100000, 'L'));
}

// B reads small files from a leaf; A overwrites one (same size), truncates
// one and appends to one: B reads what A wrote, at once.
TEST_F(Coherency, ContentFromALeafFollowsTheOtherMount) {
  ASSERT_EQ(mkdir((a_ + "/src").c_str(), 0755), 0);
  for (int i = 0; i < 3; i++) WriteAll(a_ + "/src/" + Name(i), Pattern(1000, 'a'));
  Settle(a_ + "/src");
  c.Unmount(b_);
  c.Mount(b_);
  const std::string a = a_ + "/src/", b = b_ + "/src/";
  for (int i = 0; i < 3; i++) ASSERT_EQ(ReadAll(b + Name(i)), Pattern(1000, 'a'));
  WriteAll(a + Name(0), Pattern(1000, 'z'), 0);  // in place: the size stays
  ASSERT_EQ(Result(truncate((a + Name(1)).c_str(), 10)), "ok");
  WriteAll(a + Name(2), "tail", O_APPEND);
  EXPECT_EQ(ReadAll(b + Name(0)), Pattern(1000, 'z'));
  EXPECT_EQ(ReadAll(b + Name(1)), Pattern(1000, 'a').substr(0, 10));
  EXPECT_EQ(ReadAll(b + Name(2)), Pattern(1000, 'a') + "tail");
}

// B learns the names f00000.. from one page; A then renames, unlinks,
// replaces and grows files among them: B sees each change at once.
TEST_F(Coherency, NamesFromAPageFollowTheOtherMount) {
  MakeManyFiles(a_ + "/big");
  c.Unmount(b_);
  c.Mount(b_);
  struct stat st;
  ASSERT_EQ(lstat((b_ + "/big/" + Name(0)).c_str(), &st), 0);  // brings f00000..f00255
  ino_t replaced_ino = 0;
  ASSERT_EQ(lstat((b_ + "/big/" + Name(7)).c_str(), &st), 0);
  replaced_ino = st.st_ino;

  const std::string a = a_ + "/big/", b = b_ + "/big/";
  ASSERT_EQ(Result(rename((a + Name(5)).c_str(), (a + "moved").c_str())), "ok");
  ASSERT_EQ(Result(unlink((a + Name(6)).c_str())), "ok");
  ASSERT_EQ(Result(unlink((a + Name(7)).c_str())), "ok");
  WriteAll(a + Name(7), "a new file by the old name", O_EXCL);
  WriteAll(a + Name(8), std::string(5000, 'y'));

  EXPECT_EQ(Result(lstat((b + Name(5)).c_str(), &st)), "ENOENT");
  EXPECT_EQ(Result(lstat((b + "moved").c_str(), &st)), "ok");
  EXPECT_EQ(Result(lstat((b + Name(6)).c_str(), &st)), "ENOENT");
  ASSERT_EQ(Result(lstat((b + Name(7)).c_str(), &st)), "ok");
  EXPECT_NE(st.st_ino, replaced_ino);
  EXPECT_EQ(ReadAll(b + Name(7)), "a new file by the old name");
  ASSERT_EQ(Result(lstat((b + Name(8)).c_str(), &st)), "ok");
  EXPECT_EQ(st.st_size, 5000);
  ASSERT_EQ(Result(lstat((b + Name(200)).c_str(), &st)), "ok");
  EXPECT_EQ(st.st_size, 200 % 97);
}

}  // namespace
}  // namespace cohfs::test
