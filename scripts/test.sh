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

# The Windows build runs under Wine (MinGW + Wine from Debian's packages,
# installed by the script) and every fuzz target builds and runs briefly, so
# neither harness can rot. PM2_DOCTOR_QUICK=1 skips both on a developer
# machine; CI always runs them.
if [ -z "${PM2_DOCTOR_QUICK:-}" ] || [ "${CI:-}" = "true" ]; then
  step "Windows tests under Wine (scripts/windows-test.sh)"
  bash scripts/windows-test.sh

  step "fuzz smoke: ${PM2_DOCTOR_FUZZ_SECS:-10} s per target (fuzz/run.sh)"
  bash fuzz/run.sh "${PM2_DOCTOR_FUZZ_SECS:-10}"
fi
