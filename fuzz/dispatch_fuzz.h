// DispatchFuzzer: scripts from fuzz input run against the real server core
// (Scheduler, Dispatcher with its commit path, LockManager, FileSystem) on a
// real volume: a sparse image file and its RocksDB store in a temporary
// directory, made once and reused by every run.
//
// A run is three connections' requests (built by fuzz_requests.h, or raw
// message bytes), closes, reconnects that resume sessions, clock ticks and
// server restarts, fed through Scheduler::OnRequest as the executor feeds
// it. Checked: every frame the server sends decodes; no EXCLUSIVE lock has a
// second holder. At the end of a run every session ends, the tree is emptied
// through FileSystem (so each run starts from the same state), and fsck must
// find the volume clean; any failure is a CHECK (abort).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "server/file_system.h"
#include "storage/volume.h"

namespace cohfs::fuzz {

class DispatchFuzzer {
 public:
  // Formats a new volume in a fresh directory under `parent` (removed with
  // this object). CHECKs that it worked.
  explicit DispatchFuzzer(const std::string& parent);
  ~DispatchFuzzer();
  DispatchFuzzer(const DispatchFuzzer&) = delete;
  DispatchFuzzer& operator=(const DispatchFuzzer&) = delete;

  void Run(const uint8_t* data, size_t size);

 private:
  void NewVolume();
  // Leaves the volume as formatted (but for inode numbers and layout), then fscks it.
  void Reset();

  std::string dir_;
  std::unique_ptr<Volume> volume_;
  std::unique_ptr<FileSystem> fs_;
  uint64_t runs_ = 0;
};

}  // namespace cohfs::fuzz
