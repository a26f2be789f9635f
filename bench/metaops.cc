// metaops: metadata operations on many files in one directory, from T threads.
//
//   metaops create|stat|unlink DIR N THREADS
//
// Files are DIR/f000000 .. DIR/f{N-1}; thread t handles the files whose index is
// t modulo THREADS. create = open(O_CREAT|O_EXCL|O_WRONLY, 0644) + close (an empty
// file), stat = lstat, unlink = unlink. Exits 1 with a message on the first error.

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace {

std::atomic<int> g_failed{0};

void Work(const std::string& op, const std::string& dir, long n, int threads, int t) {
  char path[4096];
  for (long i = t; i < n && g_failed.load(std::memory_order_relaxed) == 0; i += threads) {
    snprintf(path, sizeof(path), "%s/f%06ld", dir.c_str(), i);
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

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: metaops create|stat|unlink DIR N THREADS\n");
    return 2;
  }
  std::string op = argv[1];
  if (op != "create" && op != "stat" && op != "unlink") {
    fprintf(stderr, "metaops: unknown op %s\n", op.c_str());
    return 2;
  }
  long n = atol(argv[3]);
  int threads = atoi(argv[4]);
  if (n < 0 || threads < 1 || threads > 256) {
    fprintf(stderr, "metaops: bad N or THREADS\n");
    return 2;
  }
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; t++) pool.emplace_back(Work, op, std::string(argv[2]), n, threads, t);
  for (auto& th : pool) th.join();
  return g_failed ? 1 : 0;
}
