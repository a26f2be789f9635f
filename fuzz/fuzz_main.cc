// libFuzzer's entry points for one target, chosen when it is compiled
// (fuzz/CMakeLists.txt defines COHFS_FUZZ_<TARGET>).
#include <sys/stat.h>

#include <cstdlib>
#include <memory>

#include "common/log.h"
#include "fuzz/dispatch_fuzz.h"
#include "fuzz/fuzz_targets.h"

#if defined(COHFS_FUZZ_DISPATCH)
namespace {
// libFuzzer's C entry points carry no context: the volume lives here, made
// once per process (a fresh one per input would cost a RocksDB open each).
std::unique_ptr<cohfs::fuzz::DispatchFuzzer> dispatch_fuzzer;
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  cohfs::SetLogLevel(cohfs::LogLevel::kError);  // sessions come and go by the thousand
  struct stat st;
  bool shm = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode);  // fsyncs cost nothing there
  dispatch_fuzzer = std::make_unique<cohfs::fuzz::DispatchFuzzer>(shm ? "/dev/shm" : "/var/tmp");
  // Gone before RocksDB's own statics (registered while the volume opened).
  atexit([] { dispatch_fuzzer.reset(); });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  dispatch_fuzzer->Run(data, size);
  return 0;
}
#else
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
#if defined(COHFS_FUZZ_FRAME_READER)
  cohfs::fuzz::FuzzFrameReader(data, size);
#elif defined(COHFS_FUZZ_SECURE_CHANNEL)
  cohfs::fuzz::FuzzSecureChannel(data, size);
#elif defined(COHFS_FUZZ_CODEC)
  cohfs::fuzz::FuzzCodec(data, size);
#else
#error "no fuzz target chosen"
#endif
  return 0;
}
#endif
