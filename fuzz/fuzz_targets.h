// The fuzz targets' bodies (docs/fuzzing.md): plain functions that libFuzzer's
// entry points (fuzz_main.cc) and the regression replay test both call. A
// bug found is a CHECK failure or a sanitizer report: the process dies.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cohfs::fuzz {

// protocol/frame.h: a byte stream split at fuzzed points.
void FuzzFrameReader(const uint8_t* data, size_t size);
// protocol/secure_channel.h: bytes as handshake messages or as records.
void FuzzSecureChannel(const uint8_t* data, size_t size);
// protocol/codec.h: bytes as a Request, Reply and Recall message.
void FuzzCodec(const uint8_t* data, size_t size);
// The dispatcher and commit path: fuzz/dispatch_fuzz.h (it needs a volume).

}  // namespace cohfs::fuzz
