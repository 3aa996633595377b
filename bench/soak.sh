#!/usr/bin/env bash
# Soak: pm2-doctor at full size, under load and under races. Usage:
#   bash bench/soak.sh
#
# 1. big home: dump.pm2 with SOAK_APPS apps (5,000), as many pid files, and
#    SOAK_LIVE (500) live `sleep` processes carrying PM2's app markers for the
#    home. `diagnose` must report each live one as process.orphan exactly once
#    and every dead pid file once; its time is recorded, not judged.
# 2. restarting daemon: a real PM2 7.0.4 (tests/pm2) with a private PM2_HOME
#    runs an app that exits every second (autorestart) and two tickers, while
#    a thread runs `pm2 restart all` every SOAK_RESTART_MS (200 ms) after the
#    previous one returns. SOAK_DIAGNOSES (100) diagnoses, SOAK_GAP_MS (250 ms)
#    apart, count process.orphan findings for processes of the live daemon
#    (all false: the goal is zero) and every other finding.
# 3. lock race: LOCK_ROUNDS (200) rounds of 5 `repair --yes` started at the
#    same instant on one home with stale pid files, first with no lock, then
#    with a lock left by a dead repair. Counts the rounds in which more than
#    one repair ran (more than one run folder got a manifest) or a live
#    holder's lock was "taken over".
#
# Scenarios 1 and 2 are the `soak_*` tests of tests/concurrency.rs at full
# size (release build); they kill, by pid, every process they start, even
# when they fail. Scenario 3 starts only pm2-doctor, each under `timeout`.
# Results: one JSON line per scenario in bench/out/soak-<time>.jsonl
# (gitignored), and a summary on stderr. See docs/reliability.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$ROOT/bench/out
DOCTOR=$ROOT/target/release/pm2-doctor

export SOAK_APPS=${SOAK_APPS:-5000}
export SOAK_LIVE=${SOAK_LIVE:-500}
export SOAK_DIAGNOSES=${SOAK_DIAGNOSES:-100}
export SOAK_RESTART_MS=${SOAK_RESTART_MS:-200}
export SOAK_GAP_MS=${SOAK_GAP_MS:-250}
LOCK_ROUNDS=${LOCK_ROUNDS:-200}

log() { printf '\n== %s\n' "$*" >&2; }

mkdir -p "$OUT"
RESULT=$OUT/soak-$(date -u +%Y%m%dT%H%M%SZ).jsonl
export SOAK_OUT=$RESULT
WORK=$(mktemp -d "${TMPDIR:-/tmp}/pm2doctor-soak-XXXXXX")
trap 'rm -rf "$WORK"' EXIT

log "installing the pinned PM2 (tests/pm2) if needed"
if [ ! -f "$ROOT/tests/pm2/node_modules/pm2/bin/pm2" ]; then
  (cd "$ROOT/tests/pm2" && npm ci --prefer-offline --no-audit --no-fund --loglevel=error)
fi

log "building (release)"
(cd "$ROOT" && cargo build --release --locked --quiet)

log "1-2. big home ($SOAK_APPS apps, $SOAK_LIVE live) and restarting daemon ($SOAK_DIAGNOSES diagnoses)"
(cd "$ROOT" && cargo test --release --locked --quiet --test concurrency soak_ -- \
  --nocapture --test-threads=1)

log "3. lock race ($LOCK_ROUNDS rounds x 5 simultaneous repairs, twice)"
home=$WORK/home
backups=$WORK/backups
home_dir=$("$DOCTOR" backups --home "$home" --backup-dir "$backups" --format json \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["backup_dir"])')

# Prints "<runs with a manifest> <takeover notes>" for one round.
round() {
  local stale_lock=$1 i
  rm -rf "$home" "$backups" "$WORK"/r*.json
  mkdir -p "$home/pids"
  printf 999999 >"$home/pm2.pid"
  printf 999998 >"$home/pids/a-0.pid"
  printf 999997 >"$home/pids/b-1.pid"
  if [ "$stale_lock" = 1 ]; then
    mkdir -p "$home_dir"
    printf '{"pid":999999,"start_time":1,"run_id":"dead"}' >"$home_dir/repair.lock"
  fi
  for i in 1 2 3 4 5; do
    timeout 60 "$DOCTOR" repair --yes --timeout 0.5 --home "$home" --backup-dir "$backups" \
      --format json >"$WORK/r$i.json" 2>/dev/null &
  done
  wait || true
  local runs takeovers
  runs=$(find "$backups" -name manifest.json 2>/dev/null | wc -l)
  takeovers=$(cat "$WORK"/r*.json | grep -c 'took over' || true)
  echo "$runs $takeovers"
}

lock_race() {
  local stale_lock=$1 n double=0 extra_takeover=0 r runs takeovers
  for ((n = 0; n < LOCK_ROUNDS; n++)); do
    r=$(round "$stale_lock")
    runs=${r% *}
    takeovers=${r#* }
    [ "$runs" -gt 1 ] && double=$((double + 1))
    [ "$takeovers" -gt "$stale_lock" ] && extra_takeover=$((extra_takeover + 1))
  done
  printf '{"soak":"lock-race","stale_lock":%s,"rounds":%s,"repairs_per_round":5,"rounds_with_two_runs":%s,"rounds_with_a_wrong_takeover":%s}\n' \
    "$stale_lock" "$LOCK_ROUNDS" "$double" "$extra_takeover" | tee -a "$RESULT" >&2
}
lock_race 0
lock_race 1

log "results: $RESULT"
cat "$RESULT" >&2
