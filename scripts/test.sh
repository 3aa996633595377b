#!/usr/bin/env bash
# Runs every check a change must pass, on a fresh machine that has only Rust
# and Node.js/npm: installs the pinned PM2 the integration tests drive, then
# formatting, lints and the whole test suite (unit, fixture homes, real PM2).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*" >&2; }

step "installing the pinned PM2 into tests/pm2 (npm ci)"
(cd tests/pm2 && npm ci --prefer-offline --no-audit --no-fund --loglevel=error)

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings

# Windows (the incident's platform) and macOS are held by the compiler and
# the linter on every change; their platform logic is unit-tested on Linux.
for target in x86_64-pc-windows-gnu x86_64-apple-darwin; do
  step "cargo clippy --target $target -- -D warnings"
  rustup target add "$target" >/dev/null
  cargo clippy --locked --all-targets --target "$target" -- -D warnings
done

step "cargo test (real-PM2 tests serialise themselves)"
cargo test --locked --all-targets

# Fuzzing is opt-in: a cold build of the fuzz targets alone takes minutes.
# PM2_DOCTOR_FUZZ_SECS=10 adds a smoke run of every target (docs/reliability.md).
if [ -n "${PM2_DOCTOR_FUZZ_SECS:-}" ]; then
  step "fuzz smoke: ${PM2_DOCTOR_FUZZ_SECS} s per target (fuzz/run.sh)"
  bash fuzz/run.sh "$PM2_DOCTOR_FUZZ_SECS"
fi
