#!/usr/bin/env bash
# pm2-doctor vs PM2 7.0.4, side by side. Usage: bash bench/run.sh
#
# Scenarios (see docs/performance.md for the goals and the last results):
#   1. a live daemon with 20 http apps: `pm2-doctor diagnose` vs `pm2 jlist`
#      (median wall, peak RSS);
#   2. a big home without a daemon: 2,000 apps in dump.pm2 (~11 KB each),
#      2,000 stale pid files, 0 B vs 1 GiB of logs (sparse, and written);
#   3. a wedged daemon (a listener on rpc.sock that never answers):
#      `pm2-doctor diagnose --timeout 2` vs `timeout 10 pm2 jlist`;
#   4. repair and undo: 50 orphans of a home that ignore SIGTERM plus a stale
#      pm2.pid: wall of `pm2-doctor repair --yes --grace 3`, and all 50 dead;
#   5. crash loops: 200 crash-looping apps (restart_time >= 50) whose error
#      logs are 50 MiB of EADDRINUSE crashes each, vs the same home with empty
#      error logs (median wall, peak RSS).
#
# Safety: every pm2 command runs with a private PM2_HOME and HOME under a
# mktemp dir and under `timeout`; the EXIT trap (also taken on Ctrl-C and
# SIGTERM) kills, by pid, every process this script started: daemons from
# pm2.pid, apps from pids/*.pid, apps the daemon restarted (found by their
# exact private PM2_HOME), the listener; each pid is re-checked as ours right
# before it is signalled. Nothing is killed by name. Only 127.0.0.1 is used.
# Scenario 4's orphans (plain `sleep`s, no pm2 involved) carry their private
# PM2_HOME too; the trap SIGKILLs them by pid (they ignore SIGTERM).
# Raw hyperfine JSON goes to bench/out/ (gitignored). Knobs: see below.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
OUT=$BENCH/out
DOCTOR=$ROOT/target/release/pm2-doctor
PM2=$ROOT/tests/pm2/node_modules/pm2/bin/pm2
SAMPLE=$ROOT/testdata/samples/dump.pm2.sample.json

# Knobs (defaults are what docs/performance.md was measured with).
S1_APPS=${S1_APPS:-20}
S2_APPS=${S2_APPS:-2000}
ROUNDS=${ROUNDS:-5}           # interleaved hyperfine rounds (scenarios 1, 2)
RUNS=${RUNS:-3}               # timed runs per command per round
S2_LOG_BYTES=${S2_LOG_BYTES:-1073741824}
S3_RUNS=${S3_RUNS:-5}
RSS_RUNS=5
S4_ORPHANS=${S4_ORPHANS:-50}
S4_RUNS=${S4_RUNS:-3}
S4_GRACE=${S4_GRACE:-3}
S5_APPS=${S5_APPS:-200}
S5_LOG_BYTES=${S5_LOG_BYTES:-52428800}   # per error log
S5_LOG_MODE=${S5_LOG_MODE:-auto}         # auto | distinct | hardlink
S5_DISK_MARGIN=${S5_DISK_MARGIN:-21474836480}  # free bytes left to others
SCENARIOS=${SCENARIOS:-"1 2 3 4 5"}     # which scenarios to run
want() { [[ " $SCENARIOS " == *" $1 "* ]]; }
QUIET_WAIT=${QUIET_WAIT:-30}  # seconds to wait for other load to settle

log() { printf '\n== %s  [%s, %ss in]\n' "$*" "$(date +%T)" "$SECONDS" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- setup ---
log "setup"
command -v python3 >/dev/null || die "python3 is required"
command -v node >/dev/null || die "node is required"
if ! command -v hyperfine >/dev/null || [ ! -x /usr/bin/time ]; then
    apt-get install -y hyperfine time >/dev/null 2>&1 ||
        { apt-get update >/dev/null && apt-get install -y hyperfine time >/dev/null; } ||
        die "cannot install hyperfine and GNU time"
fi
(cd "$ROOT" && cargo build --release --quiet) || die "cargo build --release failed"
(cd "$ROOT/tests/pm2" && npm ci --prefer-offline --no-audit --no-fund >/dev/null) ||
    die "npm ci in tests/pm2 failed"
[ -x "$PM2" ] || die "no pm2 at $PM2"
mkdir -p "$OUT"
rm -f "$OUT"/*.json "$OUT"/*.txt "$OUT"/*.md "$OUT"/*.env "$OUT"/*.stderr

tmp=$(mktemp -d /tmp/pm2doc-bench.XXXXXX)
H1=$tmp/live      # scenario 1: live daemon
H2=$tmp/big       # scenario 2: big home, never a daemon
H3=$tmp/wedged    # scenario 3: wedged listener
H4=$tmp/repair    # scenario 4: stubborn orphans, one home per run (H4-rN)
H5=$tmp/loops     # scenario 5: crash loops, 50 MiB error logs
H5E=$tmp/loops-empty  # scenario 5: the same, empty error logs
STARTED=$tmp/started.pids   # "<home> <pid>" of everything PM2 started for us
WEDGE_PID=""
: >"$STARTED"
METRICS=$OUT/metrics.env
: >"$METRICS"
metric() { printf '%s=%s\n' "$1" "$2" >>"$METRICS"; }

# pm2 with a private home, always under a deadline: pm2_in HOME SECS ARGS...
pm2_in() {
    local home=$1 secs=$2
    shift 2
    env PM2_HOME="$home" HOME="$tmp" timeout -k 2 "$secs" "$PM2" "$@"
}

# Remembers the pids PM2 wrote for a home, so cleanup finds them even if the
# files are gone by then.
record_pids() {
    local home=$1 f
    for f in "$home/pm2.pid" "$home"/pids/*.pid; do
        [ -f "$f" ] || continue
        printf '%s %s\n' "$home" "$(tr -dc 0-9 <"$f")" >>"$STARTED"
    done
}

# True when pid is alive and was started with PM2_HOME=home.
is_ours() {
    local home=$1 pid=$2
    [ -n "$pid" ] && [ -r "/proc/$pid/environ" ] &&
        { tr '\0' '\n' <"/proc/$pid/environ"; } 2>/dev/null | grep -qxF "PM2_HOME=$home"
}

# Pids still alive that were started with PM2_HOME=home: the recorded ones,
# plus (safety net) any app the daemon restarted under a new pid after the
# pid files were read. The home is a private mktemp path, so the match is
# exact and can only be a process this script caused.
home_pids() {
    local home=$1 h pid d
    {
        while read -r h pid; do
            if [ "$h" = "$home" ]; then echo "$pid"; fi
        done <"$STARTED"
        for d in /proc/[0-9]*; do echo "${d#/proc/}"; done
    } | sort -un | while read -r pid; do
        if is_ours "$home" "$pid"; then echo "$pid"; fi
    done
}

# TERM then (after 5 s) KILL, each pid re-checked as ours first.
stop_pids() {
    local home=$1 pid i alive
    shift
    [ $# -gt 0 ] || return 0
    for pid in "$@"; do
        if is_ours "$home" "$pid"; then kill -TERM "$pid" 2>/dev/null || true; fi
    done
    for i in $(seq 50); do
        alive=0
        for pid in "$@"; do
            if is_ours "$home" "$pid"; then alive=1; fi
        done
        if [ $alive = 0 ]; then return 0; fi
        sleep 0.1
    done
    for pid in "$@"; do
        if is_ours "$home" "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
    done
}

# Kills every process PM2 started for a home: the daemon first (from
# pm2.pid; it stops its apps and cannot restart them once gone), then
# whatever is left (apps from pids/*.pid, restarted apps).
kill_home() {
    local home=$1 h pid
    local daemons=()
    [ -d "$home" ] || return 0
    record_pids "$home"
    if [ -f "$home/pm2.pid" ]; then
        pid=$(tr -dc 0-9 <"$home/pm2.pid")
        if is_ours "$home" "$pid"; then daemons+=("$pid"); fi
    fi
    stop_pids "$home" "${daemons[@]}"
    # shellcheck disable=SC2046
    stop_pids "$home" $(home_pids "$home")
    return 0
}

kill_wedge() {
    if [ -n "$WEDGE_PID" ] && grep -qF wedge.py "/proc/$WEDGE_PID/cmdline" 2>/dev/null; then
        kill -TERM "$WEDGE_PID" 2>/dev/null || true
        wait "$WEDGE_PID" 2>/dev/null || true
    fi
    WEDGE_PID=""
}

# SIGKILLs (each re-checked as ours) every process carrying PM2_HOME=home:
# for scenario 4's orphans, which ignore SIGTERM by design.
kill_stubborn() {
    local home=$1 pid
    for pid in $(home_pids "$home"); do
        if is_ours "$home" "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
    done
}

cleanup() {
    local rc=$?
    local h
    set +e
    trap - EXIT INT TERM
    kill_wedge
    kill_home "$H1"
    kill_home "$H3"   # only if pm2 spawned a daemon there
    for h in "$H4"-r*; do
        if [ -d "$h" ]; then kill_stubborn "$h"; fi
    done
    rm -rf "$tmp"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# Peak RSS in KiB, median of RSS_RUNS runs: rss LABEL CMD... GNU time's %M
# is the largest RSS of CMD and the children it waited for (for pm2: the
# node CLI under `timeout`), never the daemon, which is nobody's child here.
rss() {
    local label=$1 i
    shift
    for i in $(seq "$RSS_RUNS"); do
        /usr/bin/time -f %M -o "$tmp/rss.txt" "$@" >/dev/null 2>&1 || true
        tail -n 1 "$tmp/rss.txt"
    done | tee "$OUT/rss-$label.txt" | median
}

hf() { hyperfine --style basic --shell=none --time-unit millisecond -i "$@"; }

# The compared commands in ROUNDS short hyperfine runs (1 warmup + RUNS
# each), A B A B..., so drift from other load on the machine hits all of them
# alike; summarize.py merges NAME-r*.json. hf_rounds NAME HYPERFINE-ARGS...
hf_rounds() {
    local name=$1 r
    shift
    for r in $(seq "$ROUNDS"); do
        hf --warmup 1 --runs "$RUNS" --export-json "$OUT/$name-r$r.json" "$@" >&2
    done
}

# Waits (at most QUIET_WAIT s) until the CPUs are >= 75 % idle over one
# second, so a build running next to the bench does not skew it; prints the
# busy percentage it ended with.
wait_quiet() {
    python3 - "$QUIET_WAIT" <<'EOF'
import sys, time
def snap():
    f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return sum(f), f[3] + f[4]
deadline = time.time() + float(sys.argv[1])
while True:
    t0, i0 = snap(); time.sleep(1); t1, i1 = snap()
    busy = 100 * (1 - (i1 - i0) / max(t1 - t0, 1))
    if busy <= 25 or time.time() > deadline:
        print(f"{busy:.0f}")
        break
EOF
}

# The doctor runs with pm2 on PATH, as on a real host (it reads the CLI's
# package.json for the version check; it never runs it).
export PATH="$ROOT/tests/pm2/node_modules/.bin:$PATH"
mkdir -p "$tmp/srv"   # the (never started) script of the big homes
cp "$BENCH/app.js" "$tmp/srv/app.js"

metric S1_BUSY_PCT "$(wait_quiet)"
metric NPROC "$(nproc)"
metric CPU "\"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')\""
metric KERNEL "$(uname -r)"
metric MEM_GIB "$(awk '/MemTotal/ {printf "%.1f", $2/1048576}' /proc/meminfo)"
metric NODE "$(node --version)"
metric PM2_VERSION "$(node -p "require('$ROOT/tests/pm2/node_modules/pm2/package.json').version")"
metric HYPERFINE "\"$(hyperfine --version)\""
metric DOCTOR_VERSION "\"$("$DOCTOR" --version)\""
metric GIT "\"$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || echo ' + uncommitted src changes')\""
metric PROCS "$(ls -d /proc/[0-9]* | wc -l)"
metric LOAD_START "\"$(cut -d' ' -f1-3 /proc/loadavg)\""
metric TCP_EHASH "$(cat /proc/sys/net/ipv4/tcp_ehash_entries 2>/dev/null || echo unknown)"

# ------------------------------------------- scenario 1: live daemon -------
if want 1; then
log "scenario 1: live daemon with $S1_APPS apps"
mkdir -p "$H1"
ports=$(python3 "$BENCH/gen_home.py" ecosystem --out "$tmp/apps.json" \
    --script "$BENCH/app.js" --apps "$S1_APPS")
pm2_in "$H1" 90 start "$tmp/apps.json" >"$tmp/pm2-start.log" 2>&1 ||
    { record_pids "$H1"; cat "$tmp/pm2-start.log" >&2; die "pm2 start failed"; }
record_pids "$H1"
# Every app answers on its port before anything is measured.
python3 - "$ports" <<'EOF' || die "apps did not come up"
import socket, sys, time
ports = [int(p) for p in sys.argv[1].split()]
deadline = time.time() + 30
for p in ports:
    while True:
        try:
            socket.create_connection(("127.0.0.1", p), timeout=1).close()
            break
        except OSError:
            if time.time() > deadline:
                sys.exit(f"port {p} not answering")
            time.sleep(0.1)
EOF
record_pids "$H1"
pm2_in "$H1" 30 jlist >"$OUT/s1-jlist.json"
online=$(python3 -c 'import json,sys; print(sum(a["pm2_env"]["status"]=="online" for a in json.load(open(sys.argv[1]))))' "$OUT/s1-jlist.json")
metric S1_APPS "$S1_APPS"
metric S1_ONLINE "$online"
[ "$online" = "$S1_APPS" ] || die "only $online/$S1_APPS apps online"
metric S1_JLIST_BYTES "$(wc -c <"$OUT/s1-jlist.json")"
metric S1_PROCS "$(ls -d /proc/[0-9]* | wc -l)"
rc=0
"$DOCTOR" diagnose --home "$H1" --format json >"$OUT/s1-diagnose.json" || rc=$?
metric S1_DOCTOR_RC "$rc"

hf_rounds s1-wall \
    -n "pm2-doctor diagnose" "$DOCTOR diagnose --home $H1" \
    -n "pm2 jlist" "env PM2_HOME=$H1 HOME=$tmp timeout -k 2 30 $PM2 jlist" >&2
# Two reference points for reading the doctor's number: its start-up floor
# (a command that reads nothing), and what the kernel charges to read the
# TCP tables the doctor parses for port evidence (/proc/net/tcp walks the
# whole established hash, sized from RAM, on every pass).
hf --warmup 3 --runs 30 --export-json "$OUT/s1-reference.json" \
    -n "pm2-doctor checks" "$DOCTOR checks" \
    -n "cat /proc/net/tcp /proc/net/tcp6" "cat /proc/net/tcp /proc/net/tcp6" >&2
metric S1_DOCTOR_RSS_KB "$(rss s1-doctor "$DOCTOR" diagnose --home "$H1")"
metric S1_PM2_RSS_KB "$(rss s1-pm2-jlist env PM2_HOME="$H1" HOME="$tmp" timeout -k 2 30 "$PM2" jlist)"
record_pids "$H1"
kill_home "$H1"
left=$(home_pids "$H1" | wc -l)
[ "$left" = 0 ] || die "$left scenario-1 processes survived"
fi

# --------------------------------------------- scenario 2: big home --------
if want 2; then
metric S2_BUSY_PCT "$(wait_quiet)"
log "scenario 2: big home ($S2_APPS apps, $S2_APPS pid files, logs), no daemon"
python3 "$BENCH/gen_home.py" home --home "$H2" --apps "$S2_APPS" --sample "$SAMPLE" \
    --script "$tmp/srv/app.js" >"$OUT/s2-home.json"
metric S2_APPS "$S2_APPS"
metric S2_DUMP_BYTES "$(stat -c %s "$H2/dump.pm2")"
metric S2_PIDFILES "$(ls "$H2/pids" | wc -l)"
metric S2_LOGFILES "$(ls "$H2/logs" | wc -l)"
metric S2_PROCS "$(ls -d /proc/[0-9]* | wc -l)"
rc=0
"$DOCTOR" diagnose --home "$H2" --format json >"$OUT/s2-diagnose.json" || rc=$?
metric S2_DOCTOR_RC "$rc"

# The same home three times (each generated at its own path, so the dumps
# agree with their homes): logs of 0 B, grown to 1 GiB with `truncate -s`
# (sparse), and ~1 GiB of log lines really written, if the disk has room.
HS=$tmp/big-sparse
HR=$tmp/big-real
python3 "$BENCH/gen_home.py" home --home "$HS" --apps "$S2_APPS" --sample "$SAMPLE" \
    --script "$tmp/srv/app.js" >/dev/null
python3 "$BENCH/gen_home.py" logs --home "$HS" --total "$S2_LOG_BYTES" --mode sparse
metric S2_SPARSE_APPARENT "$(du -sb --apparent-size "$HS/logs" | cut -f1)"
metric S2_SPARSE_ALLOCATED "$(du -sB1 "$HS/logs" | cut -f1)"
variants=(-n "0 B logs" "$DOCTOR diagnose --home $H2"
    -n "1 GiB sparse logs" "$DOCTOR diagnose --home $HS")
avail=$(df --output=avail -B1 "$tmp" | tail -n 1)
if [ "$avail" -gt $((S2_LOG_BYTES * 3)) ]; then
    python3 "$BENCH/gen_home.py" home --home "$HR" --apps "$S2_APPS" --sample "$SAMPLE" \
        --script "$tmp/srv/app.js" >/dev/null
    python3 "$BENCH/gen_home.py" logs --home "$HR" --total "$S2_LOG_BYTES" --mode real
    sync -f "$HR/logs" 2>/dev/null || sync
    metric S2_REAL_ALLOCATED "$(du -sB1 "$HR/logs" | cut -f1)"
    variants+=(-n "1 GiB written logs" "$DOCTOR diagnose --home $HR")
else
    metric S2_REAL_SKIPPED "\"only $avail bytes free\""
fi
hf_rounds s2-wall "${variants[@]}"
metric S2_RSS_KB "$(rss s2-doctor "$DOCTOR" diagnose --home "$H2")"
metric S2_SPARSE_RSS_KB "$(rss s2-doctor-sparse "$DOCTOR" diagnose --home "$HS")"
if [ -d "$HR" ]; then
    metric S2_REAL_RSS_KB "$(rss s2-doctor-real "$DOCTOR" diagnose --home "$HR")"
    # Diagnostic, no goal: the same written logs, but no app has ever
    # restarted, so the doctor has no "suspicious" app whose error-log tail
    # it would read. Separates "log size" from "number of log tails read".
    python3 "$BENCH/gen_home.py" home --home "$HR" --apps "$S2_APPS" --sample "$SAMPLE" \
        --script "$tmp/srv/app.js" --restart-mod 1 --dump-only >/dev/null
    hf --warmup 1 --runs $((ROUNDS * RUNS)) --export-json "$OUT/s2-norestart.json" \
        -n "1 GiB written logs, no app restarted" "$DOCTOR diagnose --home $HR" >&2
    metric S2_NORESTART_RSS_KB "$(rss s2-doctor-norestart "$DOCTOR" diagnose --home "$HR")"
fi
rm -rf "$H2" "$HS" "$HR"   # the written GiB goes right away
fi

# ------------------------------------------ scenario 3: wedged daemon ------
if want 3; then
log "scenario 3: wedged daemon (rpc.sock accepts, never answers)"
mkdir -p "$H3"
python3 "$BENCH/wedge.py" "$H3/rpc.sock" "$tmp/wedge.ready" 300 &
WEDGE_PID=$!
for _ in $(seq 100); do [ -s "$tmp/wedge.ready" ] && break; sleep 0.05; done
[ -s "$tmp/wedge.ready" ] || die "wedged listener did not start"
rc=0
"$DOCTOR" diagnose --home "$H3" --timeout 2 --format json >"$OUT/s3-diagnose.json" || rc=$?
metric S3_DOCTOR_RC "$rc"
hf --runs "$S3_RUNS" --export-json "$OUT/s3-doctor.json" \
    -n "pm2-doctor diagnose --timeout 2" "$DOCTOR diagnose --home $H3 --timeout 2" >&2
start=$(date +%s%N)
rc=0
pm2_in "$H3" 10 jlist >"$tmp/s3-jlist.out" 2>&1 || rc=$?
end=$(date +%s%N)
record_pids "$H3"
metric S3_PM2_RC "$rc"
metric S3_PM2_WALL_MS "$(((end - start) / 1000000))"
metric S3_PM2_SPAWNED_DAEMON "$([ -f "$H3/pm2.pid" ] && echo yes || echo no)"
wedge_pid=$WEDGE_PID
kill_wedge
kill_home "$H3"
if grep -qF wedge.py "/proc/$wedge_pid/cmdline" 2>/dev/null; then die "listener still alive"; fi
fi

# ------------------------------- scenario 4: repair, stubborn orphans ------
if want 4; then
log "scenario 4: repair --yes, $S4_ORPHANS orphans that ignore SIGTERM, stale pm2.pid"
# A pid that is certainly not running: a shell that has exited.
dead_pid() {
    local pid
    pid=$(sh -c 'echo $$')
    while [ -e "/proc/$pid" ]; do pid=$(sh -c 'echo $$'); done
    echo "$pid"
}
for r in $(seq "$S4_RUNS"); do
    home=$H4-r$r
    mkdir -p "$home" "$tmp/s4-backup-r$r"
    # Each orphan: PM2's app markers with this home, its own session
    # (setsid -f forks, so its parent is init, not this script), and SIGTERM
    # ignored (the trap is inherited through exec).
    for i in $(seq 0 $((S4_ORPHANS - 1))); do
        env PM2_HOME="$home" pm_id="$i" name="o$i" unique_id="u$i" \
            setsid -f sh -c 'trap "" TERM; exec sleep 300' </dev/null >/dev/null 2>&1
    done
    # Wait until all of them have exec'd sleep (the trap is set by then).
    orphans=()
    for _ in $(seq 100); do
        mapfile -t orphans < <(home_pids "$home")
        n_sleep=0
        for pid in "${orphans[@]}"; do
            if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = sleep ]; then n_sleep=$((n_sleep + 1)); fi
        done
        if [ "${#orphans[@]}" = "$S4_ORPHANS" ] && [ "$n_sleep" = "$S4_ORPHANS" ]; then break; fi
        sleep 0.05
    done
    for pid in "${orphans[@]}"; do printf '%s %s\n' "$home" "$pid" >>"$STARTED"; done
    [ "${#orphans[@]}" = "$S4_ORPHANS" ] || die "only ${#orphans[@]}/$S4_ORPHANS orphans started"
    # They ignore SIGTERM: the bit is set, and a real SIGTERM leaves them up.
    for pid in "${orphans[@]}"; do
        ign=$(awk '/^SigIgn:/ {print $2}' "/proc/$pid/status")
        (( (16#$ign >> 14) & 1 )) || die "orphan $pid does not ignore SIGTERM (SigIgn $ign)"
        [ "$(awk '{print $1}' "/proc/$pid/stat" 2>/dev/null)" = "$pid" ] || die "orphan $pid gone"
        if is_ours "$home" "$pid"; then kill -TERM "$pid"; fi
    done
    sleep 0.5
    survived=0
    for pid in "${orphans[@]}"; do if is_ours "$home" "$pid"; then survived=$((survived + 1)); fi; done
    [ "$survived" = "$S4_ORPHANS" ] || die "only $survived/$S4_ORPHANS orphans survived SIGTERM"
    dp=$(dead_pid)
    echo "$dp" >"$home/pm2.pid"
    metric "S4_R${r}_TERM_SURVIVORS" "$survived"
    metric "S4_R${r}_STALE_PID" "$dp"
    rc=0
    start=$(date +%s%N)
    "$DOCTOR" repair --yes --grace "$S4_GRACE" --timeout 1 --backup-dir "$tmp/s4-backup-r$r" \
        --home "$home" --format json >"$OUT/s4-repair-r$r.json" 2>"$OUT/s4-repair-r$r.stderr" || rc=$?
    end=$(date +%s%N)
    alive=0
    for pid in "${orphans[@]}"; do if is_ours "$home" "$pid"; then alive=$((alive + 1)); fi; done
    metric "S4_R${r}_WALL_MS" "$(((end - start) / 1000000))"
    metric "S4_R${r}_RC" "$rc"
    metric "S4_R${r}_ALIVE_AFTER" "$alive"
    metric "S4_R${r}_PIDFILE_LEFT" "$([ -e "$home/pm2.pid" ] && echo yes || echo no)"
    kill_stubborn "$home"   # nothing, unless the repair missed some
done
metric S4_ORPHANS "$S4_ORPHANS"
metric S4_RUNS "$S4_RUNS"
metric S4_GRACE "$S4_GRACE"
fi

# ------------------------------------------ scenario 5: crash loops --------
if want 5; then
metric S5_BUSY_PCT "$(wait_quiet)"
log "scenario 5: $S5_APPS crash-looping apps, $S5_LOG_BYTES-byte error logs vs empty"
need=$((S5_APPS * S5_LOG_BYTES))
avail=$(df --output=avail -B1 "$tmp" | tail -n 1)
mode=$S5_LOG_MODE
if [ "$mode" = auto ]; then
    if [ "$avail" -ge $((need + S5_DISK_MARGIN)) ]; then mode=distinct; else mode=hardlink; fi
fi
if [ "$mode" = distinct ] && [ "$avail" -lt $((need + S5_DISK_MARGIN / 4)) ]; then
    die "not enough disk for distinct error logs: $avail bytes free, $need needed"
fi
metric S5_APPS "$S5_APPS"
metric S5_LOG_BYTES "$S5_LOG_BYTES"
metric S5_LOG_MODE "$mode"
metric S5_DISK_AVAIL "$avail"
# Every app: restart_time 50 + i (>= 50: crash-looping), so the doctor reads
# the error-log tails of the worst 100 (the highest restart counts).
for h in "$H5" "$H5E"; do
    python3 "$BENCH/gen_home.py" home --home "$h" --apps "$S5_APPS" --sample "$SAMPLE" \
        --script "$tmp/srv/app.js" --restart-base 50 >/dev/null
done
python3 "$BENCH/gen_home.py" errlogs --home "$H5" --bytes "$S5_LOG_BYTES" --mode "$mode"
sync -f "$H5/logs" 2>/dev/null || sync
metric S5_ERRLOG_APPARENT "$(find "$H5/logs" -name '*-error.log' -printf '%s\n' | awk '{s += $1} END {printf "%.0f\n", s}')"
metric S5_ERRLOG_ALLOCATED "$(du -sB1 "$H5/logs" | cut -f1)"
metric S5_EMPTY_ERRLOG_BYTES "$(find "$H5E/logs" -name '*-error.log' -printf '%s\n' | awk '{s += $1} END {printf "%.0f\n", s}')"
rc=0
"$DOCTOR" diagnose --home "$H5" --format json >"$OUT/s5-diagnose.json" || rc=$?
metric S5_DOCTOR_RC "$rc"
rc=0
"$DOCTOR" diagnose --home "$H5E" --format json >"$OUT/s5-diagnose-empty.json" || rc=$?
metric S5_EMPTY_DOCTOR_RC "$rc"
hf_rounds s5-wall \
    -n "50 MiB error logs" "$DOCTOR diagnose --home $H5" \
    -n "empty error logs" "$DOCTOR diagnose --home $H5E"
metric S5_RSS_KB "$(rss s5-doctor "$DOCTOR" diagnose --home "$H5")"
metric S5_EMPTY_RSS_KB "$(rss s5-doctor-empty "$DOCTOR" diagnose --home "$H5E")"
rm -rf "$H5" "$H5E"   # the 10 GiB go right away
fi

# --------------------------------------------------------------- summary ---
metric LOAD_END "\"$(cut -d' ' -f1-3 /proc/loadavg)\""
metric ELAPSED_S "$SECONDS"
log "summary"
python3 "$BENCH/summarize.py" "$OUT" | tee "$OUT/summary.md"
