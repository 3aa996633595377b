#!/usr/bin/env bash
# Runs the Windows build, not just compiles it: cross-links the
# x86_64-pc-windows-gnu test binaries with MinGW and runs them under Wine —
# the platform-independent unit tests (cargo test --lib) and tests/windows.rs
# (home resolution, the named-pipe probe against pipe servers the tests
# create, process listing and termination, the TCP owner table).
#
# Installs what it needs (Debian: gcc-mingw-w64-x86-64, wine; rustup: the
# target), builds a bcryptprimitives.dll shim from scripts/processprng-shim.c
# (Rust's std needs ProcessPrng, which Wine 8 lacks), and keeps a private
# Wine prefix under target/windows-test/. Extra arguments go to the test
# binaries (e.g. `-- --nocapture`). What this proves and what it cannot is in
# docs/platforms.md.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=x86_64-pc-windows-gnu
WORK="$PWD/target/windows-test"
step() { printf '\n== %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

if ! command -v x86_64-w64-mingw32-gcc >/dev/null || ! command -v wine >/dev/null; then
  step "installing MinGW-w64 and Wine (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  # An image without package lists (or with stale ones) needs an update first.
  if ! as_root apt-get install -y --no-install-recommends gcc-mingw-w64-x86-64 wine wine64; then
    as_root apt-get update
    as_root apt-get install -y --no-install-recommends gcc-mingw-w64-x86-64 wine wine64
  fi
fi

step "rustup target add $TARGET"
rustup target add "$TARGET" >/dev/null

mkdir -p "$WORK"
DLL="$WORK/bcryptprimitives.dll"
if [ ! -f "$DLL" ] || [ scripts/processprng-shim.c -nt "$DLL" ]; then
  step "building the ProcessPrng shim (bcryptprimitives.dll)"
  x86_64-w64-mingw32-gcc -shared -O2 -static-libgcc -Wall -Werror \
    -o "$DLL" scripts/processprng-shim.c -ladvapi32
fi

export WINEPREFIX="$WORK/wineprefix"
export WINEARCH=win64
export WINEDEBUG=-all
# No Mono or Gecko install prompts; our ProcessPrng DLL over any builtin one.
export WINEDLLOVERRIDES="mscoree,mshtml=;bcryptprimitives=n,b"
# The prefix's wineserver is ours alone; stop it when done (it also exits
# by itself a few seconds after the last Wine process).
trap 'wineserver -k >/dev/null 2>&1 || true' EXIT

if [ ! -f "$WINEPREFIX/system.reg" ]; then
  step "creating the Wine prefix $WINEPREFIX"
  wineboot --init >/dev/null 2>&1 || true
  wineserver -w
fi
SYS32="$WINEPREFIX/drive_c/windows/system32"
test -d "$SYS32" || { echo "Wine prefix has no system32: $SYS32" >&2; exit 1; }
cmp -s "$DLL" "$SYS32/bcryptprimitives.dll" || cp "$DLL" "$SYS32/bcryptprimitives.dll"

export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=wine

step "cargo test --target $TARGET --lib --test windows (under $(wine --version))"
cargo test --locked --no-fail-fast --target "$TARGET" --lib --test windows "$@"
