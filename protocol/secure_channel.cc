#include "protocol/secure_channel.h"

#include <algorithm>
#include <cstring>

namespace cohfs {
namespace {

// Handshake messages start "CHSC", a version and a type; cohfs frames start
// "CHFS", so neither end can take one for the other.
constexpr char kMagic[4] = {'C', 'H', 'S', 'C'};
constexpr uint8_t kVersion = 1;
constexpr uint8_t kTypeClientHello = 1;
constexpr uint8_t kTypeServerHello = 2;
constexpr size_t kPreambleBytes = 8;
static_assert(kPreambleBytes + crypto_kx_PUBLICKEYBYTES == SecureChannel::kClientHelloBytes);
static_assert(SecureChannel::kRecvBufferBytes >= SecureChannel::kServerHelloBytes);
static_assert(crypto_generichash_KEYBYTES == kChannelKeyBytes);
static_assert(crypto_generichash_BYTES == SecureChannel::kProofBytes);
static_assert(crypto_kx_SESSIONKEYBYTES == RecordCipher::kKeyBytes);

std::string Preamble(uint8_t type) {
  std::string p(kMagic, sizeof(kMagic));
  p += static_cast<char>(kVersion);
  p += static_cast<char>(type);
  p.append(2, '\0');
  return p;
}

void Put32(unsigned char* p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = static_cast<unsigned char>(v >> (8 * i));
}
uint32_t Get32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) v |= uint32_t(uint8_t(p[i])) << (8 * i);
  return v;
}

unsigned char* U(char* p) { return reinterpret_cast<unsigned char*>(p); }
const unsigned char* U(const char* p) { return reinterpret_cast<const unsigned char*>(p); }

}  // namespace

void WireFrame::AppendIovecs(size_t skip, std::vector<iovec>* out) const {
  if (plain) return plain->AppendIovecs(skip, out);
  if (skip < bytes.size())
    out->push_back(iovec{const_cast<char*>(bytes.data()) + skip, bytes.size() - skip});
}

WireFrame ToWire(SecureChannel* channel, std::shared_ptr<const OutFrame> frame) {
  if (channel) return channel->Seal(*frame);
  return WireFrame{std::move(frame), {}};
}

SecureChannel::SecureChannel(Role role, const ChannelKey& key)
    : role_(role),
      state_(role == Role::kClient ? State::kClientStart : State::kServerWaitHello),
      psk_(key),
      buf_(std::make_unique_for_overwrite<char[]>(kRecvBufferBytes)) {
  CHECK(sodium_init() >= 0);
  crypto_kx_keypair(pk_, sk_);
}

SecureChannel::~SecureChannel() {
  sodium_memzero(sk_, sizeof(sk_));
  sodium_memzero(kx_c2s_, sizeof(kx_c2s_));
  sodium_memzero(kx_s2c_, sizeof(kx_s2c_));
  sodium_memzero(buf_.get(), end_);
}

std::string SecureChannel::Begin() {
  CHECK(state_ == State::kClientStart);
  transcript_ = Preamble(kTypeClientHello) + std::string(reinterpret_cast<char*>(pk_), sizeof(pk_));
  state_ = State::kClientWaitHello;
  return transcript_;
}

// BLAKE2b keyed with the pre-shared key over a label naming the prover, the
// transcript so far and both kx session keys: a proof is bound to this
// connection's hellos and key exchange, and the server's never passes as
// the client's.
void SecureChannel::Proof(const char* label, unsigned char out[kProofBytes]) const {
  crypto_generichash_state st;
  crypto_generichash_init(&st, psk_.bytes.data(), psk_.bytes.size(), kProofBytes);
  crypto_generichash_update(&st, U(label), std::strlen(label) + 1);
  crypto_generichash_update(&st, U(transcript_.data()), transcript_.size());
  crypto_generichash_update(&st, kx_c2s_, sizeof(kx_c2s_));
  crypto_generichash_update(&st, kx_s2c_, sizeof(kx_s2c_));
  crypto_generichash_final(&st, out, kProofBytes);
}

// Each direction's record key mixes its kx session key (forward secrecy)
// with the pre-shared key and the transcript.
void SecureChannel::DeriveKeys() {
  auto derive = [&](const char* label, const unsigned char* kx, unsigned char* out) {
    crypto_generichash_state st;
    crypto_generichash_init(&st, psk_.bytes.data(), psk_.bytes.size(), RecordCipher::kKeyBytes);
    crypto_generichash_update(&st, U(label), std::strlen(label) + 1);
    crypto_generichash_update(&st, kx, crypto_kx_SESSIONKEYBYTES);
    crypto_generichash_update(&st, U(transcript_.data()), transcript_.size());
    crypto_generichash_final(&st, out, RecordCipher::kKeyBytes);
  };
  unsigned char c2s[RecordCipher::kKeyBytes], s2c[RecordCipher::kKeyBytes];
  derive("cohfs c2s key v1", kx_c2s_, c2s);
  derive("cohfs s2c key v1", kx_s2c_, s2c);
  if (role_ == Role::kClient) {
    cipher_.SetKeys(c2s, s2c);
  } else {
    cipher_.SetKeys(s2c, c2s);
  }
  sodium_memzero(c2s, sizeof(c2s));
  sodium_memzero(s2c, sizeof(s2c));
  sodium_memzero(sk_, sizeof(sk_));
  sodium_memzero(kx_c2s_, sizeof(kx_c2s_));
  sodium_memzero(kx_s2c_, sizeof(kx_s2c_));
  transcript_.clear();
  state_ = State::kEstablished;
}

Status SecureChannel::Handshake(std::string* reply) {
  while (!established()) {
    size_t want = state_ == State::kServerWaitHello    ? kClientHelloBytes
                  : state_ == State::kClientWaitHello  ? kServerHelloBytes
                  : state_ == State::kServerWaitFinish ? kClientFinishBytes
                                                       : 0;
    CHECK_MSG(want > 0, "Handshake() before Begin()");
    if (end_ - begin_ < want) return Status::Ok();
    Status st = state_ == State::kServerWaitHello   ? OnClientHello(reply)
                : state_ == State::kClientWaitHello ? OnServerHello(reply)
                                                    : OnClientFinish();
    begin_ += want;
    RETURN_IF_ERROR(st);
  }
  return Status::Ok();
}

Status SecureChannel::OnClientHello(std::string* reply) {
  const char* m = buf_.get() + begin_;
  if (std::memcmp(m, Preamble(kTypeClientHello).data(), kPreambleBytes) != 0) {
    return Status::Error(EPROTO, "not a cohfs secure handshake (a client without --key?)");
  }
  if (crypto_kx_server_session_keys(kx_c2s_, kx_s2c_, pk_, sk_, U(m + kPreambleBytes)) != 0) {
    return Status::Error(EPROTO, "bad client key-exchange key");
  }
  transcript_.assign(m, kClientHelloBytes);
  transcript_ += Preamble(kTypeServerHello);
  transcript_.append(reinterpret_cast<char*>(pk_), sizeof(pk_));
  unsigned char proof[kProofBytes];
  Proof("cohfs server proof v1", proof);
  transcript_.append(reinterpret_cast<char*>(proof), sizeof(proof));
  reply->append(transcript_, kClientHelloBytes, kServerHelloBytes);
  state_ = State::kServerWaitFinish;
  return Status::Ok();
}

Status SecureChannel::OnServerHello(std::string* reply) {
  const char* m = buf_.get() + begin_;
  if (std::memcmp(m, Preamble(kTypeServerHello).data(), kPreambleBytes) != 0) {
    return Status::Error(EPROTO, "the server's answer is not a cohfs secure handshake");
  }
  if (crypto_kx_client_session_keys(kx_s2c_, kx_c2s_, pk_, sk_, U(m + kPreambleBytes)) != 0) {
    return Status::Error(EPROTO, "bad server key-exchange key");
  }
  transcript_.append(m, kServerHelloBytes - kProofBytes);
  unsigned char expected[kProofBytes];
  Proof("cohfs server proof v1", expected);
  if (sodium_memcmp(expected, m + kServerHelloBytes - kProofBytes, kProofBytes) != 0) {
    return Status::Error(EACCES, "the server refused this client's key (wrong --key?)");
  }
  transcript_.append(m + kServerHelloBytes - kProofBytes, kProofBytes);
  unsigned char proof[kProofBytes];
  Proof("cohfs client proof v1", proof);
  reply->append(reinterpret_cast<char*>(proof), sizeof(proof));
  DeriveKeys();
  return Status::Ok();
}

Status SecureChannel::OnClientFinish() {
  unsigned char expected[kProofBytes];
  Proof("cohfs client proof v1", expected);
  if (sodium_memcmp(expected, buf_.get() + begin_, kProofBytes) != 0) {
    return Status::Error(EACCES, "the client does not hold the key (wrong --key?)");
  }
  DeriveKeys();
  return Status::Ok();
}

char* SecureChannel::RecvTail(size_t* available) {
  if (plain_left_ == 0 && begin_ > 0) {
    std::memmove(buf_.get(), buf_.get() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  *available = kRecvBufferBytes - end_;
  return buf_.get() + end_;
}

void SecureChannel::CommitReceived(size_t bytes) {
  CHECK(end_ + bytes <= kRecvBufferBytes);
  end_ += bytes;
}

bool SecureChannel::has_plaintext() const {
  if (!established()) return false;
  if (plain_left_ > 0) return true;
  size_t have = end_ - begin_;
  if (have < kRecordHeaderBytes) return false;
  size_t n = Get32(buf_.get() + begin_);
  // A bad length is reported by Open().
  return n == 0 || n > kMaxRecordBytes || have >= kRecordHeaderBytes + n + kTagBytes;
}

Result<size_t> SecureChannel::Open(char* dst, size_t available) {
  CHECK(established());
  size_t moved = 0;
  while (moved < available) {
    if (plain_left_ > 0) {
      size_t n = std::min(plain_left_, available - moved);
      std::memcpy(dst + moved, buf_.get() + plain_at_, n);
      moved += n;
      plain_at_ += n;
      plain_left_ -= n;
      continue;
    }
    size_t have = end_ - begin_;
    if (have < kRecordHeaderBytes) break;
    char* rec = buf_.get() + begin_;
    size_t n = Get32(rec);
    if (n == 0 || n > kMaxRecordBytes) return Status::Error(EPROTO, "bad record length");
    if (have < kRecordHeaderBytes + n + kTagBytes) break;
    char* c = rec + kRecordHeaderBytes;
    bool direct = available - moved >= n;  // else opened in place, moved out in parts
    char* m = direct ? dst + moved : c;
    if (!cipher_.Open(recv_seq_, U(rec), kRecordHeaderBytes, U(c), n, U(c + n), U(m))) {
      return Status::Error(EPROTO,
                           "a record failed authentication (tampered, replayed, "
                           "reordered or from another connection)");
    }
    recv_seq_++;
    begin_ += kRecordHeaderBytes + n + kTagBytes;
    if (direct) {
      moved += n;
    } else {
      plain_at_ = static_cast<size_t>(c - buf_.get());
      plain_left_ = n;
    }
  }
  if (plain_left_ == 0 && begin_ == end_) begin_ = end_ = 0;
  return moved;
}

// One record of `n` plaintext bytes from src, encrypted straight into `out`.
void SecureChannel::SealPart(const char* src, size_t n, char* out) {
  CHECK(n > 0 && n <= kMaxRecordBytes);
  Put32(U(out), static_cast<uint32_t>(n));
  CHECK_MSG(send_seq_ != UINT64_MAX, "record counter exhausted");
  cipher_.Seal(send_seq_++, U(out), kRecordHeaderBytes, U(src), n, U(out + kRecordHeaderBytes),
               U(out + kRecordHeaderBytes + n));
}

WireFrame SecureChannel::Seal(const OutFrame& frame) {
  CHECK(established());
  std::vector<iovec> parts;
  frame.AppendIovecs(0, &parts);
  size_t total = 0;
  for (const iovec& p : parts) {
    size_t records = (p.iov_len + kMaxRecordBytes - 1) / kMaxRecordBytes;
    total += p.iov_len + records * (kRecordHeaderBytes + kTagBytes);
  }
  WireFrame out;
  out.bytes.resize(total);
  char* o = out.bytes.data();
  for (const iovec& p : parts) {
    const char* src = static_cast<const char*>(p.iov_base);
    for (size_t off = 0; off < p.iov_len; off += kMaxRecordBytes) {
      size_t n = std::min(kMaxRecordBytes, p.iov_len - off);
      SealPart(src + off, n, o);
      o += kRecordHeaderBytes + n + kTagBytes;
    }
  }
  CHECK(o == out.bytes.data() + total);
  return out;
}

}  // namespace cohfs
