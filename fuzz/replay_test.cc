// Replays every committed input of each fuzz target: the seeds in
// fuzz/corpus/<target>/ and the crashes found, fuzz/regressions/<target>/
// (docs/fuzzing.md). A regression that comes back kills this test.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz/dispatch_fuzz.h"
#include "fuzz/fuzz_targets.h"

namespace cohfs::fuzz {
namespace {

std::vector<std::string> Inputs(const std::string& target) {
  std::vector<std::string> out;
  for (const char* kind : {"corpus", "regressions"}) {
    std::filesystem::path dir = std::filesystem::path(COHFS_FUZZ_DIR) / kind / target;
    if (!std::filesystem::is_directory(dir)) continue;
    for (const auto& e : std::filesystem::directory_iterator(dir)) out.push_back(e.path());
  }
  return out;
}

template <typename F>
void ReplayAll(const std::string& target, F&& run) {
  std::vector<std::string> inputs = Inputs(target);
  EXPECT_FALSE(inputs.empty()) << "no seeds for " << target;
  for (const std::string& path : inputs) {
    SCOPED_TRACE(path);
    std::ifstream f(path, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    run(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  }
}

TEST(FuzzReplay, FrameReader) { ReplayAll("frame_reader", FuzzFrameReader); }

TEST(FuzzReplay, SecureChannel) { ReplayAll("secure_channel", FuzzSecureChannel); }

TEST(FuzzReplay, Codec) { ReplayAll("codec", FuzzCodec); }

TEST(FuzzReplay, Dispatch) {
  DispatchFuzzer fuzzer("/var/tmp");
  ReplayAll("dispatch", [&](const uint8_t* data, size_t size) { fuzzer.Run(data, size); });
}

}  // namespace
}  // namespace cohfs::fuzz
