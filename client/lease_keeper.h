// LeaseKeeper: the client's side of its session lease (DESIGN §7). The server
// declares a client dead once it has heard nothing from it for a lease, so a
// client that has sent nothing for a third of the lease sends a `renew`; and a
// client that has heard nothing from the server for longer than the lease
// says so once (the server may have given its locks to others by then;
// reconnecting is a later step).
//
// Free of threads, sockets and clocks (time comes in as now_ms): RpcClient
// drives it from its network thread, and unit tests drive it alone.
#pragma once

#include <cstdint>

namespace cohfs {

class LeaseKeeper {
 public:
  // lease_ms 0 (a server that grants none): never renews, never warns.
  LeaseKeeper(int64_t lease_ms, int64_t now_ms);

  void OnSent(int64_t now_ms) { last_sent_ms_ = now_ms; }
  void OnHeard(int64_t now_ms);

  struct Step {
    bool renew = false;     // send a `renew` now (and report it with OnSent)
    bool silent = false;    // the server has just been silent past the lease
    bool back = false;      // the server is heard again after such a silence
    int64_t silent_ms = 0;  // since it was last heard from
  };
  Step Tick(int64_t now_ms);

  int64_t renew_after_ms() const { return lease_ms_ / 3; }

 private:
  int64_t lease_ms_;
  int64_t last_sent_ms_;
  int64_t last_heard_ms_;
  bool warned_ = false;  // silent past the lease, not heard since
  bool heard_back_ = false;
};

}  // namespace cohfs
