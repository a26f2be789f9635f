#!/usr/bin/env bash
# Builds build/cohfs_<version>_amd64.deb: configures (so `cohfs --version`
# names the current commit), builds, and packs with CPack's DEB generator
# (Depends from dpkg-shlibdeps; packaging/CMakeLists.txt says what goes in).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j2
(cd build && cpack -G DEB >/dev/null)
version=$(sed -n 's/^#define COHFS_VERSION "\(.*\)"$/\1/p' build/tools/version.h)
deb="build/cohfs_${version}_amd64.deb"
test -f "$deb"
echo "$deb"
