// mount(8) and fstab (issue 11): `mount -t cohfs` runs mount.cohfs (the cohfs
// binary under that name) with -o options, and `mount -a` mounts an fstab line
// with _netdev,nofail. mount(8) looks for its helper in /sbin only, so each
// test lays the build tree's helper over /usr/sbin with a read-only overlay in
// its own mount namespace (main.cc); the host's /usr/sbin is untouched.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/integration/cluster.h"

namespace cohfs::test {
namespace {

// Makes /sbin/mount.cohfs this build's helper, in this mount namespace only.
void ExposeMountHelper(const Cluster& c) {
  std::string dir = c.dir() + "/sbin";
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
  std::string helper = CohfsBinary().substr(0, CohfsBinary().rfind('/')) + "/mount.cohfs";
  ASSERT_EQ(symlink(helper.c_str(), (dir + "/mount.cohfs").c_str()), 0);
  std::string lower = "lowerdir=" + dir + ":/usr/sbin";
  ASSERT_EQ(mount("overlay", "/usr/sbin", "overlay", MS_RDONLY, lower.c_str()), 0)
      << "overlay on /usr/sbin: " << strerror(errno);
}

// The mountinfo line of `mountpoint` ("" if it is not mounted).
std::string MountInfo(const std::string& mountpoint) {
  std::ifstream in("/proc/self/mountinfo");
  for (std::string line; std::getline(in, line);) {
    std::istringstream f(line);
    std::string id, parent, dev, root, mnt;
    f >> id >> parent >> dev >> root >> mnt;
    if (mnt == mountpoint) return line;
  }
  return "";
}

// The mount.cohfs daemons serving `mountpoint`, found by their command line.
std::vector<pid_t> HelperDaemons(const std::string& mountpoint) {
  std::vector<pid_t> found;
  DIR* proc = opendir("/proc");
  while (dirent* e = proc ? readdir(proc) : nullptr) {
    pid_t pid = static_cast<pid_t>(atoi(e->d_name));
    std::ifstream in(std::string("/proc/") + e->d_name + "/cmdline");
    std::vector<std::string> args;
    for (std::string a; std::getline(in, a, '\0');) args.push_back(a);
    if (pid > 0 && args.size() >= 3 && args[0] == "/sbin/mount.cohfs" && args[2] == mountpoint) {
      found.push_back(pid);
    }
  }
  if (proc) closedir(proc);
  return found;
}

// umount, then wait for the daemon to have shipped what it held and exited.
void UnmountHelper(const std::string& mountpoint) {
  std::vector<pid_t> daemons = HelperDaemons(mountpoint);
  EXPECT_EQ(daemons.size(), 1u) << "daemons of " << mountpoint;
  std::string out;
  EXPECT_EQ(RunCommand("umount " + mountpoint, &out), 0) << out;
  EXPECT_TRUE(WaitFor([&] { return HelperDaemons(mountpoint).empty(); }, std::chrono::seconds(60)))
      << "the mount.cohfs daemon of " << mountpoint << " did not exit";
}

std::string Spec(const Cluster& c) { return "127.0.0.1:" + std::to_string(c.port()); }

TEST(MountHelper, MountTypeCohfsTakesOptionsAndIsCoherentWithCohfsMount) {
  Cluster c;
  ExposeMountHelper(c);
  std::string m2 = c.dir() + "/m2";
  ASSERT_EQ(mkdir(m2.c_str(), 0755), 0);
  std::string out;
  ASSERT_EQ(RunCommand("mount -t cohfs " + Spec(c) + " " + m2 + " -o key=" + c.key_file() +
                           ",soft,timeo=20,timeout=10,max_locks=1000,noexec,"
                           "defaults,_netdev,nofail,auto,x-systemd.device-timeout=5",
                       &out),
            0)
      << out;
  std::string info = MountInfo(m2);
  EXPECT_NE(info.find(" - fuse.cohfs " + Spec(c) + " "), std::string::npos) << info;
  EXPECT_NE(info.find("noexec"), std::string::npos) << info;
  // Written through the helper's mount, read through `cohfs mount`'s.
  { std::ofstream(m2 + "/from-helper") << "via mount(8)"; }
  std::ifstream in(c.Path("from-helper"));
  std::string got((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(got, "via mount(8)");
  UnmountHelper(m2);
  EXPECT_EQ(MountInfo(m2), "");
}

TEST(MountHelper, ReadOnlyMountRefusesWrites) {
  Cluster c;
  ExposeMountHelper(c);
  std::string m2 = c.dir() + "/m2";
  ASSERT_EQ(mkdir(m2.c_str(), 0755), 0);
  { std::ofstream(c.Path("old")) << "x"; }
  std::string out;
  ASSERT_EQ(RunCommand("mount -t cohfs -o ro,key=" + c.key_file() + " " + Spec(c) + " " + m2, &out),
            0)
      << out;
  EXPECT_EQ(access((m2 + "/old").c_str(), R_OK), 0);
  EXPECT_LT(open((m2 + "/new").c_str(), O_CREAT | O_WRONLY, 0644), 0);
  EXPECT_EQ(errno, EROFS);
  UnmountHelper(m2);
}

TEST(MountHelper, FailuresExitNonzeroWithTheReason) {
  Cluster c;
  ExposeMountHelper(c);
  std::string m2 = c.dir() + "/m2";
  ASSERT_EQ(mkdir(m2.c_str(), 0755), 0);
  std::string key = " -o key=" + c.key_file();
  std::string out;
  // mount(8) passes its helper's status on: 32 a failed mount, 1 a bad invocation.
  EXPECT_EQ(RunCommand("mount -t cohfs 127.0.0.1:1 " + m2 + key + ",timeout=5", &out), 32) << out;
  EXPECT_NE(out.find("cannot reach server 127.0.0.1:1"), std::string::npos) << out;
  EXPECT_EQ(RunCommand("mount -t cohfs " + Spec(c) + " " + m2 + key + ",vers=4", &out), 1) << out;
  EXPECT_NE(out.find("unknown option -o vers=4"), std::string::npos) << out;
  EXPECT_EQ(RunCommand("mount -t cohfs " + Spec(c) + " " + m2, &out), 1) << out;
  EXPECT_NE(out.find("key=FILE"), std::string::npos) << out;
  std::string other = c.dir() + "/other.key";
  ASSERT_EQ(RunCommand(CohfsBinary() + " keygen " + other, &out), 0) << out;
  EXPECT_EQ(RunCommand("mount -t cohfs " + Spec(c) + " " + m2 + " -o key=" + other, &out), 32);
  EXPECT_NE(out.find("refused this client's key"), std::string::npos) << out;
  // -s (sloppy) lets an unknown option through; -f checks everything and mounts nothing.
  EXPECT_EQ(RunCommand("mount -f -s -t cohfs " + Spec(c) + " " + m2 + key + ",vers=4", &out), 0)
      << out;
  EXPECT_EQ(MountInfo(m2), "");
  EXPECT_TRUE(HelperDaemons(m2).empty());
}

TEST(MountHelper, FstabLineWithNetdevNofailMountsWithMountA) {
  Cluster c;
  ExposeMountHelper(c);
  std::string m2 = c.dir() + "/m2";
  ASSERT_EQ(mkdir(m2.c_str(), 0755), 0);
  std::string fstab = c.dir() + "/fstab";
  std::ofstream(fstab) << "# a private fstab\n"
                       << Spec(c) << "  " << m2 << "  cohfs  _netdev,nofail,key=" << c.key_file()
                       << ",soft  0  0\n";
  std::string out;
  ASSERT_EQ(RunCommand("mount -a -T " + fstab, &out), 0) << out;
  EXPECT_NE(MountInfo(m2).find(" - fuse.cohfs "), std::string::npos);
  { std::ofstream(c.Path("seen")) << "1"; }
  EXPECT_EQ(access((m2 + "/seen").c_str(), F_OK), 0);
  // A second mount -a knows the line is mounted (the source is the spec as written).
  EXPECT_EQ(RunCommand("mount -a -v -T " + fstab, &out), 0) << out;
  EXPECT_NE(out.find("already mounted"), std::string::npos) << out;
  EXPECT_EQ(HelperDaemons(m2).size(), 1u);
  UnmountHelper(m2);
}

}  // namespace
}  // namespace cohfs::test
