#!/usr/bin/env bash
# Installs what cohfs needs to build and test, from Debian 12 packages only.
set -euo pipefail
packages=(build-essential cmake pkg-config g++ libfuse3-dev fuse3 liburing-dev
          libcapnp-dev capnproto librocksdb-dev libgtest-dev libsodium-dev libssl-dev
          libcpp-httplib-dev tar libsystemd-dev systemd dpkg-dev file e2fsprogs util-linux)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi
