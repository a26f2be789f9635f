#include "protocol/record_cipher.h"

#include <openssl/evp.h>

#include <climits>
#include <cstring>

#include "common/status.h"

namespace cohfs {
namespace {

constexpr size_t kNonceBytes = 12;

void Nonce(uint64_t seq, unsigned char out[kNonceBytes]) {
  std::memset(out, 0, kNonceBytes);
  for (int i = 0; i < 8; i++) out[i] = static_cast<unsigned char>(seq >> (8 * i));
}

int Len(size_t n) {
  CHECK(n <= INT_MAX);
  return static_cast<int>(n);
}

}  // namespace

RecordCipher::RecordCipher() : seal_(EVP_CIPHER_CTX_new()), open_(EVP_CIPHER_CTX_new()) {
  CHECK(seal_ && open_);
}

RecordCipher::~RecordCipher() {
  EVP_CIPHER_CTX_free(seal_);
  EVP_CIPHER_CTX_free(open_);
}

void RecordCipher::SetKeys(const unsigned char send_key[kKeyBytes],
                           const unsigned char recv_key[kKeyBytes]) {
  CHECK(EVP_EncryptInit_ex(seal_, EVP_chacha20_poly1305(), nullptr, send_key, nullptr) == 1);
  CHECK(EVP_DecryptInit_ex(open_, EVP_chacha20_poly1305(), nullptr, recv_key, nullptr) == 1);
}

void RecordCipher::Seal(uint64_t seq, const unsigned char* aad, size_t aad_bytes,
                        const unsigned char* src, size_t n, unsigned char* out,
                        unsigned char tag[kTagBytes]) {
  unsigned char nonce[kNonceBytes];
  Nonce(seq, nonce);
  int len = 0;
  CHECK(EVP_EncryptInit_ex(seal_, nullptr, nullptr, nullptr, nonce) == 1);
  CHECK(EVP_EncryptUpdate(seal_, nullptr, &len, aad, Len(aad_bytes)) == 1);
  CHECK(EVP_EncryptUpdate(seal_, out, &len, src, Len(n)) == 1);
  CHECK(EVP_EncryptFinal_ex(seal_, out + len, &len) == 1);
  CHECK(EVP_CIPHER_CTX_ctrl(seal_, EVP_CTRL_AEAD_GET_TAG, kTagBytes, tag) == 1);
}

bool RecordCipher::Open(uint64_t seq, const unsigned char* aad, size_t aad_bytes,
                        const unsigned char* src, size_t n, const unsigned char tag[kTagBytes],
                        unsigned char* out) {
  unsigned char nonce[kNonceBytes];
  Nonce(seq, nonce);
  int len = 0;
  CHECK(EVP_DecryptInit_ex(open_, nullptr, nullptr, nullptr, nonce) == 1);
  CHECK(EVP_CIPHER_CTX_ctrl(open_, EVP_CTRL_AEAD_SET_TAG, kTagBytes,
                            const_cast<unsigned char*>(tag)) == 1);
  if (EVP_DecryptUpdate(open_, nullptr, &len, aad, Len(aad_bytes)) != 1) return false;
  if (EVP_DecryptUpdate(open_, out, &len, src, Len(n)) != 1) return false;
  return EVP_DecryptFinal_ex(open_, out + len, &len) == 1;
}

}  // namespace cohfs
