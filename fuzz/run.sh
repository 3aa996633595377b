#!/usr/bin/env bash
# Fuzzes pm2-doctor's parsers with cargo-fuzz (libFuzzer) on the stable
# toolchain: `bash fuzz/run.sh [SECS] [TARGET...]` (default 60 s, every target).
#
# Stable rustc is enough: RUSTC_BOOTSTRAP=1 lets it take the -Z flags
# cargo-fuzz passes, and `--sanitizer none` skips AddressSanitizer (which
# needs nightly's -Zsanitizer; the crate forbids unsafe code anyway, and
# libFuzzer still catches panics, aborts, stack overflows, timeouts and
# memory blow-ups). Seeds come from testdata/ and fuzz/seeds/; new corpus
# entries stay in fuzz/corpus/, crashes in fuzz/artifacts/<target>/.
# Exit status: 0 when no target crashed, 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-60}
shift || true
all=(dump_parse pid_parse amp_frame environ manifest renderers)
if [ "$#" -gt 0 ]; then targets=("$@"); else targets=("${all[@]}"); fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz from crates.io" >&2
  cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
# Release build with debug assertions and overflow checks, as cargo-fuzz
# does by default; 16 codegen units keep the build a few minutes shorter.
flags=(--sanitizer none --release --debug-assertions --codegen-units 16)

echo "== seeding fuzz/corpus from testdata/ and fuzz/seeds/" >&2
python3 - <<'PY'
import glob, json, os, re, shutil

def seed(target, name, data):
    d = os.path.join("corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + re.sub(r"[^A-Za-z0-9_.-]", "_", name)), "wb") as f:
        f.write(data)

td = os.path.join("..", "testdata")
for p in sorted(glob.glob(td + "/homes/*/home/dump.pm2*") + glob.glob(td + "/samples/*.json")):
    if os.path.isfile(p):
        seed("dump_parse", os.path.relpath(p, td), open(p, "rb").read())
for p in sorted(glob.glob(td + "/homes/*/home/pm2.pid") + glob.glob(td + "/homes/*/home/pids/*.pid")):
    if os.path.isfile(p):
        data = open(p, "rb").read()
        seed("pid_parse", os.path.relpath(p, td), data)
        seed("renderers", os.path.relpath(p, td), os.path.basename(p).encode())
# The captured getVersion exchange: request and reply, as bytes.
for line in open(td + "/samples/wire_getVersion.hex.txt"):
    m = re.match(r"(request|reply)\s+\(\d+ bytes\):\s*([0-9a-f ]+)$", line.strip())
    if m:
        seed("amp_frame", "wire_getVersion_" + m.group(1), bytes.fromhex(m.group(2)))
# Process environments recorded in the fixture homes, as environ blocks.
names = {"home": "PM2_HOME", "pm_id": "pm_id", "unique_id": "unique_id", "name": "name"}
for p in sorted(glob.glob(td + "/homes/*/processes.json")):
    for proc in json.load(open(p)).get("processes", []):
        env = proc.get("env") or {}
        kv = [f"{names[k]}={v}" for k, v in env.items() if k in names and v is not None]
        if env.get("silent"):
            kv.append("SILENT=true")
        if kv:
            seed("environ", f"{os.path.relpath(p, td)}-{proc['pid']}", "\0".join(kv).encode())
        if proc.get("name"):
            seed("renderers", f"{os.path.relpath(p, td)}-{proc['pid']}", proc["name"].encode())
for d in glob.glob("seeds/*"):
    for p in glob.glob(d + "/*"):
        seed(os.path.basename(d), os.path.basename(p), open(p, "rb").read())
PY

echo "== building the fuzz targets" >&2
cargo fuzz build "${flags[@]}" >&2
# Run the built binaries directly: `cargo fuzz run` would rebuild (and on a
# tree being edited, rebuild again between targets).
bin_dir="target/$(rustc -vV | sed -n 's/^host: //p')/release"

mkdir -p logs
status=0
printf '%-12s %12s %10s %8s %8s  %s\n' target execs exec/s corpus crashes artifacts
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  before=$(find "artifacts/$t" -type f | wc -l)
  extra=()
  if [ -f "dicts/$t.dict" ]; then extra+=("-dict=dicts/$t.dict"); fi
  # -rss_limit_mb: a parser must not need 512 MiB; -timeout: nor 10 s on one input.
  if "$bin_dir/$t" "corpus/$t" -artifact_prefix="artifacts/$t/" \
      -max_total_time="$secs" -print_final_stats=1 -rss_limit_mb=512 -timeout=10 \
      "${extra[@]}" >"logs/$t.log" 2>&1; then :; else status=1; fi
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "logs/$t.log" | grep -o '[0-9]*$' | tail -1)
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "logs/$t.log" | grep -o '[0-9]*$' | tail -1)
  after=$(find "artifacts/$t" -type f | wc -l)
  printf '%-12s %12s %10s %8s %8s  %s\n' "$t" "${execs:-?}" "${rate:-?}" \
    "$(find "corpus/$t" -type f | wc -l)" "$((after - before))" "artifacts/$t"
done
if [ "$status" -ne 0 ]; then
  echo "a target crashed: see fuzz/logs/<target>.log; reproduce with" >&2
  echo "  (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run ${flags[*]} <target> artifacts/<target>/<crash-file>)" >&2
fi
exit "$status"
