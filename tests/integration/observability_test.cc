// Operating cohfs (issue 11): the metrics endpoints of the server and the
// client move with traffic, `cohfs status` shows the mounted sessions and
// their locks, `cohfs stats --watch` prints rates, and format/fsck show
// progress on a terminal only. Outputs are parsed, not grepped for a word.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "common/metrics.h"
#include "tests/integration/cluster.h"

namespace cohfs::test {
namespace {

using Scrape = std::map<std::string, double>;

Scrape Fetch(int port) {
  httplib::Client client("127.0.0.1", port);
  auto res = client.Get("/metrics");
  Scrape m;
  if (!res || res->status != 200) {
    ADD_FAILURE() << "no scrape from port " << port;
    return m;
  }
  EXPECT_TRUE(ParseMetricsText(res->body, &m)) << res->body;
  return m;
}

double Get(const Scrape& m, const std::string& key) {
  auto it = m.find(key);
  EXPECT_NE(it, m.end()) << "no series " << key;
  return it == m.end() ? -1 : it->second;
}

// The port the server logged its metrics on ("metrics on http://127.0.0.1:N/metrics").
int ServerMetricsPort(const Cluster& c) {
  std::string log = c.ServerLog();
  size_t p = log.find("metrics on http://127.0.0.1:");
  if (p == std::string::npos) return 0;
  return std::stoi(log.substr(p + std::strlen("metrics on http://127.0.0.1:")));
}

// Every histogram's buckets never go down with le, and +Inf is its count.
void ExpectCumulative(const Scrape& m, const std::string& type) {
  std::string prefix = "cohfs_server_request_duration_seconds_bucket{type=\"" + type + "\",le=\"";
  std::vector<std::pair<double, double>> buckets;  // (le, value)
  for (auto& [key, v] : m) {
    if (key.rfind(prefix, 0) != 0) continue;
    std::string le = key.substr(prefix.size(), key.size() - prefix.size() - 2);
    buckets.emplace_back(le == "+Inf" ? HUGE_VAL : std::stod(le), v);
  }
  ASSERT_GT(buckets.size(), 5u);
  std::sort(buckets.begin(), buckets.end());
  for (size_t i = 1; i < buckets.size(); i++) EXPECT_LE(buckets[i - 1].second, buckets[i].second);
  EXPECT_EQ(buckets.back().second,
            Get(m, "cohfs_server_request_duration_seconds_count{type=\"" + type + "\"}"));
}

ClusterOptions WithMetrics() {
  ClusterOptions o;
  o.serve_flags = "--metrics 127.0.0.1:0";
  o.mount_flags = "-o metrics=127.0.0.1:0";
  return o;
}

TEST(Observability, ServerMetricsMoveWithTraffic) {
  Cluster c(WithMetrics());
  int port = ServerMetricsPort(c);
  ASSERT_GT(port, 0) << c.ServerLog();
  Scrape before = Fetch(port);
  ASSERT_EQ(mkdir(c.Path("d").c_str(), 0755), 0);
  for (int i = 0; i < 10; i++) {
    WriteFile(c.Path("d/f" + std::to_string(i)), std::string(64 * 1024, 'a' + i));
  }
  Scrape after = Fetch(port);
  auto delta = [&](const std::string& k) { return Get(after, k) - Get(before, k); };
  EXPECT_GE(delta("cohfs_server_requests_total{type=\"fsync\"}"), 10);
  EXPECT_GE(delta("cohfs_server_requests_total{type=\"write\"}"), 10);
  EXPECT_EQ(delta("cohfs_server_request_errors_total{type=\"write\"}"), 0);
  EXPECT_GE(delta("cohfs_server_received_bytes_total"), 10 * 64 * 1024);
  EXPECT_GT(delta("cohfs_server_sent_bytes_total"), 0);
  EXPECT_GE(delta("cohfs_device_written_bytes_total"), 10 * 64 * 1024);
  EXPECT_GE(delta("cohfs_server_syncs_total"), 1);
  EXPECT_GT(Get(after, "cohfs_rocksdb_estimate_num_keys"), 0);
  EXPECT_EQ(Get(after, "cohfs_server_sessions"), 1);
  EXPECT_EQ(Get(after, "cohfs_server_connections"), 1);
  EXPECT_GT(Get(after, "cohfs_server_locks_held"), 0);
  EXPECT_EQ(Get(after, "cohfs_server_grace"), 0);
  EXPECT_GT(Get(after, "cohfs_server_free_bytes"), 0);
  ExpectCumulative(after, "write");
  ExpectCumulative(after, "fsync");

  // A second mount takes what the first holds: recalls.
  std::string mnt2 = c.dir() + "/mnt2";
  c.Mount(mnt2);
  struct stat st;
  ASSERT_EQ(stat((mnt2 + "/d/f3").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 64 * 1024);
  ASSERT_EQ(unlink((mnt2 + "/d/f4").c_str()), 0);
  Scrape two = Fetch(port);
  EXPECT_GT(Get(two, "cohfs_server_recalls_sent_total"),
            Get(after, "cohfs_server_recalls_sent_total"));
  EXPECT_EQ(Get(two, "cohfs_server_sessions"), 2);
}

TEST(Observability, ClientMetricsMoveWithTraffic) {
  Cluster c(WithMetrics());
  int port = static_cast<int>(StatValue(c.Stats(), "metrics_port"));
  ASSERT_GT(port, 0) << c.Stats();
  Scrape before = Fetch(port);
  for (int i = 0; i < 20; i++) WriteFile(c.Path("f" + std::to_string(i)), "hello");
  Scrape after = Fetch(port);
  auto delta = [&](const std::string& k) { return Get(after, k) - Get(before, k); };
  EXPECT_EQ(delta("cohfs_client_fuse_requests_total{op=\"create\"}"), 20);
  EXPECT_EQ(delta("cohfs_client_fuse_requests_total{op=\"fsync\"}"), 20);
  EXPECT_GE(delta("cohfs_client_rpcs_total{type=\"fsync\"}"), 20);
  EXPECT_GE(delta("cohfs_client_round_trips_total"), 20);
  EXPECT_GT(delta("cohfs_client_sent_bytes_total"), 0);
  // The scrape agrees with `cohfs stats`, which reads the same counters.
  std::string stats = c.Stats();
  EXPECT_EQ(Fetch(port).at("cohfs_client_fuse_requests_total{op=\"create\"}"),
            StatValue(stats, "fuse.create"));
}

// "name: value" lines, and the session table's rows keyed by column.
struct StatusOutput {
  std::map<std::string, std::string> fields;
  std::vector<std::map<std::string, std::string>> sessions;
};

StatusOutput ParseStatus(const std::string& text) {
  StatusOutput out;
  std::istringstream in(text);
  std::vector<std::string> columns;
  for (std::string line; std::getline(in, line);) {
    std::istringstream l(line);
    std::vector<std::string> words;
    for (std::string w; l >> w;) words.push_back(w);
    if (words.empty()) continue;
    if (words[0] == "SESSION") {
      columns = words;
    } else if (!columns.empty()) {
      std::map<std::string, std::string> row;
      for (size_t i = 0; i < columns.size() && i < words.size(); i++) row[columns[i]] = words[i];
      out.sessions.push_back(row);
    } else if (words[0].back() == ':' && words.size() == 2) {
      out.fields[words[0].substr(0, words[0].size() - 1)] = words[1];
    }
  }
  return out;
}

TEST(Observability, StatusShowsTheMountedSessionAndItsLocks) {
  Cluster c;
  ASSERT_EQ(mkdir(c.Path("d").c_str(), 0755), 0);
  WriteFile(c.Path("d/f"), std::string(8192, 'x'));  // fsync: shipped, its locks granted
  std::string out;
  std::string cmd = CohfsBinary() + " status 127.0.0.1:" + std::to_string(c.port());
  ASSERT_EQ(RunCommand(cmd + " --key " + c.key_file(), &out), 0) << out;
  StatusOutput s = ParseStatus(out);
  EXPECT_EQ(s.fields["grace"], "no") << out;
  EXPECT_EQ(s.fields["sessions"], "1") << out;
  EXPECT_GT(std::stoull(s.fields["free_bytes"]), 0u) << out;
  EXPECT_GT(std::stoull(s.fields["locked_inodes"]), 0u) << out;
  EXPECT_GT(std::stoull(s.fields["granted_bytes"]), 0u) << out;
  ASSERT_EQ(s.sessions.size(), 1u) << out;
  auto& row = s.sessions[0];
  EXPECT_EQ(row["STATE"], "attached");
  EXPECT_EQ(row["PEER"].rfind("127.0.0.1:", 0), 0u) << out;
  EXPECT_GT(std::stoull(row["LOCKS"]), 0u) << out;
  double lease_left = std::stod(row["LEASE_LEFT_S"]);
  EXPECT_GT(lease_left, 0);
  EXPECT_LE(lease_left, 15.0);
  // A status opens no session, and without the key it is refused.
  ASSERT_EQ(RunCommand(cmd + " --key " + c.key_file(), &out), 0) << out;
  EXPECT_EQ(ParseStatus(out).fields["sessions"], "1") << out;
  EXPECT_NE(RunCommand(cmd, &out), 0) << out;
}

TEST(Observability, StatsWatchPrintsRatesUnderAHeader) {
  Cluster c;
  std::string out;
  std::string cmd = CohfsBinary() + " stats " + c.mnt() + " --watch --interval 1 --count 2";
  // Traffic for as long as it watches: a shell loop of creates in the
  // background, each at least 5 FUSE requests (lookup, create, write, flush,
  // release), until the watch has printed its lines.
  const std::string stop = c.dir() + "/stop-load";
  std::string load = "(i=0; while [ ! -e " + stop + " ]; do i=$((i+1)); echo x > " + c.mnt() +
                     "/f$i; done) & ";
  ASSERT_EQ(RunCommand("sh -c '" + load + cmd + "; touch " + stop + "; wait'", &out), 0) << out;
  std::istringstream in(out);
  std::vector<std::vector<std::string>> rows;
  for (std::string line; std::getline(in, line);) {
    std::istringstream l(line);
    std::vector<std::string> words;
    for (std::string w; l >> w;) words.push_back(w);
    if (!words.empty()) rows.push_back(words);
  }
  ASSERT_EQ(rows.size(), 3u) << out;  // header and --count lines
  ASSERT_EQ(rows[0][0], "time") << out;
  ASSERT_EQ(rows[0][1], "fuse/s") << out;
  double fuse_per_s = 0;
  for (size_t r = 1; r < rows.size(); r++) {
    ASSERT_EQ(rows[r].size(), rows[0].size()) << out;
    for (size_t i = 1; i < rows[r].size(); i++) EXPECT_GE(std::stod(rows[r][i]), 0) << out;
    fuse_per_s += std::stod(rows[r][1]);
  }
  // Over two ~1 s intervals of creates: far more than the watch's own reads
  // of the stats xattr.
  EXPECT_GE(fuse_per_s, 100) << out;
  EXPECT_GE(StatValue(c.Stats(), "fuse.create"), 20u);
}

TEST(Observability, StatsWatchStopsCleanlyOnSigint) {
  Cluster c;
  std::string out;
  // `timeout -s INT` sends SIGINT after 0.5 s to a watch that would never end.
  int rc = RunCommand(
      "timeout --preserve-status -s INT 0.5 " + CohfsBinary() + " stats " + c.mnt() + " --watch",
      &out);
  EXPECT_EQ(rc, 0) << out;  // the command's own status: it ended by itself
  EXPECT_EQ(out.rfind("time", 0), 0u) << out;
}

// Progress goes to a terminal only: quiet into a pipe, drawn through a pty.
TEST(Observability, FormatAndFsckProgressOnlyOnATerminal) {
  Cluster c;
  WriteFile(c.Path("data"), std::string(1 << 20, 'd'));
  c.Unmount();
  c.StopServer();
  std::string out;
  ASSERT_EQ(RunCommand(CohfsBinary() + " fsck " + c.image(), &out), 0) << out;
  EXPECT_EQ(out.find('%'), std::string::npos) << out;
  EXPECT_EQ(out.find('\r'), std::string::npos) << out;
  ASSERT_EQ(
      RunCommand("script -qec '" + CohfsBinary() + " fsck " + c.image() + "' /dev/null", &out), 0)
      << out;
  EXPECT_NE(out.find("\rfsck: checksums: 100.0%"), std::string::npos) << out;

  std::string img = c.dir() + "/other.img";
  ASSERT_EQ(RunCommand("truncate -s 3G " + img), 0);
  ASSERT_EQ(RunCommand(CohfsBinary() + " format " + img, &out), 0) << out;
  EXPECT_EQ(out.find('%'), std::string::npos) << out;
  ASSERT_EQ(
      RunCommand("script -qec '" + CohfsBinary() + " format --force " + img + "' /dev/null", &out),
      0)
      << out;
  EXPECT_NE(out.find("\rformat: discarding: 100.0% (3.0 GiB of 3.0 GiB)"), std::string::npos)
      << out;
  c.StartServer();  // the cluster's teardown fscks its own image
}

}  // namespace
}  // namespace cohfs::test
