// A TCP relay on loopback between clients and a server, for cutting the
// network under a mount: every connection through it can be broken at once
// (both ends see their stream end while requests are in flight), and new
// ones are relayed again.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
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

 private:
  struct Pair;
  void AcceptLoop();
  static void Pump(Pair* p, std::atomic<bool>* stop);

  int target_port_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::atomic<bool> refuse_{false};
  std::thread acceptor_;
  std::mutex mu_;  // guards pairs_
  std::vector<std::unique_ptr<Pair>> pairs_;
};

}  // namespace cohfs::test
