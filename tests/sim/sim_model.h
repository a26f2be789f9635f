// The simulation's sequential model (sim_world.h): what each name and each
// object held, in the order the changes took effect (a local change when its
// core answered it, a change through the server when the server applied it).
// The namespace rules are the server's (server/file_system.cc), in its order,
// for what the simulation does (root caller, no permissions, no symlinks):
// each change returns the errno the server would give, and takes effect
// only when that is 0. Reads compare what they saw with the histories from
// where they stood when they began.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/fs_types.h"

namespace cohfs::sim {

constexpr uint64_t kStampBytes = 16;  // files are written in blocks of this size
constexpr int kBlocks = 6;

struct ModelObj {
  bool dir = false;
  InodeId parent;                                  // directories: where ".." points
  std::vector<uint32_t> modes;                     // permission bits
  std::vector<uint64_t> sizes;                     // bytes; a directory's: its entry count
  std::vector<uint32_t> nlinks;                    // link counts
  std::map<int, std::vector<std::string>> blocks;  // files: each block's contents
};

class Model {
 public:
  // Names the simulation uses in `dir` (the root has more).
  static const std::vector<std::string>& NamesIn(InodeId dir);

  // An object as the server has it when the simulation starts.
  void AddObject(const Attr& a, InodeId parent);
  void AddName(InodeId dir, const std::string& name, InodeId child);

  // Changes (errno 0: it took effect now).
  int Make(InodeId dir, const std::string& name, InodeId ino, bool is_dir);
  int Remove(InodeId dir, const std::string& name, bool want_dir);
  int Rename(InodeId dir, const std::string& name, InodeId new_dir, const std::string& new_name,
             uint32_t flags);
  int Link(InodeId ino, InodeId new_dir, const std::string& new_name);
  void Truncate(InodeId ino, uint64_t size);
  void Write(InodeId ino, int block, const std::string& data);
  void Chmod(InodeId ino, uint32_t mode);

  // The present.
  InodeId Name(InodeId dir, const std::string& name) const;
  const std::vector<InodeId>& History(InodeId dir, const std::string& name);
  bool Has(InodeId ino) const { return objs_.count(ino) != 0; }
  ModelObj& Obj(InodeId ino) { return objs_.at(ino); }
  const std::map<InodeId, ModelObj>& objs() const { return objs_; }
  const std::map<std::pair<InodeId, std::string>, std::vector<InodeId>>& names() const {
    return names_;
  }

 private:
  template <typename T>
  static void Push(std::vector<T>& h, T v) {
    if (h.empty() || h.back() != v) h.push_back(v);
  }
  void Put(InodeId dir, const std::string& name, InodeId child);  // invalid child: no name
  void Count(InodeId dir, int entries, int links);
  void DropLink(InodeId ino);
  bool Below(InodeId dir, InodeId ancestor) const;

  std::map<std::pair<InodeId, std::string>, std::vector<InodeId>> names_;
  std::map<InodeId, ModelObj> objs_;
};

}  // namespace cohfs::sim
