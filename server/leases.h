// Leases (DESIGN §7): when each client connection was last heard from, and
// which have stayed silent past their lease. Any bytes from a client renew
// its lease (its requests, its releases, or a `renew` when it has nothing
// else to send); a client silent for longer than the lease is declared dead
// and its connection is closed, which ends its session as a disconnect does.
// So a client that stops answering recalls because its daemon is stopped or
// its machine is gone blocks other clients for about one lease, not forever.
//
// Free of threads, sockets and clocks (time comes in as now_ms): the reactor
// drives it on its thread, and unit tests drive it alone.
#pragma once

#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <vector>

namespace cohfs {

using ConnectionId = uint64_t;  // the reactor's (server/reactor.h)

class Leases {
 public:
  explicit Leases(int64_t lease_ms);

  // A connection was accepted or sent something: its lease runs from now.
  void Renew(ConnectionId conn, int64_t now_ms);
  // The connection closed for another reason: nothing more to watch.
  void Forget(ConnectionId conn);

  struct Expiry {
    ConnectionId conn = 0;
    int64_t silent_ms = 0;  // since it was last heard from
  };
  // Connections silent for longer than the lease, each reported once (it is
  // forgotten here; the caller closes it).
  std::vector<Expiry> TakeExpired(int64_t now_ms);

  int64_t lease_ms() const { return lease_ms_; }
  // How often the owner should call TakeExpired: a connection is then closed
  // at most about an eighth of a lease after it ran out.
  int64_t check_interval_ms() const;
  size_t size() const { return last_heard_ms_.size(); }

 private:
  int64_t lease_ms_;
  std::unordered_map<ConnectionId, int64_t> last_heard_ms_;
};

}  // namespace cohfs
