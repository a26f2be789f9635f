#include "tests/integration/tree_compare.h"

#include <fcntl.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>

namespace cohfs::test {
namespace {

struct Node {
  struct stat st;
  std::string target;   // symlink
  uint64_t hash = 0;    // content (FNV-1a)
};

uint64_t HashFile(const std::string& path) {
  uint64_t h = 1469598103934665603ull;
  int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) return 0;
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) {
    for (ssize_t i = 0; i < n; i++) h = (h ^ static_cast<uint8_t>(buf[i])) * 1099511628211ull;
  }
  close(fd);
  return h;
}

std::map<std::string, Node> Walk(const std::string& root) {
  std::map<std::string, Node> out;
  std::vector<std::string> stack = {""};
  while (!stack.empty()) {
    std::string rel = stack.back();
    stack.pop_back();
    std::string path = root + rel;
    Node n;
    if (lstat(path.c_str(), &n.st) != 0) continue;
    if (S_ISLNK(n.st.st_mode)) {
      char buf[4096];
      ssize_t len = readlink(path.c_str(), buf, sizeof(buf));
      if (len > 0) n.target.assign(buf, static_cast<size_t>(len));
    } else if (S_ISREG(n.st.st_mode)) {
      n.hash = HashFile(path);
    } else if (S_ISDIR(n.st.st_mode)) {
      if (auto* d = opendir(path.c_str())) {
        while (auto* e = readdir(d)) {
          std::string name = e->d_name;
          if (name != "." && name != "..") stack.push_back(rel + "/" + name);
        }
        closedir(d);
      }
    }
    out[rel.empty() ? "." : rel] = n;
  }
  return out;
}

}  // namespace

std::vector<std::string> CompareTrees(const std::string& a, const std::string& b) {
  auto ta = Walk(a), tb = Walk(b);
  std::vector<std::string> diffs;
  auto diff = [&](const std::string& path, const std::string& what) {
    if (diffs.size() < 50) diffs.push_back(path + ": " + what);
  };
  // Hard links: map each tree's inode to the first path naming it.
  std::map<ino_t, std::string> first_a, first_b;
  for (auto& [path, na] : ta) {
    auto it = tb.find(path);
    if (it == tb.end()) {
      diff(path, "missing in second tree");
      continue;
    }
    const Node& nb = it->second;
    if ((na.st.st_mode & S_IFMT) != (nb.st.st_mode & S_IFMT)) diff(path, "type differs");
    if ((na.st.st_mode & 07777) != (nb.st.st_mode & 07777)) diff(path, "mode differs");
    if (na.st.st_uid != nb.st.st_uid || na.st.st_gid != nb.st.st_gid) diff(path, "owner differs");
    if (!S_ISDIR(na.st.st_mode) && na.st.st_size != nb.st.st_size) diff(path, "size differs");
    if (!S_ISDIR(na.st.st_mode) && !S_ISLNK(na.st.st_mode) && na.st.st_nlink != nb.st.st_nlink) {
      diff(path, "nlink differs");
    }
    if (path != "." && !S_ISLNK(na.st.st_mode) && na.st.st_mtim.tv_sec != nb.st.st_mtim.tv_sec) {
      diff(path, "mtime differs");
    }
    if (na.hash != nb.hash) diff(path, "content differs");
    if (na.target != nb.target) diff(path, "symlink target differs");
    if (S_ISREG(na.st.st_mode) && na.st.st_nlink > 1) {
      auto fa = first_a.emplace(na.st.st_ino, path).first->second;
      auto fb = first_b.emplace(nb.st.st_ino, path).first->second;
      if (fa != fb) diff(path, "hard-link grouping differs (" + fa + " vs " + fb + ")");
    }
  }
  for (auto& [path, nb] : tb) {
    if (!ta.count(path)) diff(path, "extra in second tree");
  }
  return diffs;
}

}  // namespace cohfs::test
