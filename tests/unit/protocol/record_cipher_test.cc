#include "protocol/record_cipher.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include <string>
#include <vector>

namespace cohfs {
namespace {

using Bytes = std::vector<unsigned char>;

Bytes Random(size_t n) {
  EXPECT_GE(sodium_init(), 0);
  Bytes b(n);
  randombytes_buf(b.data(), n);
  return b;
}

Bytes SodiumNonce(uint64_t seq) {
  Bytes n(crypto_aead_chacha20poly1305_ietf_NPUBBYTES, 0);
  for (int i = 0; i < 8; i++) n[i] = static_cast<unsigned char>(seq >> (8 * i));
  return n;
}

// What libsodium opens of a record sealed with `key`; empty if it refuses.
Bytes SodiumOpen(const Bytes& key, uint64_t seq, const Bytes& ct, const Bytes& tag,
                 const Bytes& aad) {
  Bytes m(ct.size());
  if (crypto_aead_chacha20poly1305_ietf_decrypt_detached(m.data(), nullptr, ct.data(), ct.size(),
                                                         tag.data(), aad.data(), aad.size(),
                                                         SodiumNonce(seq).data(), key.data()) != 0)
    return {};
  return m;
}

struct Pair {
  Bytes send_key = Random(RecordCipher::kKeyBytes);
  Bytes recv_key = Random(RecordCipher::kKeyBytes);
  RecordCipher cipher;
  Pair() { cipher.SetKeys(send_key.data(), recv_key.data()); }
};

// The records are libsodium's ChaCha20-Poly1305-IETF exactly, so the wire
// format did not change when the implementation moved to OpenSSL.
TEST(RecordCipher, SealsWhatLibsodiumOpens) {
  Pair p;
  Bytes aad = Random(4), msg = Random(65536), out(msg.size()), tag(RecordCipher::kTagBytes);
  p.cipher.Seal(7, aad.data(), aad.size(), msg.data(), msg.size(), out.data(), tag.data());
  EXPECT_NE(out, msg);
  EXPECT_EQ(SodiumOpen(p.send_key, 7, out, tag, aad), msg);
}

TEST(RecordCipher, OpensWhatLibsodiumSealsAndNothingElse) {
  Pair p;
  Bytes aad = Random(4), msg = Random(1000), ct(msg.size()), tag(RecordCipher::kTagBytes);
  crypto_aead_chacha20poly1305_ietf_encrypt_detached(ct.data(), tag.data(), nullptr, msg.data(),
                                                     msg.size(), aad.data(), aad.size(), nullptr,
                                                     SodiumNonce(3).data(), p.recv_key.data());
  Bytes out(msg.size());
  ASSERT_TRUE(
      p.cipher.Open(3, aad.data(), aad.size(), ct.data(), ct.size(), tag.data(), out.data()));
  EXPECT_EQ(out, msg);
  // Another sequence number, a flipped bit of ciphertext, tag or aad: refused.
  EXPECT_FALSE(
      p.cipher.Open(4, aad.data(), aad.size(), ct.data(), ct.size(), tag.data(), out.data()));
  for (Bytes* b : {&ct, &tag, &aad}) {
    (*b)[0] ^= 1;
    EXPECT_FALSE(
        p.cipher.Open(3, aad.data(), aad.size(), ct.data(), ct.size(), tag.data(), out.data()));
    (*b)[0] ^= 1;
  }
  // Still opens after the refusals: a failed open leaves the context usable.
  EXPECT_TRUE(
      p.cipher.Open(3, aad.data(), aad.size(), ct.data(), ct.size(), tag.data(), out.data()));
}

TEST(RecordCipher, SealsInPlace) {
  Pair p;
  Bytes aad = Random(4), msg = Random(4096), buf = msg, tag(RecordCipher::kTagBytes);
  p.cipher.Seal(0, aad.data(), aad.size(), buf.data(), buf.size(), buf.data(), tag.data());
  EXPECT_EQ(SodiumOpen(p.send_key, 0, buf, tag, aad), msg);
}

}  // namespace
}  // namespace cohfs
