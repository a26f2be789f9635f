// metaops: metadata operations on many files in one directory, from T threads.
//
//   metaops create|stat|unlink DIR N THREADS [PREFIX]
//   metaops create-stat DIR_A DIR_B N
//
// Files are DIR/PREFIX000000 .. DIR/PREFIX{N-1} (PREFIX defaults to "f", so two
// processes with different prefixes can share a directory); thread t handles the
// files whose index is t modulo THREADS. create = open(O_CREAT|O_EXCL|O_WRONLY,
// 0644) + close (an empty file), stat = lstat, unlink = unlink. Exits 1 with a
// message on the first error.
//
// create-stat: DIR_A and DIR_B are one directory seen through two mounts (two
// clients of one server). N times: create DIR_A/sNNNNNN (as above), then lstat
// DIR_B/sNNNNNN, which must find it at once. Prints one line
//   n=N misses=M pair_p50_us=.. pair_p99_us=.. stat_p50_us=.. stat_p99_us=..
// where a pair is create + the other mount's lstat, and a miss is an lstat that
// failed with ENOENT or found something other than an empty regular file. Exits 0
// if only misses happened, 1 on any other error.

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace {

std::atomic<int> g_failed{0};

void Work(const std::string& op, const std::string& dir, const std::string& prefix, long n,
          int threads, int t) {
  char path[4096];
  for (long i = t; i < n && g_failed.load(std::memory_order_relaxed) == 0; i += threads) {
    snprintf(path, sizeof(path), "%s/%s%06ld", dir.c_str(), prefix.c_str(), i);
    int rc = 0;
    if (op == "create") {
      int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
      rc = fd < 0 ? -1 : close(fd);
    } else if (op == "stat") {
      struct stat st;
      rc = lstat(path, &st);
    } else {
      rc = unlink(path);
    }
    if (rc != 0) {
      fprintf(stderr, "metaops: %s %s: %s\n", op.c_str(), path, strerror(errno));
      g_failed = 1;
    }
  }
}

double NowUs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * (v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

int CreateStat(const std::string& dir_a, const std::string& dir_b, long n) {
  std::vector<double> pair, stat_only;
  long misses = 0;
  char pa[4096], pb[4096];
  for (long i = 0; i < n; i++) {
    snprintf(pa, sizeof(pa), "%s/s%06ld", dir_a.c_str(), i);
    snprintf(pb, sizeof(pb), "%s/s%06ld", dir_b.c_str(), i);
    double t0 = NowUs();
    int fd = open(pa, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0 || close(fd) != 0) {
      fprintf(stderr, "metaops: create %s: %s\n", pa, strerror(errno));
      return 1;
    }
    double t1 = NowUs();
    struct stat st;
    int rc = lstat(pb, &st);
    double t2 = NowUs();
    if (rc != 0 && errno != ENOENT) {
      fprintf(stderr, "metaops: lstat %s: %s\n", pb, strerror(errno));
      return 1;
    }
    if (rc != 0 || !S_ISREG(st.st_mode) || st.st_size != 0) {
      if (misses++ < 5) {
        fprintf(stderr, "metaops: miss: %s %s\n", pb,
                rc != 0 ? "ENOENT" : "is not an empty regular file");
      }
    }
    pair.push_back(t2 - t0);
    stat_only.push_back(t2 - t1);
  }
  printf("n=%ld misses=%ld pair_p50_us=%.1f pair_p99_us=%.1f stat_p50_us=%.1f stat_p99_us=%.1f\n",
         n, misses, Percentile(pair, 0.5), Percentile(pair, 0.99), Percentile(stat_only, 0.5),
         Percentile(stat_only, 0.99));
  return 0;
}

int Usage() {
  fprintf(stderr,
          "usage: metaops create|stat|unlink DIR N THREADS [PREFIX]\n"
          "       metaops create-stat DIR_A DIR_B N\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return Usage();
  std::string op = argv[1];
  if (op == "create-stat") {
    if (argc != 5) return Usage();
    long n = atol(argv[4]);
    if (n < 1) {
      fprintf(stderr, "metaops: bad N\n");
      return 2;
    }
    return CreateStat(argv[2], argv[3], n);
  }
  if (argc != 5 && argc != 6) return Usage();
  if (op != "create" && op != "stat" && op != "unlink") {
    fprintf(stderr, "metaops: unknown op %s\n", op.c_str());
    return 2;
  }
  long n = atol(argv[3]);
  int threads = atoi(argv[4]);
  std::string prefix = argc == 6 ? argv[5] : "f";
  if (n < 0 || threads < 1 || threads > 256 || prefix.empty() || prefix.find('/') != prefix.npos) {
    fprintf(stderr, "metaops: bad N, THREADS or PREFIX\n");
    return 2;
  }
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; t++) {
    pool.emplace_back(Work, op, std::string(argv[2]), prefix, n, threads, t);
  }
  for (auto& th : pool) th.join();
  return g_failed ? 1 : 0;
}
