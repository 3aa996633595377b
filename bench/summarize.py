#!/usr/bin/env python3
"""Prints the summary table of a bench/run.sh run (markdown) from bench/out/.

Usage: summarize.py OUT_DIR
Reads the hyperfine JSON exports and metrics.env that run.sh wrote there.
"""
import glob
import json
import os
import statistics
import sys

out = sys.argv[1]


def load_metrics():
    m = {}
    with open(os.path.join(out, "metrics.env")) as f:
        for line in f:
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                m[k] = v.strip('"')
    return m


def hf(name):
    """{command name: result} of a hyperfine export, or {} if absent. Rounds
    (NAME-r1.json, NAME-r2.json, ...) are merged: their times are pooled and
    the median is taken over the pool."""
    paths = [os.path.join(out, name + ".json")]
    paths += sorted(glob.glob(os.path.join(out, name + "-r*.json")))
    merged = {}
    for path in paths:
        if not os.path.exists(path):
            continue
        for r in json.load(open(path))["results"]:
            m = merged.setdefault(r["command"], {"command": r["command"], "times": [], "cpu": []})
            m["times"].extend(r["times"])
            # hyperfine keeps per-run times but only mean user/system CPU.
            m["cpu"].extend([r["user"] + r["system"]] * len(r["times"]))
    for m in merged.values():
        m["median"] = statistics.median(m["times"])
        m["min"] = min(m["times"])
        m["runs"] = len(m["times"])
        m["cpu_mean"] = statistics.mean(m["cpu"])
    return merged


def ms(r):
    return r["median"] * 1000


def fmt_ms(v):
    return f"{v:,.1f} ms" if v < 1000 else f"{v / 1000:,.2f} s"


def fmt_kib(k):
    return f"{k / 1024:,.1f} MiB"


def verdict(ok):
    return "met" if ok else "MISSED"


m = load_metrics()
rows = []  # scenario, metric, doctor, pm2, ratio, goal, result

s1 = hf("s1-wall")
if s1:
    d, p = ms(s1["pm2-doctor diagnose"]), ms(s1["pm2 jlist"])
    rows.append(("1 live daemon, %s apps" % m.get("S1_APPS", "?"), "median wall",
                 fmt_ms(d), fmt_ms(p), f"1/{p / d:.1f} ({d / p:.3f})",
                 "≤ 1/20", verdict(d * 20 <= p)))
    dr, pr = float(m["S1_DOCTOR_RSS_KB"]), float(m["S1_PM2_RSS_KB"])
    rows.append(("", "peak RSS (median of 5)", fmt_kib(dr), fmt_kib(pr) + " (CLI only)",
                 f"1/{pr / dr:.1f} ({dr / pr:.3f})", "≤ 1/5", verdict(dr * 5 <= pr)))

s2 = hf("s2-wall")
if s2:
    apps = m.get("S2_APPS", "?")
    zero = ms(s2["0 B logs"])
    sparse = ms(s2["1 GiB sparse logs"])
    rows.append((f"2 big home, {apps} apps, 0 B logs", "median wall", fmt_ms(zero), "—", "—",
                 "≤ 250 ms", verdict(zero <= 250)))
    rows.append(("2 … 1 GiB logs (sparse)", "median wall", fmt_ms(sparse), "—",
                 f"{sparse / zero:.2f}× the 0 B run", "≤ 250 ms, flat", verdict(sparse <= 250)))
    if "1 GiB written logs" in s2:
        real = ms(s2["1 GiB written logs"])
        rows.append(("2 … 1 GiB logs (written)", "median wall", fmt_ms(real), "—",
                     f"{real / zero:.2f}× the 0 B run", "≤ 250 ms, flat", verdict(real <= 250)))
    for label, key in (("0 B logs", "S2_RSS_KB"), ("1 GiB sparse", "S2_SPARSE_RSS_KB"),
                       ("1 GiB written", "S2_REAL_RSS_KB")):
        if key in m:
            rss = float(m[key])
            rows.append(("", f"peak RSS, {label} (median of 5)", fmt_kib(rss), "—", "—", "≤ 64 MiB",
                         verdict(rss <= 64 * 1024)))
    nr = hf("s2-norestart")
    if nr:
        r = ms(nr["1 GiB written logs, no app restarted"])
        rows.append(("2 … 1 GiB written, no app restarted (diagnostic)", "median wall / peak RSS",
                     f"{fmt_ms(r)} / {fmt_kib(float(m.get('S2_NORESTART_RSS_KB', 0)))}", "—",
                     f"{r / zero:.2f}× the 0 B run", "—", "info"))

s3 = hf("s3-doctor")
if s3:
    r = s3["pm2-doctor diagnose --timeout 2"]
    worst = max(r["times"]) * 1000
    p_ms = float(m["S3_PM2_WALL_MS"])
    rc = m.get("S3_PM2_RC", "?")
    pm2_cell = f"{fmt_ms(p_ms)}, rc {rc}" + (" (never returned)" if rc in ("124", "137") else "")
    rows.append(("3 wedged daemon", "wall (median / worst)", f"{fmt_ms(ms(r))} / {fmt_ms(worst)}",
                 pm2_cell, "doctor returns, pm2 hangs" if rc in ("124", "137") else "—",
                 "≤ 2.5 s", verdict(worst <= 2500)))

def s4_runs():
    """Per run: wall ms, rc, orphans alive after, pm2.pid left, and from the
    repair's JSON: outcomes of the terminations and how long they took."""
    runs = []
    for r in range(1, int(m.get("S4_RUNS", 0)) + 1):
        if f"S4_R{r}_WALL_MS" not in m:
            continue
        run = {"wall": float(m[f"S4_R{r}_WALL_MS"]), "rc": m.get(f"S4_R{r}_RC"),
               "alive": int(m.get(f"S4_R{r}_ALIVE_AFTER", -1)),
               "pidfile_left": m.get(f"S4_R{r}_PIDFILE_LEFT"), "outcomes": {}, "kill_ms": None}
        try:
            doc = json.load(open(os.path.join(out, f"s4-repair-r{r}.json")))
            from datetime import datetime
            t = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() * 1000
            kills = [a for a in doc.get("results", []) if a["action"]["kind"] == "terminate"]
            for a in doc.get("results", []):
                run["outcomes"][a.get("result")] = run["outcomes"].get(a.get("result"), 0) + 1
            if kills:
                run["kill_ms"] = max(t(a["finished_at"]) for a in kills) - min(t(a["started_at"]) for a in kills)
        except (OSError, ValueError, KeyError):
            pass
        runs.append(run)
    return runs


s4 = s4_runs()
if s4:
    grace = float(m.get("S4_GRACE", 3))
    walls = [r["wall"] for r in s4]
    med = statistics.median(walls)
    n = int(m.get("S4_ORPHANS", 0))
    all_dead = all(r["alive"] == 0 for r in s4)
    rows.append((f"4 repair --yes, {n} orphans ignoring SIGTERM + stale pm2.pid",
                 f"wall (median of {len(s4)}; min / max)",
                 f"{fmt_ms(med)} ({fmt_ms(min(walls))} / {fmt_ms(max(walls))})", "—",
                 f"grace {grace:g} s + {med - grace * 1000:,.0f} ms",
                 f"≤ grace + 1 s = {grace + 1:g} s, all dead",
                 verdict(med <= (grace + 1) * 1000 and all_dead)
                 + ("" if all_dead else " (orphans left: " + ", ".join(str(r["alive"]) for r in s4) + ")")))

s5 = hf("s5-wall")
if s5:
    full, empty = ms(s5["50 MiB error logs"]), ms(s5["empty error logs"])
    apps = m.get("S5_APPS", "?")
    rows.append((f"5 crash loops, {apps} apps, 50 MiB error logs each", "median wall", fmt_ms(full), "—",
                 f"{full / empty:.2f}× the empty-log run ({fmt_ms(empty)})", "≤ 2×", verdict(full <= 2 * empty)))
    fr, er = float(m["S5_RSS_KB"]), float(m["S5_EMPTY_RSS_KB"])
    rows.append(("", "peak RSS (median of 5)", fmt_kib(fr), "—",
                 f"{fr / er:.2f}× the empty-log run ({fmt_kib(er)})", "≤ 2×", verdict(fr <= 2 * er)))

head = ("scenario", "metric", "pm2-doctor", "PM2 7.0.4", "ratio doctor/pm2", "goal", "result")
print(f"Machine: {m.get('NPROC')} cores, {m.get('CPU')}, {m.get('MEM_GIB')} GiB RAM, "
      f"Linux {m.get('KERNEL')}; node {m.get('NODE')}, pm2 {m.get('PM2_VERSION')}, "
      f"{m.get('HYPERFINE')}, {m.get('DOCTOR_VERSION')} (git {m.get('GIT')}); {m.get('PROCS')} processes at start; "
      f"load average {m.get('LOAD_START')} at start, {m.get('LOAD_END')} at end; "
      f"CPU busy before scenario 1: {m.get('S1_BUSY_PCT')} %, before scenario 2: {m.get('S2_BUSY_PCT')} %, "
      f"before scenario 5: {m.get('S5_BUSY_PCT')} %; "
      f"whole run {m.get('ELAPSED_S', '?')} s.")
print()
print("| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
for row in rows:
    print("| " + " | ".join(row) + " |")
print()
notes = []
if "S1_DOCTOR_RC" in m:
    notes.append(f"scenario 1: doctor exit code {m['S1_DOCTOR_RC']} (0 = healthy), "
                 f"{m.get('S1_ONLINE')}/{m.get('S1_APPS')} apps online, jlist output {m.get('S1_JLIST_BYTES')} bytes, "
                 f"{m.get('S1_PROCS')} processes on the host.")
if "S2_DUMP_BYTES" in m:
    notes.append(f"scenario 2: dump.pm2 {int(m['S2_DUMP_BYTES']):,} bytes, {m.get('S2_PIDFILES')} pid files, "
                 f"{m.get('S2_LOGFILES')} log files; sparse logs {int(m.get('S2_SPARSE_APPARENT', 0)):,} bytes apparent / "
                 f"{int(m.get('S2_SPARSE_ALLOCATED', 0)):,} allocated"
                 + (f"; written logs {int(m['S2_REAL_ALLOCATED']):,} bytes allocated" if "S2_REAL_ALLOCATED" in m
                    else f"; written-logs run skipped ({m.get('S2_REAL_SKIPPED')})")
                 + f"; doctor exit code {m.get('S2_DOCTOR_RC')}.")
if "S3_DOCTOR_RC" in m:
    notes.append(f"scenario 3: doctor exit code {m['S3_DOCTOR_RC']}; `timeout 10 pm2 jlist` rc {m.get('S3_PM2_RC')}, "
                 f"pm2 spawned a daemon: {m.get('S3_PM2_SPAWNED_DAEMON')}.")
if s4:
    notes.append("scenario 4 runs: " + "; ".join(
        f"{fmt_ms(r['wall'])} rc {r['rc']}, orphans alive after {r['alive']}, pm2.pid left: {r['pidfile_left']}"
        + (f", terminations {fmt_ms(r['kill_ms'])}" if r["kill_ms"] is not None else "")
        + ", results " + ", ".join(f"{k} ×{v}" for k, v in sorted(r["outcomes"].items(), key=str))
        for r in s4) + f" (each orphan was checked to survive a SIGTERM before the run).")
if "S5_LOG_MODE" in m:
    def loop_findings(name):
        try:
            doc = json.load(open(os.path.join(out, name)))
        except (OSError, ValueError):
            return "?"
        loops = [f for f in doc.get("findings", []) if f.get("check") == "app.crash-loop"]
        caused = [f for f in loops if "cause" in (f.get("evidence") or {})]
        return f"{len(loops)} `app.crash-loop` findings, {len(caused)} with a cause from the log"
    notes.append(f"scenario 5: error logs written `{m['S5_LOG_MODE']}` "
                 f"({int(float(m.get('S5_ERRLOG_APPARENT', 0))):,} bytes apparent, "
                 f"{int(float(m.get('S5_ERRLOG_ALLOCATED', 0))):,} allocated; {int(float(m.get('S5_DISK_AVAIL', 0))):,} bytes were free); "
                 f"doctor exit code {m.get('S5_DOCTOR_RC')} / {m.get('S5_EMPTY_DOCTOR_RC')} (empty logs); "
                 f"50 MiB logs: {loop_findings('s5-diagnose.json')}; empty logs: {loop_findings('s5-diagnose-empty.json')}.")
ref = hf("s1-reference")
if ref:
    notes.append("reference (live daemon up): `pm2-doctor checks` (start-up floor, reads nothing) "
                 f"{fmt_ms(ms(ref['pm2-doctor checks']))}; `cat /proc/net/tcp /proc/net/tcp6` "
                 f"{fmt_ms(ms(ref['cat /proc/net/tcp /proc/net/tcp6']))} "
                 f"(TCP established hash: {m.get('TCP_EHASH')} buckets).")
for label, group in (("1", s1), ("2", s2), ("2 (diagnostic)", hf("s2-norestart")), ("3", s3),
                     ("5", s5)):
    if group:
        notes.append(f"scenario {label} runs: " + "; ".join(
            f"`{r['command']}` {r['runs']} runs, median {fmt_ms(ms(r))}, fastest {fmt_ms(r['min'] * 1000)}, "
            f"CPU (user+sys, mean) {fmt_ms(r['cpu_mean'] * 1000)}"
            for r in group.values()) + ".")
for n in notes:
    print("- " + n)
