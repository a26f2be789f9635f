// The Linux features people notice (issue 11 item 7), through real mounts and
// the real tools: lsattr/chattr, SEEK_DATA/SEEK_HOLE and sparse cp, fallocate
// and filefrag (what this kernel lets reach FUSE), RENAME_WHITEOUT and an
// overlayfs with its upper layer on cohfs; each change seen by a second mount.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <string>

#include "tests/integration/cluster.h"

namespace cohfs::test {
namespace {

class LinuxFeatures : public ::testing::Test {
 protected:
  void SetUp() override {
    mnt2_ = c_.dir() + "/mnt2";
    ASSERT_EQ(mkdir(mnt2_.c_str(), 0755), 0);
    c_.Mount(mnt2_);
  }
  std::string A(const std::string& rel) { return c_.Path(rel); }
  std::string B(const std::string& rel) { return mnt2_ + "/" + rel; }
  static int Sh(const std::string& cmd, std::string* out = nullptr) {
    std::string ignored;
    return RunCommand(cmd, out ? out : &ignored);
  }
  // The flag letters lsattr prints for `path` (its first word).
  static std::string Lsattr(const std::string& path) {
    std::string out;
    if (Sh("lsattr -d " + path, &out) != 0) return "<lsattr failed: " + out + ">";
    return out.substr(0, out.find(' '));
  }

  Cluster c_;
  std::string mnt2_;
};

TEST_F(LinuxFeatures, ChattrImmutableAndAppendSeenByAnotherMount) {
  ASSERT_EQ(Sh("echo hello > " + A("f")), 0);
  EXPECT_EQ(Lsattr(A("f")).find_first_not_of('-'), std::string::npos);
  std::string out;
  ASSERT_EQ(Sh("chattr +i " + A("f"), &out), 0) << out;
  EXPECT_NE(Lsattr(B("f")).find('i'), std::string::npos) << Lsattr(B("f"));
  // Refused on both mounts, root included (only the flag may change).
  EXPECT_NE(Sh("echo more >> " + B("f")), 0);
  EXPECT_NE(Sh("rm -f " + B("f")), 0);
  EXPECT_NE(Sh("mv " + A("f") + " " + A("g")), 0);
  EXPECT_NE(Sh("ln " + A("f") + " " + A("h")), 0);
  EXPECT_NE(Sh("chmod 600 " + B("f")), 0);
  EXPECT_NE(Sh("truncate -s 0 " + A("f")), 0);
  EXPECT_EQ(Sh("cat " + B("f"), &out), 0);
  EXPECT_EQ(out, "hello\n");
  ASSERT_EQ(Sh("chattr -i +a " + B("f"), &out), 0) << out;
  EXPECT_EQ(Lsattr(A("f")).find('i'), std::string::npos);
  EXPECT_NE(Lsattr(A("f")).find('a'), std::string::npos) << Lsattr(A("f"));
  EXPECT_EQ(Sh("echo more >> " + A("f")), 0);  // append-only: O_APPEND writes pass
  EXPECT_NE(Sh("echo over > " + A("f")), 0);   // O_TRUNC does not
  EXPECT_NE(Sh("rm -f " + A("f")), 0);
  EXPECT_EQ(Sh("cat " + B("f"), &out), 0);
  EXPECT_EQ(out, "hello\nmore\n");
  ASSERT_EQ(Sh("chattr -a +d +A " + A("f")), 0);  // kept bits
  std::string flags = Lsattr(B("f"));
  EXPECT_TRUE(flags.find('d') != std::string::npos && flags.find('A') != std::string::npos)
      << flags;
  EXPECT_EQ(Sh("rm " + A("f")), 0);
  // A directory: +i keeps its names, as on ext4.
  ASSERT_EQ(Sh("mkdir " + A("d") + " && touch " + A("d/x") + " && chattr +i " + A("d")), 0);
  EXPECT_NE(Sh("touch " + B("d/y")), 0);
  EXPECT_NE(Sh("rm " + B("d/x")), 0);
  ASSERT_EQ(Sh("chattr -i " + B("d")), 0);
  EXPECT_EQ(Sh("rm " + A("d/x")), 0);
}

TEST_F(LinuxFeatures, ChattrRulesForOwners) {
  ASSERT_EQ(
      Sh("install -d -m 0777 " + A("u") + " && su nobody -s /bin/sh -c 'touch " + A("u/f") + "'"),
      0);
  std::string out;
  // The owner may set the plain flags, not i or a (CAP_LINUX_IMMUTABLE); others nothing.
  EXPECT_EQ(Sh("su nobody -s /bin/sh -c 'chattr +d " + A("u/f") + "'", &out), 0) << out;
  EXPECT_NE(Sh("su nobody -s /bin/sh -c 'chattr +i " + A("u/f") + "'", &out), 0) << out;
  EXPECT_NE(Lsattr(B("u/f")).find('d'), std::string::npos);
  EXPECT_EQ(Lsattr(B("u/f")).find('i'), std::string::npos);
}

// SEEK_DATA/SEEK_HOLE is what sparse-aware cp uses; FIEMAP and the shifting
// fallocate modes stop in the kernel before they reach any FUSE daemon.
TEST_F(LinuxFeatures, SparseFilesAndWhatTheKernelRefuses) {
  const std::string f = A("sparse");
  ASSERT_EQ(Sh("dd if=/dev/urandom of=" + f +
               " bs=64k count=1 conv=notrunc status=none && "
               "dd if=/dev/urandom of=" +
               f + " bs=64k count=1 seek=32 status=none"),
            0);
  int fd = open(B("sparse").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(lseek(fd, 0, SEEK_HOLE), 64 << 10);
  EXPECT_EQ(lseek(fd, 64 << 10, SEEK_DATA), 2 << 20);
  EXPECT_EQ(lseek(fd, (2 << 20) + 1, SEEK_HOLE), (2 << 20) + (64 << 10));
  close(fd);
  std::string out;
  ASSERT_EQ(Sh("cp --sparse=auto " + f + " " + B("copy") + " && cmp " + f + " " + B("copy"), &out),
            0)
      << out;
  struct stat st {};
  ASSERT_EQ(stat(A("copy").c_str(), &st), 0);
  EXPECT_LE(st.st_blocks * 512, 256 << 10) << "the copy's holes were written as zeros";
  // fs/fuse/file.c fuse_file_fallocate: only KEEP_SIZE, PUNCH_HOLE, ZERO_RANGE pass.
  EXPECT_NE(Sh("fallocate -c -o 0 -l 64KiB " + f, &out), 0);
  EXPECT_NE(out.find("Operation not supported"), std::string::npos) << out;
  EXPECT_NE(Sh("fallocate -i -o 0 -l 64KiB " + f, &out), 0);
  // fs/ioctl.c ioctl_fiemap: EOPNOTSUPP without i_op->fiemap (FUSE has none);
  // filefrag then falls back to FIBMAP, which fuse_bmap answers 0 (no block
  // device): it finds no extents.
  fd = open(f.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  struct fiemap fm {};
  fm.fm_length = ~0ull;
  EXPECT_EQ(ioctl(fd, FS_IOC_FIEMAP, &fm), -1);
  EXPECT_EQ(errno, EOPNOTSUPP);
  close(fd);
  Sh("filefrag -v " + f, &out);
  EXPECT_NE(out.find("0 extents found"), std::string::npos) << out;
}

TEST_F(LinuxFeatures, RenameWhiteoutLeavesACharacterDevice) {
  ASSERT_EQ(Sh("echo x > " + A("w")), 0);
  ASSERT_EQ(renameat2(AT_FDCWD, A("w").c_str(), AT_FDCWD, A("w2").c_str(), RENAME_WHITEOUT), 0)
      << strerror(errno);
  struct stat st {};
  ASSERT_EQ(lstat(B("w").c_str(), &st), 0) << strerror(errno);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(0, 0));
  ASSERT_EQ(lstat(A("w").c_str(), &st), 0);  // the renaming mount sees it too
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  std::string out;
  EXPECT_EQ(Sh("cat " + B("w2"), &out), 0);
  EXPECT_EQ(out, "x\n");
}

TEST_F(LinuxFeatures, OverlayfsUpperLayerOnCohfs) {
  const std::string lower = c_.dir() + "/lower", merged = c_.dir() + "/merged";
  ASSERT_EQ(Sh("mkdir -p " + lower + " " + merged + " " + A("upper") + " " + A("work")), 0);
  ASSERT_EQ(mount("tmpfs", lower.c_str(), "tmpfs", 0, nullptr), 0) << strerror(errno);
  ASSERT_EQ(Sh("echo lower > " + lower + "/gone && echo keep > " + lower + "/kept"), 0);
  std::string opts = "lowerdir=" + lower + ",upperdir=" + A("upper") + ",workdir=" + A("work");
  std::string out;
  Sh("dmesg -c");
  ASSERT_EQ(mount("overlay", merged.c_str(), "overlay", 0, opts.c_str()), 0) << strerror(errno);
  Sh("dmesg | grep overlayfs", &out);
  std::printf("overlayfs said at mount: %s\n", out.empty() ? "(nothing)" : out.c_str());
  EXPECT_EQ(out.find("RENAME_WHITEOUT"), std::string::npos) << out;
  ASSERT_EQ(Sh("rm " + merged + "/gone && echo new > " + merged + "/added"), 0);
  EXPECT_NE(access((merged + "/gone").c_str(), F_OK), 0);
  struct stat st {};
  ASSERT_EQ(lstat(B("upper/gone").c_str(), &st), 0) << "no whiteout in the upper layer";
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(0, 0));
  EXPECT_EQ(Sh("cat " + B("upper/added"), &out), 0);
  EXPECT_EQ(out, "new\n");
  EXPECT_EQ(Sh("cat " + merged + "/kept", &out), 0);
  EXPECT_EQ(out, "keep\n");
  EXPECT_EQ(umount(merged.c_str()), 0) << strerror(errno);
  EXPECT_EQ(umount(lower.c_str()), 0);
}

}  // namespace
}  // namespace cohfs::test
