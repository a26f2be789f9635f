// FuzzInput: reads typed values off the front of a fuzz input. Past the end
// every read is zero (or empty), so any input is a complete, valid script.
// (libFuzzer's FuzzedDataProvider does the same, but ships with clang only;
// the regression replays build with gcc.)
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

namespace cohfs::fuzz {

class FuzzInput {
 public:
  FuzzInput(const uint8_t* data, size_t size) : p_(data), left_(size) {}

  bool empty() const { return left_ == 0; }
  size_t remaining() const { return left_; }

  template <typename T>
  T Int() {
    T v = 0;
    for (size_t i = 0; i < sizeof(T) && left_ > 0; i++, left_--) {
      v = static_cast<T>(v | static_cast<T>(static_cast<T>(*p_++) << (8 * i)));
    }
    return v;
  }
  uint8_t U8() { return Int<uint8_t>(); }
  bool Bool() { return (U8() & 1) != 0; }
  // A value in [0, n), n > 0.
  uint32_t Below(uint32_t n) { return n <= 256 ? U8() % n : Int<uint32_t>() % n; }
  // Up to `max` bytes, the length first.
  std::string Bytes(size_t max) {
    size_t n = std::min<size_t>(Int<uint16_t>() % (max + 1), left_);
    std::string s(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    left_ -= n;
    return s;
  }

 private:
  const uint8_t* p_;
  size_t left_;
};

}  // namespace cohfs::fuzz
