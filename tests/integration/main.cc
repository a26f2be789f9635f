// Integration tests run as root, each test process in its own mount namespace
// (so a crashed test leaves no mount behind on the host).
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>

#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  if (unshare(CLONE_NEWNS) != 0 || mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    std::fprintf(stderr, "cannot make a private mount namespace (need root): %s\n",
                 std::strerror(errno));
    return 1;
  }
  return RUN_ALL_TESTS();
}
