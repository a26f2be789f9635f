// A TCP relay on loopback between clients and a server, for cutting the
// network under a mount: every connection through it can be broken at once
// (both ends see their stream end while requests are in flight), and new
// ones are relayed again. It can also keep a copy of what it forwards (to
// look for plaintext) and flip one bit of what a client sends (tampering).
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace cohfs::test {

class Relay {
 public:
  explicit Relay(int target_port);
  ~Relay();
  int port() const { return port_; }
  // Breaks every connection through the relay now; returns how many.
  int Cut();
  int connections_accepted() const { return accepted_; }
  // While refusing, new connections are closed at once (the network is down).
  void Refuse(bool refuse) { refuse_ = refuse; }
  // Everything forwarded either way since the relay started (capped at 256 MiB).
  std::string Captured();
  // Flips one bit in the next chunk a client sends once `after_bytes` of its
  // connection have gone by (once).
  void FlipOneBitAfter(uint64_t after_bytes);
  bool flipped() const { return flipped_; }

 private:
  struct Pair;
  void AcceptLoop();
  void Pump(Pair* p);
  // Copies what is readable on `from` to `to`; false when either end is done.
  bool CopyOnce(Pair* p, bool to_server);

  int target_port_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::atomic<bool> refuse_{false};
  std::atomic<int64_t> flip_after_{-1};  // -1: no flip wanted
  std::atomic<bool> flipped_{false};
  std::mutex capture_mu_;  // guards captured_
  std::string captured_;
  std::thread acceptor_;
  std::mutex mu_;  // guards pairs_
  std::vector<std::unique_ptr<Pair>> pairs_;
};

}  // namespace cohfs::test
