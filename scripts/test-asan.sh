#!/usr/bin/env bash
# The whole suite under AddressSanitizer and UndefinedBehaviorSanitizer, in
# build-asan/ (slower than ./test; not part of CI's time budget).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCOHFS_SANITIZE=ON >/dev/null
cmake --build build-asan -j2
cd build-asan
ASAN_OPTIONS=detect_leaks=0 ctest --output-on-failure -j2 --timeout 900 "$@"
