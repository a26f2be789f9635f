// flock and fcntl locks taken through one mount bind the other mounts: a lock is a lock on
// the file, not on one client's view of it. (These need server support of their own.)
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <unistd.h>

#include <string>

#include "tests/integration/coherency.h"

namespace cohfs::test {
namespace {

class CoherencyLocks : public Coherency {
 protected:
  void SetUp() override {
    Coherency::SetUp();
    WriteAll(a_file_, "lock me");
    Settle(a_file_);
  }

  // Runs `fn` on an fd of `path` in another process: fcntl locks belong to a process, and one
  // process's own locks never conflict with each other.
  std::string InOtherProcess(const std::string& path, const std::function<std::string(int)>& fn) {
    auto r = RunInParallel({[&] {
      int fd = open(path.c_str(), O_RDWR);
      if (fd < 0) return "open: " + ErrName(errno);
      std::string out = fn(fd);
      close(fd);
      return out;
    }});
    return r.empty() ? "(hung)" : r[0];
  }

  std::string a_file_ = a_ + "/f", b_file_ = b_ + "/f";
};

TEST_F(CoherencyLocks, FlockConflictsAcrossMounts) {
  const std::string would_block = ErrName(EWOULDBLOCK);
  int a = open(a_file_.c_str(), O_RDWR), b = open(b_file_.c_str(), O_RDWR);
  ASSERT_GE(a, 0) << ErrName(errno);
  ASSERT_GE(b, 0) << ErrName(errno);
  ASSERT_EQ(Result(flock(a, LOCK_EX | LOCK_NB)), "ok");
  EXPECT_EQ(Result(flock(b, LOCK_EX | LOCK_NB)), would_block)
      << "an exclusive flock through the second mount while the first holds one";
  EXPECT_EQ(Result(flock(b, LOCK_SH | LOCK_NB)), would_block)
      << "a shared flock through the second mount while the first holds an exclusive one";
  // FUSE drops a flock lock with the release that follows the last close,
  // after close() has returned: a blocking flock waits for it (bounded by the
  // test's timeout), as it would for a local holder that closes.
  ASSERT_EQ(close(a), 0);
  EXPECT_EQ(Result(flock(b, LOCK_EX)), "ok")
      << "an exclusive flock through the second mount once the first closed its fd";
  a = open(a_file_.c_str(), O_RDWR);
  ASSERT_GE(a, 0) << ErrName(errno);
  EXPECT_EQ(Result(flock(a, LOCK_SH | LOCK_NB)), would_block)
      << "a shared flock through the first mount while the second holds an exclusive one";
  ASSERT_EQ(Result(flock(b, LOCK_UN)), "ok");
  EXPECT_EQ(Result(flock(a, LOCK_SH | LOCK_NB)), "ok") << "shared flocks share";
  EXPECT_EQ(Result(flock(b, LOCK_SH | LOCK_NB)), "ok") << "shared flocks share";
  close(a);
  close(b);
}

// A non-blocking fcntl lock of [start, start + len): "ok", "conflict" or another errno.
std::string TryLock(int fd, short type, off_t start, off_t len) {
  struct flock fl{};
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = start;
  fl.l_len = len;
  if (fcntl(fd, F_SETLK, &fl) == 0) return "ok";
  return errno == EAGAIN || errno == EACCES ? "conflict" : ErrName(errno);
}

// F_GETLK for a write lock of [start, start + len): "unlocked" or the lock in the way.
std::string TestLock(int fd, off_t start, off_t len) {
  struct flock fl{};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = start;
  fl.l_len = len;
  if (fcntl(fd, F_GETLK, &fl) != 0) return ErrName(errno);
  if (fl.l_type == F_UNLCK) return "unlocked";
  return std::string(fl.l_type == F_WRLCK ? "write" : "read") + " lock of [" +
         std::to_string(fl.l_start) + ", " + std::to_string(fl.l_start + fl.l_len) + ")";
}

TEST_F(CoherencyLocks, FcntlLocksConflictAcrossMounts) {
  int a = open(a_file_.c_str(), O_RDWR);
  ASSERT_GE(a, 0) << ErrName(errno);
  ASSERT_EQ(TryLock(a, F_WRLCK, 0, 100), "ok");
  EXPECT_EQ(InOtherProcess(b_file_, [](int fd) {
              return "write [50, 150): " + TryLock(fd, F_WRLCK, 50, 100) +
                     "; read [99, 100): " + TryLock(fd, F_RDLCK, 99, 1) +
                     "; F_GETLK [50, 150): " + TestLock(fd, 50, 100) +
                     "; write [100, 200): " + TryLock(fd, F_WRLCK, 100, 100);
            }),
            "write [50, 150): conflict; read [99, 100): conflict; "
            "F_GETLK [50, 150): write lock of [0, 100); write [100, 200): ok")
      << "another process, through the second mount, while this one holds a write lock of "
         "[0, 100) through the first";
  ASSERT_EQ(close(a), 0);  // drops this process's locks on the file
  EXPECT_EQ(InOtherProcess(b_file_, [](int fd) {
              return "F_GETLK [50, 150): " + TestLock(fd, 50, 100) +
                     "; write [50, 150): " + TryLock(fd, F_WRLCK, 50, 100);
            }),
            "F_GETLK [50, 150): unlocked; write [50, 150): ok")
      << "through the second mount, after the first mount's fd was closed";
  // Read locks share, and keep writers out.
  a = open(a_file_.c_str(), O_RDWR);
  ASSERT_GE(a, 0) << ErrName(errno);
  ASSERT_EQ(TryLock(a, F_RDLCK, 0, 10), "ok");
  EXPECT_EQ(InOtherProcess(b_file_, [](int fd) {
              return "read [0, 10): " + TryLock(fd, F_RDLCK, 0, 10) +
                     "; write [5, 6): " + TryLock(fd, F_WRLCK, 5, 1);
            }),
            "read [0, 10): ok; write [5, 6): conflict")
      << "through the second mount, while the first holds a read lock of [0, 10)";
  close(a);
}

}  // namespace
}  // namespace cohfs::test
