#!/usr/bin/env bash
# The Debian package (issue 11): it builds with CPack, declares its library
# Depends, installs with dpkg -i, and the installed files alone serve and
# mount: /usr/bin/cohfs serve, mount -t cohfs through /sbin/mount.cohfs, the
# unit passes systemd-analyze verify (binary and man page checks included).
# It is removed with dpkg -r at the end, whatever happens (then purged, so
# dpkg keeps no record of it: its postrm leaves it in config-files state).
# usage: deb_test.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
work=$(mktemp -d /var/tmp/cohfs-deb-XXXXXX)
fail() { echo "FAIL: $*" >&2; exit 1; }

if dpkg-query -W -f='${Status}' cohfs 2>/dev/null | grep -q "install ok installed"; then
  fail "a cohfs package is installed already; this test removes what it installs, so it will not touch that one"
fi
installed=0
cleanup() {
  [ "$installed" = 1 ] && dpkg -r cohfs >"$work/dpkg-r.log" 2>&1
  dpkg -P cohfs >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

(cd "$build" && cpack -G DEB -B "$work/pkg" >"$work/cpack.log" 2>&1) || { cat "$work/cpack.log"; fail "cpack"; }
version=$(sed -n 's/^#define COHFS_VERSION "\(.*\)"$/\1/p' "$build/tools/version.h")
commit=$(sed -n 's/^#define COHFS_GIT_COMMIT "\(.*\)"$/\1/p' "$build/tools/version.h")
deb="$work/pkg/cohfs_${version}_amd64.deb"
[ -f "$deb" ] || fail "no $deb"
depends=$(dpkg-deb -f "$deb" Depends)
for lib in fuse3 libfuse3-3 librocksdb7.8 libcapnp-0.9.2 liburing2 libsodium23 libssl3 libsystemd0; do
  [[ ", $depends," == *", $lib"[\ ,]* ]] || fail "Depends lacks $lib: $depends"
done

dpkg -i "$deb" >"$work/dpkg-i.log" 2>&1 || { cat "$work/dpkg-i.log"; fail "dpkg -i"; }
installed=1
[ "$(/usr/bin/cohfs --version)" = "cohfs $version (commit $commit)" ] || fail "version: $(/usr/bin/cohfs --version)"
[ "$(readlink -f /sbin/mount.cohfs)" = /usr/bin/cohfs ] || fail "/sbin/mount.cohfs is not the cohfs binary"
man -w cohfs >/dev/null && man -w mount.cohfs >/dev/null || fail "man pages not found by man"
bash -c 'source /usr/share/bash-completion/completions/cohfs && complete -p cohfs' >/dev/null ||
  fail "bash completion"
out=$(systemd-analyze verify /lib/systemd/system/cohfs-server@.service 2>&1) || fail "verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify complained: $out"

# Serve and mount from the installed files, in a private mount namespace.
timeout -s KILL 45 unshare -m bash -euo pipefail -c '
  work=$1
  mount --make-rprivate /
  truncate -s 1G "$work/img"
  /usr/bin/cohfs format "$work/img" >/dev/null
  /usr/bin/cohfs keygen "$work/key" >/dev/null
  mkfifo "$work/out"
  /usr/bin/cohfs serve "$work/img" --listen 127.0.0.1:0 --key "$work/key" >"$work/out" 2>"$work/server.log" &
  server=$!
  exec 3<"$work/out"
  read -r -t 30 -u 3 line || { cat "$work/server.log"; exit 1; }
  port=${line##* }
  mkdir "$work/mnt"
  mount -t cohfs "127.0.0.1:$port" "$work/mnt" -o "key=$work/key,_netdev,soft"
  [ "$(findmnt -no FSTYPE "$work/mnt")" = fuse.cohfs ]
  daemon=$(pgrep -f "^/sbin/mount.cohfs 127.0.0.1:$port ")
  [ "$(readlink "/proc/$daemon/exe")" = /usr/bin/cohfs ]
  echo "from the package" >"$work/mnt/f"
  umount "$work/mnt"
  # The daemon ships what it held, then exits; the data is on the server.
  timeout 30 tail --pid="$daemon" -f /dev/null
  mount -t cohfs "127.0.0.1:$port" "$work/mnt" -o "key=$work/key"
  [ "$(cat "$work/mnt/f")" = "from the package" ]
  daemon=$(pgrep -f "^/sbin/mount.cohfs 127.0.0.1:$port ")
  umount "$work/mnt"
  timeout 30 tail --pid="$daemon" -f /dev/null
  kill -TERM "$server"
  wait "$server"
  /usr/bin/cohfs fsck "$work/img" >/dev/null
' _ "$work" >"$work/run.log" 2>&1 || { cat "$work/run.log"; fail "serve and mount from the package"; }

dpkg -r cohfs >"$work/dpkg-r.log" 2>&1 || { cat "$work/dpkg-r.log"; fail "dpkg -r"; }
installed=0
[ ! -e /usr/bin/cohfs ] && [ ! -e /sbin/mount.cohfs ] || fail "dpkg -r left files behind"
dpkg -P cohfs >/dev/null 2>&1
echo "PASS: $deb ($depends)"
