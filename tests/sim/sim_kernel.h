// SimKernel: the kernel's caches of one mount, as far as coherency goes, and
// the KernelCache the client core invalidates them through. The simulation's
// FUSE replies fill it the way the kernel would (attributes while the reply's
// attr timeout is not zero, a name while its entry timeout is not, pages a
// read brought in under a lock, nlookup per reply that gave an entry); the
// simulation's applications read through it first, as processes do, so a
// cache that outlives its lock shows up as a stale read.
#pragma once

#include <map>
#include <string>
#include <utility>

#include "client/fs_client.h"

namespace cohfs::sim {

class SimKernel : public KernelCache {
 public:
  void InvalInode(InodeId ino) override {
    attrs.erase(ino);
    pages.erase(ino);
  }
  void InvalEntry(InodeId dir, const std::string& name) override { entries.erase({dir, name}); }

  // A reply's attributes replace the kernel's; with a zero attr timeout (no
  // lock) they expire at once, so nothing stays cached.
  void TakeAttr(const Attr& attr, LockMode lock) {
    if (lock == LockMode::kNone) {
      attrs.erase(attr.ino);
    } else {
      attrs[attr.ino] = attr;
    }
  }
  // The kernel evicts an inode it no longer needs: its name, attributes and
  // pages go; the number of lookups it held is returned (for the forget).
  uint64_t Evict(InodeId ino) {
    for (auto it = entries.begin(); it != entries.end();) {
      it = it->second == ino ? entries.erase(it) : std::next(it);
    }
    InvalInode(ino);
    uint64_t n = nlookup[ino];
    nlookup.erase(ino);
    return n;
  }
  // Whether anything the kernel keeps depends on a lock of `ino`: its
  // attributes, its pages, or names (positive or negative) in it.
  bool CachesUnder(InodeId ino) const {
    if (attrs.count(ino) || pages.count(ino)) return true;
    auto it = entries.lower_bound({ino, std::string()});
    return it != entries.end() && it->first.first == ino;
  }

  std::map<InodeId, Attr> attrs;
  std::map<InodeId, std::string> pages;                        // the whole file's content
  std::map<std::pair<InodeId, std::string>, InodeId> entries;  // invalid InodeId: negative
  std::map<InodeId, uint64_t> nlookup;
};

}  // namespace cohfs::sim
