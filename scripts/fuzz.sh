#!/usr/bin/env bash
# Builds the libFuzzer targets with clang into build-fuzz/ (ASan, UBSan) and
# runs each over its corpus for N seconds (default 30): scripts/fuzz.sh [N].
# A crash leaves its input in build-fuzz/artifacts/ and fails the script;
# keep it as a regression in fuzz/regressions/<target>/ (docs/fuzzing.md).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
scripts/install-deps.sh
if ! command -v clang++ >/dev/null || ! dpkg-query -W -f='${Status}' libclang-rt-14-dev 2>/dev/null |
    grep -q "install ok installed"; then
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq clang libclang-rt-14-dev >/dev/null
fi
CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCOHFS_FUZZ=ON >/dev/null
cmake --build build-fuzz -j2 --target fuzz_frame_reader fuzz_secure_channel fuzz_codec fuzz_dispatch
mkdir -p build-fuzz/artifacts
for target in frame_reader secure_channel codec dispatch; do
  work=build-fuzz/corpus/$target  # what this run learns; the committed seeds stay as they are
  mkdir -p "$work"
  dirs=("$work")
  for d in "fuzz/corpus/$target" "fuzz/regressions/$target"; do [ -d "$d" ] && dirs+=("$d"); done
  dict=()
  [ -f "fuzz/$target.dict" ] && dict=(-dict="fuzz/$target.dict")
  echo "fuzz_$target: ${seconds}s"
  build-fuzz/fuzz/fuzz_$target -max_total_time="$seconds" -timeout=30 -rss_limit_mb=4096 \
    -print_final_stats=1 -artifact_prefix="build-fuzz/artifacts/$target-" "${dict[@]}" \
    "${dirs[@]}" 2>"build-fuzz/fuzz_$target.log" ||
    { tail -60 "build-fuzz/fuzz_$target.log"; echo "fuzz_$target failed: see build-fuzz/artifacts/"; exit 1; }
  grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb" "build-fuzz/fuzz_$target.log" || true
done
echo "fuzzing: 4 targets ran clean"
