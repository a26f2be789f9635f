// Requests built from fuzz input for the dispatcher target: every kind, with
// inode numbers, names and callers drawn mostly from what the server has
// shown (so they meet real objects) and sometimes raw (hostile values).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fuzz/fuzz_input.h"
#include "protocol/cohfs.capnp.h"

namespace cohfs::fuzz {

// What a request may name: inodes seen in replies, the sender's inode range
// and another client's.
struct Known {
  std::vector<uint64_t> inodes;
  uint64_t own_first = 0;
  uint64_t other_first = 0;
};

class RequestBuilder {
 public:
  RequestBuilder(FuzzInput& in, const Known& known) : in_(in), known_(known) {}

  // Any request but a hello; `bulk` gets a write's data.
  void Fill(wire::Request::Builder r, std::string* bulk);
  // One change of a commit (now and then one a commit may not carry).
  void FillChange(wire::Request::Builder r);

 private:
  bool FillNamespace(wire::Request::Builder r, uint32_t kind);
  void FillCreate(wire::Request::Builder r, uint32_t kind);
  void FillXattr(wire::Request::Builder r, bool remove);
  bool FillData(wire::Request::Builder r, uint32_t kind, std::string* bulk);
  bool FillSession(wire::Request::Builder r, uint32_t kind);
  void FillCommit(wire::Request::Builder r);
  void FillLock(wire::FileLock::Builder l);
  void FillInodes(capnp::List<uint64_t>::Builder list);

  uint64_t Ino();
  uint64_t NewIno();
  std::string Name();
  uint32_t Mode();
  uint64_t Offset();
  int64_t NowNs();
  void Caller(wire::Caller::Builder c);

  FuzzInput& in_;
  const Known& known_;
};

}  // namespace cohfs::fuzz
