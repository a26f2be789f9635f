#include "tools/mount_options.h"

#include <gtest/gtest.h>

namespace cohfs {
namespace {

TEST(MountOptions, FstabLineSetsEveryField) {
  MountOptions o;
  MountOptionList list;
  ASSERT_EQ(ParseMountOptionList("key=/etc/cohfs/a.key,soft,timeo=2.5,timeout=7,max_locks=100,"
                                 "log=/var/log/c.log,ro,noexec",
                                 false, &o, &list),
            "");
  EXPECT_EQ(list.key_file, "/etc/cohfs/a.key");
  EXPECT_FALSE(list.insecure);
  EXPECT_EQ(o.soft_timeout_ms, 2500);
  EXPECT_EQ(o.timeout_ms, 7000);
  EXPECT_EQ(o.max_locks, 100u);
  EXPECT_EQ(o.log_file, "/var/log/c.log");
  EXPECT_EQ(o.fuse_options, "ro,noexec");
}

TEST(MountOptions, MetricsAndRingsAreMountOptionsToo) {
  MountOptions o;
  MountOptionList list;
  EXPECT_TRUE(o.fuse_uring);  // the default: rings when the kernel offers them
  ASSERT_EQ(ParseMountOptionList("insecure,nouring,uring_threads=2,metrics=127.0.0.1:0", false, &o,
                                 &list),
            "");
  EXPECT_FALSE(o.fuse_uring);
  EXPECT_EQ(o.uring_threads, 2u);
  EXPECT_EQ(o.metrics_listen, "127.0.0.1:0");
  EXPECT_NE(ParseMountOptionList("uring_threads=0", false, &o, &list), "");
  EXPECT_NE(ParseMountOptionList("uring_threads=65", false, &o, &list), "");
  EXPECT_NE(ParseMountOptionList("metrics=", false, &o, &list), "");
}

TEST(MountOptions, SoftWithoutTimeoWaitsThirtySecondsAndHardWins) {
  MountOptions o;
  MountOptionList list;
  ASSERT_EQ(ParseMountOptionList("soft", false, &o, &list), "");
  EXPECT_EQ(o.soft_timeout_ms, 30000);
  MountOptions h;
  ASSERT_EQ(ParseMountOptionList("timeo=3,soft,hard", false, &h, &list), "");
  EXPECT_EQ(h.soft_timeout_ms, 0);
}

TEST(MountOptions, FstabOnlyOptionsAreIgnoredNotPassedOn) {
  MountOptions o;
  MountOptionList list;
  ASSERT_EQ(ParseMountOptionList("defaults,_netdev,nofail,auto,noauto,user,x-systemd.automount,"
                                 "comment=x,insecure",
                                 false, &o, &list),
            "");
  EXPECT_EQ(list.ignored.size(), 8u);
  EXPECT_TRUE(list.insecure);
  EXPECT_EQ(o.fuse_options, "");
}

TEST(MountOptions, UnknownAndBadValuesAreRefusedUnlessSloppy) {
  MountOptions o;
  MountOptionList list;
  EXPECT_EQ(ParseMountOptionList("vers=4", false, &o, &list), "unknown option -o vers=4");
  EXPECT_EQ(ParseMountOptionList("bogus", false, &o, &list), "unknown option -o bogus");
  EXPECT_NE(ParseMountOptionList("timeo=0", false, &o, &list), "");
  EXPECT_NE(ParseMountOptionList("timeo=abc", true, &o, &list), "");  // ours, so not sloppy
  EXPECT_NE(ParseMountOptionList("max_locks=0", false, &o, &list), "");
  EXPECT_NE(ParseMountOptionList("key=", false, &o, &list), "");
  MountOptionList sloppy;
  EXPECT_EQ(ParseMountOptionList("vers=4,bogus,soft", true, &o, &sloppy), "");
  EXPECT_EQ(sloppy.ignored, (std::vector<std::string>{"vers=4", "bogus"}));
  EXPECT_GT(o.soft_timeout_ms, 0);
}

TEST(MountOptions, KeyAndInsecureExcludeEachOther) {
  MountOptions o;
  MountOptionList list;
  EXPECT_NE(ParseMountOptionList("key=/k,insecure", false, &o, &list), "");
}

}  // namespace
}  // namespace cohfs
