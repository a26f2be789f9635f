// Writes, truncates and chowns clear set-id bits and security.capability as on
// Linux. The kernel leaves the set-id bits to cohfs (FUSE_HANDLE_KILLPRIV_V2):
// the client's cache and the server clear them; both views are checked (the
// mount's, and the server's after a remount).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdint>
#include <functional>
#include <string>

#include "tests/integration/cluster.h"

namespace cohfs::test {
namespace {

// The errno of `call` (0: it succeeded) in a child running as uid/gid 1000.
int AsUser(const std::function<bool()>& call) {
  return RunAs(1000, 1000, [&] { return call() ? 0 : errno; });
}

bool WriteAt(const std::string& path, const char* data) {
  int fd = open(path.c_str(), O_WRONLY);
  if (fd < 0) return false;
  bool ok = write(fd, data, 1) == 1;
  return close(fd) == 0 && ok;
}

mode_t ModeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

// A root-owned file with `mode` (chmod: the create would mask it).
std::string MakeFile(Cluster& c, const std::string& name, mode_t mode) {
  std::string p = c.Path(name);
  int fd = open(p.c_str(), O_CREAT | O_WRONLY, 0600);
  EXPECT_GE(fd, 0) << p;
  EXPECT_EQ(close(fd), 0);
  EXPECT_EQ(chmod(p.c_str(), mode), 0);
  return p;
}

// A file capability as setcap writes it (VFS_CAP_REVISION_2, cap_net_raw).
void SetCapability(const std::string& path) {
  const uint32_t cap[5] = {0x02000000, 1u << 13, 0, 0, 0};
  ASSERT_EQ(setxattr(path.c_str(), "security.capability", cap, sizeof(cap), 0), 0) << errno;
}

bool HasCapability(const std::string& path) {
  return getxattr(path.c_str(), "security.capability", nullptr, 0) >= 0;
}

class KillPrivileges : public ::testing::Test {
 protected:
  // What the server stored, not the client's cache.
  void Remount() {
    c.Unmount();
    c.Mount();
  }
  Cluster c;
};

TEST_F(KillPrivileges, AWriteByAnotherUserClearsSetIdBits) {
  std::string p = MakeFile(c, "f", 06777);
  EXPECT_EQ(AsUser([&] { return WriteAt(p, "x"); }), 0);
  EXPECT_EQ(ModeOf(p), 0777u);
  Remount();
  EXPECT_EQ(ModeOf(p), 0777u);
}

TEST_F(KillPrivileges, AWriteByRootKeepsSetIdBits) {
  std::string p = MakeFile(c, "f", 06755);
  EXPECT_TRUE(WriteAt(p, "x"));
  EXPECT_EQ(ModeOf(p), 06755u);
  Remount();
  EXPECT_EQ(ModeOf(p), 06755u);
}

TEST_F(KillPrivileges, ATruncateByAnotherUserClearsSetIdBits) {
  std::string p = MakeFile(c, "f", 06777);
  EXPECT_EQ(AsUser([&] { return truncate(p.c_str(), 0) == 0; }), 0);
  EXPECT_EQ(ModeOf(p), 0777u);
  Remount();
  EXPECT_EQ(ModeOf(p), 0777u);
}

TEST_F(KillPrivileges, AChownClearsSetIdBitsEvenForRoot) {
  std::string p = MakeFile(c, "f", 06755);
  ASSERT_EQ(chown(p.c_str(), 1000, 1000), 0);
  EXPECT_EQ(ModeOf(p), 0755u);
  Remount();
  EXPECT_EQ(ModeOf(p), 0755u);
}

TEST_F(KillPrivileges, AWriteRemovesAFileCapability) {
  std::string p = MakeFile(c, "f", 0777);
  SetCapability(p);
  ASSERT_TRUE(HasCapability(p));
  EXPECT_EQ(AsUser([&] { return WriteAt(p, "x"); }), 0);
  EXPECT_FALSE(HasCapability(p));
  // Root's writes too (Linux drops the capability on any write).
  SetCapability(p);
  EXPECT_TRUE(WriteAt(p, "y"));
  EXPECT_FALSE(HasCapability(p));
  Remount();
  EXPECT_FALSE(HasCapability(p));
}

TEST_F(KillPrivileges, AChownRemovesAFileCapability) {
  std::string p = MakeFile(c, "f", 0755);
  SetCapability(p);
  ASSERT_EQ(chown(p.c_str(), 1000, 1000), 0);
  EXPECT_FALSE(HasCapability(p));
  Remount();
  EXPECT_FALSE(HasCapability(p));
}

}  // namespace
}  // namespace cohfs::test
