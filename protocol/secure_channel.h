// SecureChannel: one connection's mutual authentication and encryption
// (docs/wire-protocol.md "Secure channel", docs/security.md). Both ends hold
// a pre-shared key (ChannelKey); the handshake is an ephemeral X25519 key
// exchange whose transcript each side MACs with that key, so each proves it
// holds the key before anything else is read; every byte after it travels in
// ChaCha20-Poly1305 records (RecordCipher) with per-direction keys and
// counter nonces, so a record tampered with, replayed, reordered, dropped or
// taken from another connection fails to open and the connection closes.
//
// The channel owns the receive buffer of ciphertext (kRecvBufferBytes,
// fixed): the owner receives into RecvTail() and moves plaintext out with
// Open() into its FrameReader, as much as the reader has room for — so the
// plaintext stays within the reader's budget and what waits here is bounded.
// Only libsodium primitives; no state shared between connections.
// Owner: the thread that does the connection's I/O (one thread at a time).
#pragma once

#include <sodium.h>

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "protocol/channel_key.h"
#include "protocol/frame.h"
#include "protocol/record_cipher.h"

namespace cohfs {

// One frame as it goes on the wire: as encoded (no channel) or sealed into
// records (or raw handshake bytes).
struct WireFrame {
  std::shared_ptr<const OutFrame> plain;
  std::string bytes;  // when !plain

  size_t total_bytes() const { return plain ? plain->total_bytes() : bytes.size(); }
  // Appends its (up to 3) iovecs, skipping the first `skip` bytes.
  void AppendIovecs(size_t skip, std::vector<iovec>* out) const;
};

class SecureChannel {
 public:
  enum class Role { kClient, kServer };

  // Record: u32 plaintext length, the ciphertext, a 16-byte tag.
  static constexpr size_t kMaxRecordBytes = 64 * 1024;  // plaintext in one record
  static constexpr size_t kRecordHeaderBytes = 4;
  static constexpr size_t kTagBytes = RecordCipher::kTagBytes;
  static constexpr size_t kMaxRecordWireBytes = kRecordHeaderBytes + kMaxRecordBytes + kTagBytes;
  static constexpr size_t kRecvBufferBytes = 2 * kMaxRecordWireBytes;
  // Handshake messages (docs/wire-protocol.md).
  static constexpr size_t kClientHelloBytes = 8 + crypto_kx_PUBLICKEYBYTES;
  static constexpr size_t kProofBytes = 32;
  static constexpr size_t kServerHelloBytes = 8 + crypto_kx_PUBLICKEYBYTES + kProofBytes;
  static constexpr size_t kClientFinishBytes = kProofBytes;

  SecureChannel(Role role, const ChannelKey& key);
  ~SecureChannel();
  SecureChannel(const SecureChannel&) = delete;
  SecureChannel& operator=(const SecureChannel&) = delete;

  // Client: the ClientHello, to send first.
  std::string Begin();
  // Takes the handshake messages at the front of what was received and
  // appends what to send in answer to *reply. EACCES: the peer does not hold
  // the key; EPROTO: not a handshake message.
  Status Handshake(std::string* reply);
  bool established() const { return state_ == State::kEstablished; }

  // Where to receive ciphertext; non-empty unless has_plaintext().
  char* RecvTail(size_t* available);
  void CommitReceived(size_t bytes);
  size_t buffered_bytes() const { return end_ - begin_ + plain_left_; }
  // Established, and a whole record (or an opened one's rest) is waiting.
  bool has_plaintext() const;
  // Moves up to `available` plaintext bytes into dst, opening records as it
  // goes (straight into dst when the record fits). The bytes moved, or EPROTO
  // for a record that does not open.
  Result<size_t> Open(char* dst, size_t available);

  // The frame as records (established only).
  WireFrame Seal(const OutFrame& frame);

 private:
  enum class State {
    kClientStart,
    kClientWaitHello,
    kServerWaitHello,
    kServerWaitFinish,
    kEstablished
  };
  Status OnClientHello(std::string* reply);
  Status OnServerHello(std::string* reply);
  Status OnClientFinish();
  void Proof(const char* label, unsigned char out[kProofBytes]) const;
  // The record keys from the kx session keys; wipes what derived them.
  void DeriveKeys();
  void SealPart(const char* src, size_t n, char* out);

  Role role_;
  State state_;
  ChannelKey psk_;
  unsigned char pk_[crypto_kx_PUBLICKEYBYTES];
  unsigned char sk_[crypto_kx_SECRETKEYBYTES];
  std::string transcript_;                           // ClientHello, then ServerHello
  unsigned char kx_c2s_[crypto_kx_SESSIONKEYBYTES];  // until established
  unsigned char kx_s2c_[crypto_kx_SESSIONKEYBYTES];
  RecordCipher cipher_;    // keyed when established
  uint64_t send_seq_ = 0;  // the nonce of the next record each way
  uint64_t recv_seq_ = 0;

  std::unique_ptr<char[]> buf_;  // kRecvBufferBytes of received bytes
  size_t begin_ = 0;             // the next byte not taken
  size_t end_ = 0;
  size_t plain_at_ = 0;  // an opened record's plaintext not yet moved out
  size_t plain_left_ = 0;
};

// `frame` as `channel` sends it (as it is when there is no channel).
WireFrame ToWire(SecureChannel* channel, std::shared_ptr<const OutFrame> frame);

}  // namespace cohfs
