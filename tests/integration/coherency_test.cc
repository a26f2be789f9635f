// Coherency between clients (DESIGN §5): once a call returns on one mount, another mount sees
// its effect on its very next call, with no sleeping or polling in between, whether the other
// mount had looked at the object (so holds a lock the server must recall), had never looked at
// it, or had made it (so holds it EXCLUSIVE). Most checks compare what the observer sees with
// what the writer sees (the writer's own view is what the single-client suites test).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "tests/integration/coherency.h"

namespace cohfs::test {
namespace {

// A setup making each name: a directory if it ends in '/', else a small file.
Step Make(std::vector<std::string> names) {
  return [names](const std::string& d) {
    for (const auto& n : names) {
      if (n.back() == '/') {
        ASSERT_EQ(Result(mkdir((d + "/" + n).c_str(), 0755)), "ok") << n;
      } else {
        WriteAll(d + "/" + n, "content of " + n);
      }
    }
  };
}

TEST_F(Coherency, CreateIsSeenAtOnce) {
  // An empty file, created and closed: no write follows that would carry the create along.
  Run({{.name = "create-empty", .probes = {"f"}, .change = [](const std::string& d) {
          int fd = open((d + "/f").c_str(), O_CREAT | O_EXCL | O_WRONLY, 0640);
          ASSERT_GE(fd, 0) << ErrName(errno);
          ASSERT_EQ(Result(close(fd)), "ok");
        }},
       {.name = "create", .probes = {"f"},
        .change = [](const std::string& d) { WriteAll(d + "/f", "new", O_EXCL); }}});
}

TEST_F(Coherency, MkdirIsSeenAtOnce) {
  Run({.name = "mkdir", .probes = {"sub"}, .change = [](const std::string& d) {
         ASSERT_EQ(Result(mkdir((d + "/sub").c_str(), 0750)), "ok");
       }});
}

TEST_F(Coherency, SymlinkIsSeenAtOnce) {
  Run({.name = "symlink", .probes = {"l"}, .change = [](const std::string& d) {
         ASSERT_EQ(Result(symlink("some/target", (d + "/l").c_str())), "ok");
       }});
}

TEST_F(Coherency, HardLinkIsSeenAtOnce) {
  Run({.name = "link", .probes = {"g"}, .setup = Make({"f"}), .change = [](const std::string& d) {
         ASSERT_EQ(Result(link((d + "/f").c_str(), (d + "/g").c_str())), "ok");
       }});
}

TEST_F(Coherency, UnlinkIsSeenAtOnce) {
  Run({.name = "unlink",
       .setup =
           [](const std::string& d) {
             Make({"f", "h"})(d);
             ASSERT_EQ(Result(link((d + "/h").c_str(), (d + "/h2").c_str())), "ok");
           },
       .change =
           [](const std::string& d) {
             ASSERT_EQ(Result(unlink((d + "/f").c_str())), "ok");
             ASSERT_EQ(Result(unlink((d + "/h").c_str())), "ok");  // h2's nlink drops
           }});
}

TEST_F(Coherency, RmdirIsSeenAtOnce) {
  Run({.name = "rmdir",
       .setup = Make({"sub/"}),
       .change = [](const std::string& d) {
         ASSERT_EQ(Result(rmdir((d + "/sub").c_str())), "ok");
       }});
}

// rename(from, to) inside the scenario directory, as a change.
Step Rename(std::string from, std::string to, int flags = 0) {
  return [from, to, flags](const std::string& d) {
    ASSERT_EQ(Result(renameat2(AT_FDCWD, (d + "/" + from).c_str(), AT_FDCWD,
                               (d + "/" + to).c_str(), flags)), "ok")
        << from << " -> " << to;
  };
}

TEST_F(Coherency, RenameIsSeenAtOnce) {
  Run({{.name = "rename", .probes = {"g"}, .setup = Make({"f"}), .change = Rename("f", "g")},
       {.name = "rename-across", .probes = {"d2/f"},
        .setup = Make({"d1/", "d2/", "d1/f"}),
        .change = Rename("d1/f", "d2/f")},
       {.name = "rename-dir", .probes = {"p/moved", "p/moved/x"},
        .setup = Make({"dir/", "p/", "dir/x"}),
        .change = Rename("dir", "p/moved")}});
}

TEST_F(Coherency, RenameOverAVictimIsSeenAtOnce) {
  Run({{.name = "rename-over", .setup = Make({"f", "victim"}), .change = Rename("f", "victim")},
       {.name = "rename-over-dir",
        .setup = Make({"full/", "empty/", "full/x"}),
        .change = Rename("full", "empty")}});
}

TEST_F(Coherency, RenameNoreplaceSeesANameMadeElsewhere) {
  Run({.name = "noreplace", .probes = {"t"}, .setup = Make({"f"}),
       .change = [](const std::string& d) { WriteAll(d + "/t", "made by the writer", O_EXCL); },
       .check = [](const std::string& d) {
         EXPECT_EQ(Result(renameat2(AT_FDCWD, (d + "/f").c_str(), AT_FDCWD, (d + "/t").c_str(),
                                    RENAME_NOREPLACE)), "EEXIST")
             << "renameat2(f, t, RENAME_NOREPLACE) on the observer after the writer made t";
       }});
}

TEST_F(Coherency, RenameExchangeIsSeenAtOnce) {
  Run({.name = "exchange", .probes = {"f/x", "dd/x"},
       .setup = Make({"f", "dd/", "dd/x"}),
       .change = Rename("f", "dd", RENAME_EXCHANGE)});
}

TEST_F(Coherency, ModeAndOwnerChangesAreSeenAtOnce) {
  Step setup = Make({"f", "sub/"});
  Run({{.name = "chmod", .setup = setup, .change = [](const std::string& d) {
          ASSERT_EQ(Result(chmod((d + "/f").c_str(), 0640)), "ok");
          ASSERT_EQ(Result(chmod((d + "/sub").c_str(), 0700)), "ok");
        }},
       {.name = "chown", .setup = setup, .change = [](const std::string& d) {
          ASSERT_EQ(Result(chown((d + "/f").c_str(), 1000, 1001)), "ok");
          ASSERT_EQ(Result(chown((d + "/sub").c_str(), 1002, 1003)), "ok");
        }}});
}

TEST_F(Coherency, TimeChangesAreSeenAtOnce) {
  static constexpr timespec kTimes[2] = {{1'000'000'000 - 5, 7}, {1'000'000'000, 123}};
  Run({.name = "utimens", .setup = Make({"f"}),
       .change = [](const std::string& d) {
         ASSERT_EQ(Result(utimensat(AT_FDCWD, (d + "/f").c_str(), kTimes, 0)), "ok");
       },
       .check = [](const std::string& d) {  // atime is not in the snapshots
         struct stat st{};
         EXPECT_EQ(Result(stat((d + "/f").c_str(), &st)), "ok");
         EXPECT_EQ(st.st_atim.tv_sec, kTimes[0].tv_sec) << "atime seen by the observer";
         EXPECT_EQ(st.st_atim.tv_nsec, kTimes[0].tv_nsec) << "atime seen by the observer";
       }});
}

TEST_F(Coherency, TruncationIsSeenAtOnce) {
  auto truncate_to = [](off_t size) {
    return [size](const std::string& d) {
      ASSERT_EQ(Result(truncate((d + "/f").c_str(), size)), "ok");
    };
  };
  auto big = [](const std::string& d) { WriteAll(d + "/f", Pattern(10000, 'a')); };
  auto small = [](const std::string& d) { WriteAll(d + "/f", "0123456789"); };
  Run({{.name = "shrink", .setup = big, .change = truncate_to(3000)},
       {.name = "shrink-small", .setup = small, .change = truncate_to(4)},
       {.name = "grow", .setup = small, .change = truncate_to(40)}});
}

TEST_F(Coherency, XattrChangesAreSeenAtOnce) {
  Run({.name = "xattr",
       .setup = [](const std::string& d) {
         Make({"f"})(d);
         ASSERT_EQ(setxattr((d + "/f").c_str(), "user.keep", "1", 1, 0), 0);
         ASSERT_EQ(setxattr((d + "/f").c_str(), "user.gone", "2", 1, 0), 0);
       },
       .change = [](const std::string& d) {
         std::string f = d + "/f";
         ASSERT_EQ(Result(setxattr(f.c_str(), "user.new", "3", 1, XATTR_CREATE)), "ok");
         ASSERT_EQ(Result(setxattr(f.c_str(), "user.keep", "changed", 7, XATTR_REPLACE)), "ok");
         ASSERT_EQ(Result(removexattr(f.c_str(), "user.gone")), "ok");
       }});
}

TEST_F(Coherency, WrittenAndClosedDataIsReadOnTheOther) {
  const std::string old_data = Pattern(20000, 'a');
  MakeFiles("f", old_data);
  for (Situation s : kSituations) {
    SCOPED_TRACE(SituationName(s));
    std::string name = "/" + Rel(s, "f"), expected = old_data;
    if (s != Situation::kUnseen) {
      EXPECT_EQ(DataDiff(ReadAll(b_ + name), expected), "") << "the observer's first read";
    }
    int fd = open((a_ + name).c_str(), O_WRONLY);
    ASSERT_GE(fd, 0) << ErrName(errno);
    Pwrite(fd, "NEW BYTES", 5000, &expected);
    Pwrite(fd, "TAIL", 20100, &expected);  // past the end, leaving a hole
    ASSERT_EQ(Result(close(fd)), "ok");
    EXPECT_EQ(DataDiff(ReadAll(b_ + name), expected), "")
        << "the observer's read right after the writer's close returned";
  }
}

TEST_F(Coherency, AFileOpenOnTheOtherSeesNewData) {
  const std::string old_data = Pattern(20000, 'k');
  MakeFiles("f", old_data);
  for (Situation s : {Situation::kLooked, Situation::kObserverMade}) {
    SCOPED_TRACE(SituationName(s));
    std::string name = "/" + Rel(s, "f"), expected = old_data;
    int b = open((b_ + name).c_str(), O_RDONLY);
    ASSERT_GE(b, 0) << ErrName(errno);
    EXPECT_EQ(DataDiff(PreadAll(b), expected), "") << "the observer's first read";  // cached now
    int a = open((a_ + name).c_str(), O_WRONLY);
    ASSERT_GE(a, 0) << ErrName(errno);
    Pwrite(a, "CHANGED", 100, &expected);
    Pwrite(a, "MORE", 20000, &expected);
    ASSERT_EQ(Result(close(a)), "ok");
    EXPECT_EQ(DataDiff(PreadAll(b), expected), "")
        << "pread through the fd the observer opened and read before the writer's write";
    struct stat st{};
    EXPECT_EQ(fstat(b, &st), 0);
    EXPECT_EQ(st.st_size, static_cast<off_t>(expected.size())) << "fstat on the observer's fd";
    close(b);
  }
}

TEST_F(Coherency, DataWrittenWithoutCloseIsVisible) {
  const std::string old_data = Pattern(9000, 'q');
  MakeFiles("f", old_data);
  for (Situation s : kSituations) {
    SCOPED_TRACE(SituationName(s));
    std::string name = "/" + Rel(s, "f"), expected = old_data;
    if (s != Situation::kUnseen) {
      EXPECT_EQ(DataDiff(ReadAll(b_ + name), expected), "") << "the observer's first read";
    }
    int fd = open((a_ + name).c_str(), O_RDWR);
    ASSERT_GE(fd, 0) << ErrName(errno);
    Pwrite(fd, "NOT CLOSED", 4000, &expected);
    EXPECT_EQ(DataDiff(ReadAll(b_ + name), expected), "")
        << "the writer's pwrite returned (its fd still open)";
    Pwrite(fd, "GROWS", 9010, &expected);  // the observer has it cached now
    EXPECT_EQ(DataDiff(ReadAll(b_ + name), expected), "")
        << "a second pwrite, extending the file, returned on the writer (its fd still open)";
    EXPECT_EQ(Result(close(fd)), "ok");
  }
}

// POSIX keeps an unlinked file's data while someone has it open, also when the unlink came
// through another mount (the recall takes the lock, not the open file).
TEST_F(Coherency, AFileOpenOnOneMountOutlivesItsUnlinkOnTheOther) {
  WriteAll(a_ + "/doomed", "still here");
  Settle(a_ + "/doomed");
  int fd = open((a_ + "/doomed").c_str(), O_RDWR);
  ASSERT_GE(fd, 0) << ErrName(errno);
  EXPECT_EQ(PreadAll(fd), "still here");
  ASSERT_EQ(Result(unlink((b_ + "/doomed").c_str())), "ok");
  struct stat st{};
  EXPECT_NE(stat((a_ + "/doomed").c_str(), &st), 0) << "the name is gone on the first mount too";
  EXPECT_EQ(PreadAll(fd), "still here") << "read through the fd opened before the unlink";
  ASSERT_EQ(pwrite(fd, "STILL", 5, 0), 5) << ErrName(errno);
  EXPECT_EQ(PreadAll(fd), "STILL here") << "written and read back through that fd";
  EXPECT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(st.st_nlink, 0u);
  close(fd);
}

// MAP_SHARED both ways: what one mount's mapping stores and msyncs is read on the other, and
// a mapping the other holds shows a write made elsewhere (its pages are dropped by the recall).
TEST_F(Coherency, SharedMappingsSeeTheOtherMountsWritesAfterMsync) {
  constexpr size_t kBytes = 3 * 4096;
  WriteAll(a_ + "/mapped", std::string(kBytes, '.'));
  Settle(a_ + "/mapped");
  int fa = open((a_ + "/mapped").c_str(), O_RDWR), fb = open((b_ + "/mapped").c_str(), O_RDWR);
  ASSERT_GE(fa, 0) << ErrName(errno);
  ASSERT_GE(fb, 0) << ErrName(errno);
  auto* ma = static_cast<char*>(mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fa, 0));
  auto* mb = static_cast<char*>(mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fb, 0));
  ASSERT_NE(ma, MAP_FAILED) << ErrName(errno);
  ASSERT_NE(mb, MAP_FAILED) << ErrName(errno);
  EXPECT_EQ(mb[5000], '.');  // B's mapping has the page now
  std::memcpy(ma + 4990, "MAPPED BY A", 11);
  ASSERT_EQ(msync(ma, kBytes, MS_SYNC), 0) << ErrName(errno);
  EXPECT_EQ(std::string(mb + 4990, 11), "MAPPED BY A") << "B's mapping after A's msync";
  std::string expected(kBytes, '.');
  expected.replace(4990, 11, "MAPPED BY A");
  EXPECT_EQ(DataDiff(ReadAll(b_ + "/mapped"), expected), "") << "read through B after A's msync";
  std::memcpy(mb + 100, "AND BY B", 8);
  ASSERT_EQ(msync(mb, kBytes, MS_SYNC), 0) << ErrName(errno);
  EXPECT_EQ(std::string(ma + 100, 8), "AND BY B") << "A's mapping after B's msync";
  munmap(ma, kBytes);
  munmap(mb, kBytes);
  close(fa);
  close(fb);
}

constexpr size_t kLineBytes = 32;
constexpr int kLinesEach = 1000;

std::string Line(char who, int n) {
  char head[16];
  snprintf(head, sizeof(head), "%c %04d ", who, n);
  std::string line = head;
  line.resize(kLineBytes - 1, who == 'A' ? 'a' : 'b');
  return line + "\n";
}

std::string AppendLines(const std::string& path, char who) {
  int fd = open(path.c_str(), O_WRONLY | O_APPEND);
  if (fd < 0) return std::string(1, who) + ": open: " + ErrName(errno);
  for (int i = 0; i < kLinesEach; i++) {
    std::string line = Line(who, i);
    ssize_t n = write(fd, line.data(), line.size());
    if (n != static_cast<ssize_t>(line.size())) {
      close(fd);
      return std::string(1, who) + ": write #" + std::to_string(i) + ": " +
             (n < 0 ? ErrName(errno) : "short, " + std::to_string(n));
    }
  }
  return close(fd) == 0 ? "" : std::string(1, who) + ": close: " + ErrName(errno);
}

// What is wrong with `data` as both writers' lines, each exactly once and in its writer's
// order ("" if nothing).
std::string CheckLines(const std::string& data) {
  std::string problems;
  if (data.size() != 2 * kLinesEach * kLineBytes) {
    problems += "size " + std::to_string(data.size()) + ", expected " +
                std::to_string(2 * kLinesEach * kLineBytes) + "\n";
  }
  std::map<std::string, int> count;
  int last[2] = {-1, -1}, reported = 0;
  for (size_t off = 0; off + kLineBytes <= data.size(); off += kLineBytes) {
    std::string line = data.substr(off, kLineBytes);
    char who = line[0];
    int n = atoi(line.c_str() + 2);
    bool intact = (who == 'A' || who == 'B') && line == Line(who, n);
    if (!intact || n <= last[who - 'A']) {
      if (reported++ < 5) {
        problems += (intact ? "out of order at offset " : "torn line at offset ") +
                    std::to_string(off) + ": " + Excerpt(line) + "\n";
      }
      if (!intact) continue;
    }
    last[who - 'A'] = n;
    count[line]++;
  }
  for (char who : {'A', 'B'}) {
    int missing = 0, doubled = 0;
    for (int i = 0; i < kLinesEach; i++) {
      int k = count[Line(who, i)];
      missing += k == 0;
      doubled += k > 1;
    }
    if (missing || doubled) {
      problems += std::string("of ") + who + "'s " + std::to_string(kLinesEach) + " lines " +
                  std::to_string(missing) + " are missing, " + std::to_string(doubled) +
                  " there more than once\n";
    }
  }
  if (reported) problems += std::to_string(reported) + " lines torn or out of order\n";
  return problems;
}

TEST_F(Coherency, AppendsFromTwoMountsAllLand) {
  WriteAll(a_ + "/log", "");
  Settle(a_ + "/log");
  auto results = RunInParallel({[&] { return AppendLines(a_ + "/log", 'A'); },
                                [&] { return AppendLines(b_ + "/log", 'B'); }});
  ASSERT_EQ(results.size(), 2u) << "the appending processes hung";
  for (const auto& r : results) EXPECT_EQ(r, "") << "an appending process failed";
  std::string data = ReadAll(a_ + "/log");
  EXPECT_EQ(CheckLines(data), "") << "the file as read through " << a_ << " (A appended through "
                                   << a_ << ", B through " << b_ << ")";
  EXPECT_EQ(DataDiff(ReadAll(b_ + "/log"), data), "") << "the file through " << b_;
}

// Writes block i of every `stride` blocks, starting at `first`, `rounds` times over, each
// block filled with `who`; "" or what failed.
std::string WriteBlocks(const std::string& path, char who, int first, int stride, int rounds) {
  constexpr size_t kBlock = 4096;
  int fd = open(path.c_str(), O_WRONLY);
  if (fd < 0) return "open: " + ErrName(errno);
  std::string block(kBlock, who);
  for (int r = 0; r < rounds; r++) {
    for (int i = first; i < 64; i += stride) {
      if (pwrite(fd, block.data(), kBlock, static_cast<off_t>(i * kBlock)) != kBlock) {
        std::string e = "pwrite: " + ErrName(errno);
        close(fd);
        return e;
      }
    }
  }
  return close(fd) == 0 ? "" : "close: " + ErrName(errno);
}

// Two mounts writing one file through the page cache at once: each write needs the file the
// other holds, and neither may wait on the kernel's pages the other's write keeps locked.
TEST_F(Coherency, ConcurrentWritesToOneFileFromTwoMountsAllLand) {
  WriteAll(a_ + "/shared", std::string(64 * 4096, '.'));
  Settle(a_ + "/shared");
  ASSERT_EQ(ReadAll(b_ + "/shared").size(), 64u * 4096);  // both hold it now
  auto results = RunInParallel({[&] { return WriteBlocks(a_ + "/shared", 'A', 0, 2, 20); },
                                [&] { return WriteBlocks(b_ + "/shared", 'B', 1, 2, 20); }});
  ASSERT_EQ(results.size(), 2u) << "the writing processes hung";
  for (const auto& r : results) EXPECT_EQ(r, "") << "a writing process failed";
  std::string expected;
  for (int i = 0; i < 64; i++) expected += std::string(4096, i % 2 ? 'B' : 'A');
  EXPECT_EQ(DataDiff(ReadAll(a_ + "/shared"), expected), "") << "through " << a_;
  EXPECT_EQ(DataDiff(ReadAll(b_ + "/shared"), expected), "") << "through " << b_;
}

constexpr int kRaceNames = 200;

// Creates every name with O_EXCL: one letter per name, W (won: wrote `who` into it), L (lost:
// EEXIST) or E (anything else; the errors follow the letters).
std::string CreateRace(const std::string& dir, char who) {
  std::string letters, errors;
  for (int i = 0; i < kRaceNames; i++) {
    std::string path = dir + "/n" + std::to_string(i);
    int fd = open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
    if (fd < 0 && errno == EEXIST) {
      letters += 'L';
      continue;
    }
    std::string error = fd < 0 ? "open: " + ErrName(errno) : "";
    if (fd >= 0 && write(fd, &who, 1) != 1) error = "write: " + ErrName(errno);
    if (fd >= 0 && close(fd) != 0) error = "close: " + ErrName(errno);
    letters += error.empty() ? 'W' : 'E';
    if (!error.empty()) errors += " n" + std::to_string(i) + " " + error;
  }
  return letters + errors;
}

// What is wrong with the outcome of a race in `rel` (letters as CreateRace returns them).
std::string CheckRace(const std::string& a, const std::string& b, const std::string& rel,
                      const std::string& by_a, const std::string& by_b) {
  std::string problems;
  int wins = 0, bad = 0;
  for (int i = 0; i < kRaceNames; i++) {
    int winners = (by_a[i] == 'W') + (by_b[i] == 'W');
    wins += winners;
    std::string name = "/" + rel + "/n" + std::to_string(i);
    std::string winner = winners != 1 ? "" : by_a[i] == 'W' ? "A" : "B";
    std::string through_a = ReadAll(a + name), through_b = ReadAll(b + name);
    if ((winners != 1 || through_a != winner || through_b != winner) && bad++ < 10) {
      problems += name + ": " + std::to_string(winners) + " winners (A: " + by_a[i] + ", B: " +
                  by_b[i] + "), content through A " + Excerpt(through_a) + ", through B " +
                  Excerpt(through_b) + "\n";
    }
  }
  if (bad) problems += std::to_string(bad) + " names with something wrong (first 10 above)\n";
  if (wins != kRaceNames) problems += std::to_string(wins) + " winners in all\n";
  for (const auto& root : {a, b}) {
    size_t n = List(root + "/" + rel).size();
    if (n != kRaceNames) problems += root + " lists " + std::to_string(n) + " names\n";
  }
  return problems;
}

TEST_F(Coherency, ExclusiveCreateRaceHasOneWinnerPerName) {
  // In a directory each side made (so holds, and may create in from its cache).
  ASSERT_EQ(Result(mkdir((a_ + "/w/race").c_str(), 0755)), "ok");
  ASSERT_EQ(Result(mkdir((b_ + "/o/race").c_str(), 0755)), "ok");
  for (const std::string rel : {"w/race", "o/race"}) {
    SCOPED_TRACE("in " + rel + ", A creating through " + a_ + ", B through " + b_);
    auto r = RunInParallel({[&] { return CreateRace(a_ + "/" + rel, 'A'); },
                            [&] { return CreateRace(b_ + "/" + rel, 'B'); }});
    ASSERT_EQ(r.size(), 2u) << "the creating processes hung";
    ASSERT_GE(r[0].size(), size_t{kRaceNames});
    ASSERT_GE(r[1].size(), size_t{kRaceNames});
    EXPECT_EQ(r[0].substr(kRaceNames), "") << "errors through A";
    EXPECT_EQ(r[1].substr(kRaceNames), "") << "errors through B";
    EXPECT_EQ(CheckRace(a_, b_, rel, r[0], r[1]), "");
    std::printf("%s: A won %td names, B %td\n", rel.c_str(),
                std::count(r[0].begin(), r[0].begin() + kRaceNames, 'W'),
                std::count(r[1].begin(), r[1].begin() + kRaceNames, 'W'));
  }
}

TEST_F(Coherency, ThreeMountsSeeTheSameChange) {
  std::string third = c.dir() + "/mnt3";
  c.Mount(third);
  Run({{.name = "three", .probes = {"g", "new", "sub"}, .setup = Make({"f", "gone"}),
        .change = [](const std::string& d) {
          WriteAll(d + "/f", "rewritten");
          ASSERT_EQ(Result(chmod((d + "/f").c_str(), 0600)), "ok");
          ASSERT_EQ(Result(rename((d + "/f").c_str(), (d + "/g").c_str())), "ok");
          ASSERT_EQ(Result(unlink((d + "/gone").c_str())), "ok");
          ASSERT_EQ(Result(mkdir((d + "/sub").c_str(), 0755)), "ok");
          WriteAll(d + "/new", "new", O_EXCL);
        }}},
      {b_, third});
}

}  // namespace
}  // namespace cohfs::test
