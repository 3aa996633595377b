#!/usr/bin/env python3
"""Builds the files of a big PM2 home for bench/run.sh (scenario 2).

    gen_home.py home --home H --apps N --sample dump.pm2.sample.json --script S
                     [--restart-mod 7 | --restart-base B] [--dump-only]
        dump.pm2 with N realistic entries (~10 KB each, pretty-printed the way
        PM2 writes it; app i has restart_time i % 7, so 6 apps in 7 have
        restarted at least once; with --restart-base B it is B + i, so every
        app is crash-looping when B >= 50), pids/<name>-<id>.pid naming pids
        that are not running, and logs/<name>-out.log + logs/<name>-error.log,
        empty.
    gen_home.py logs --home H --total BYTES --mode sparse|real
        Sizes every file in H/logs so they add up to BYTES: `sparse` only
        moves the end of file (like `truncate -s`), `real` writes log lines.
    gen_home.py errlogs --home H --bytes N --mode distinct|hardlink
        Fills every logs/*-error.log of H with N bytes of real data: Node's
        EADDRINUSE crash (message, 10 stack frames, error object) repeated,
        each copy with its own timestamp. `distinct` writes every file (each
        names its own app's PORT); `hardlink` writes the first one and
        hard-links the others to it (one copy of the data on disk).
    gen_home.py ecosystem --out F --script S --apps N
        An ecosystem file of N http apps on distinct free 127.0.0.1 ports.

Only ever writes under the paths it is given.
"""

import argparse
import copy
import json
import os
import random
import socket
import sys
import uuid

# A realistic login-shell environment. PM2 copies the CLI's whole environment
# into every app entry twice: as top-level keys and inside `env`.
LS_COLORS = ":".join(
    ["rs=0", "di=01;34", "ln=01;36", "mh=00", "pi=40;33", "so=01;35", "do=01;35",
     "bd=40;33;01", "cd=40;33;01", "or=40;31;01", "mi=00", "su=37;41", "sg=30;43",
     "ca=00", "tw=30;42", "ow=34;42", "st=37;44", "ex=01;32"]
    + [f"*.{ext}=01;31" for ext in (
        "tar tgz arc arj taz lha lz4 lzh lzma tlz txz tzo t7z zip z dz gz lrz lz lzo "
        "xz zst tzst bz2 bz tbz tbz2 tz deb rpm jar war ear sar rar alz ace zoo cpio "
        "7z rz cab wim swm dwm esd").split()]
    + [f"*.{ext}=01;35" for ext in (
        "avif jpg jpeg mjpg mjpeg gif bmp pbm pgm ppm tga xbm xpm tif tiff png svg "
        "svgz mng pcx mov mpg mpeg m2v mkv webm webp ogm mp4 m4v mp4v vob qt nuv wmv "
        "asf rm rmvb flc avi fli flv gl dl xcf xwd yuv cgm emf ogv ogx").split()]
    + [f"*.{ext}=00;36" for ext in "aac au flac m4a mid midi mka mp3 mpc ogg ra wav oga opus spx xspf".split()]
)

SHELL_ENV = {
    "LANG": "en_US.UTF-8",
    "LANGUAGE": "en_US:en",
    "LC_ALL": "en_US.UTF-8",
    "TERM": "xterm-256color",
    "COLORTERM": "truecolor",
    "USER": "deploy",
    "LOGNAME": "deploy",
    "MAIL": "/var/mail/deploy",
    "SHLVL": "2",
    "OLDPWD": "/home/deploy",
    "HISTSIZE": "10000",
    "HISTCONTROL": "ignoredups:erasedups",
    "EDITOR": "vim",
    "VISUAL": "vim",
    "PAGER": "less",
    "LESSOPEN": "| /usr/bin/lesspipe %s",
    "LESSCLOSE": "/usr/bin/lesspipe %s %s",
    "XDG_SESSION_ID": "4711",
    "XDG_RUNTIME_DIR": "/run/user/1001",
    "XDG_SESSION_TYPE": "tty",
    "XDG_SESSION_CLASS": "user",
    "XDG_DATA_DIRS": "/usr/local/share:/usr/share:/var/lib/snapd/desktop",
    "DBUS_SESSION_BUS_ADDRESS": "unix:path=/run/user/1001/bus",
    "SSH_CLIENT": "10.20.30.40 51514 22",
    "SSH_CONNECTION": "10.20.30.40 51514 10.20.30.50 22",
    "SSH_TTY": "/dev/pts/0",
    "MOTD_SHOWN": "pam",
    "NVM_DIR": "/home/deploy/.nvm",
    "NVM_BIN": "/home/deploy/.nvm/versions/node/v20.20.2/bin",
    "NVM_INC": "/home/deploy/.nvm/versions/node/v20.20.2/include/node",
    "NVM_CD_FLAGS": "",
    "MANPATH": "/home/deploy/.nvm/versions/node/v20.20.2/share/man:/usr/local/man:/usr/local/share/man:/usr/share/man",
    "NODE_OPTIONS": "--max-old-space-size=1536 --enable-source-maps",
    "NODE_ENV": "production",
    "TZ": "UTC",
    "APP_REGION": "eu-west-1",
    "APP_LOG_LEVEL": "info",
    "APP_METRICS_PORT": "9464",
    "APP_FEATURE_FLAGS": "checkout-v2,search-rerank,async-invoices,new-onboarding,pdf-export",
    "APP_ALLOWED_ORIGINS": "https://www.example.com,https://admin.example.com,https://api.example.com",
    "APP_UPSTREAM_URLS": "http://10.20.0.11:8080,http://10.20.0.12:8080,http://10.20.0.13:8080",
    "LS_COLORS": LS_COLORS,
}


def entry_for(template, i, home, script, restart_mod, restart_base=None):
    e = copy.deepcopy(template)
    name = f"svc-{i:04d}"
    uid = str(uuid.UUID(int=random.getrandbits(128), version=4))
    cwd = os.path.dirname(script)
    pid_path = os.path.join(home, "pids", f"{name}-{i}.pid")
    e.update(
        name=name,
        pm_exec_path=script,
        pm_cwd=cwd,
        pm_out_log_path=os.path.join(home, "logs", f"{name}-out.log"),
        pm_err_log_path=os.path.join(home, "logs", f"{name}-error.log"),
        pm_pid_path=pid_path,
        PM2_HOME=home,
        PWD=cwd,
        unique_id=uid,
        status="online",
        exec_mode="fork_mode",
        restart_time=i % restart_mod if restart_base is None else restart_base + i,
        unstable_restarts=0,
        NODE_APP_INSTANCE=0,
    )
    env = {
        "HOME": "/home/deploy",
        "PATH": "/home/deploy/.nvm/versions/node/v20.20.2/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "PM2_HOME": home,
        "PM2_USAGE": "CLI",
        "PWD": cwd,
        "SHELL": "/bin/bash",
        "_": "/usr/local/bin/pm2",
        **SHELL_ENV,
        "PORT": str(20000 + i),
        name: {},
        "unique_id": uid,
    }
    e["env"] = env
    for k, v in SHELL_ENV.items():
        e[k] = v
    e["PORT"] = str(20000 + i)
    return name, e


def dead_pids(n):
    """n distinct pids (2..pid_max) that are not running right now."""
    try:
        pid_max = int(open("/proc/sys/kernel/pid_max").read())
    except OSError:
        pid_max = 32768
    live = {int(p) for p in os.listdir("/proc") if p.isdigit()}
    pool = [p for p in range(300, pid_max) if p not in live]
    if len(pool) < n:
        sys.exit(f"not enough free pids below pid_max={pid_max}")
    return random.sample(pool, n)


def cmd_home(a):
    random.seed(42)
    home = os.path.abspath(a.home)
    for d in ("pids", "logs"):
        os.makedirs(os.path.join(home, d), exist_ok=True)
    template = json.load(open(a.sample))[0]
    entries, names = [], []
    for i in range(a.apps):
        name, e = entry_for(template, i, home, os.path.abspath(a.script), a.restart_mod,
                            a.restart_base)
        entries.append(e)
        names.append(name)
    # PM2 writes its dump with JSON.stringify(list, '', 2).
    text = json.dumps(entries, indent=2)
    with open(os.path.join(home, "dump.pm2"), "w") as f:
        f.write(text)
    if a.dump_only:
        return
    for i, (name, pid) in enumerate(zip(names, dead_pids(a.apps))):
        with open(os.path.join(home, "pids", f"{name}-{i}.pid"), "w") as f:
            f.write(str(pid))
        for kind in ("out", "error"):
            open(os.path.join(home, "logs", f"{name}-{kind}.log"), "w").close()
    print(json.dumps({"apps": a.apps, "dump_bytes": len(text),
                      "bytes_per_entry": len(text) // max(a.apps, 1)}))


LINE = ("2025-11-28T09:30:00.000Z svc GET /api/v1/orders/12345?expand=items,customer "
        "200 1834 bytes 12.7 ms req_id=8f14e45fceea167a5a36dedd4bea2543\n")


def cmd_logs(a):
    logs = os.path.join(os.path.abspath(a.home), "logs")
    files = sorted(os.path.join(logs, f) for f in os.listdir(logs))
    if not files:
        sys.exit("no log files")
    base, rem = divmod(a.total, len(files))
    block = (LINE * (1024 * 1024 // len(LINE) + 1)).encode()[: 1024 * 1024]
    for i, path in enumerate(files):
        size = base + (1 if i < rem else 0)
        if a.mode == "sparse":
            os.truncate(path, 0)
            os.truncate(path, size)
        else:
            with open(path, "wb") as f:
                left = size
                while left > 0:
                    chunk = block[: min(left, len(block))]
                    f.write(chunk)
                    left -= len(chunk)


CRASH = """\
{stamp}: Error: listen EADDRINUSE: address already in use :::{port}
    at Server.setupListenHandle [as _listen2] (node:net:1872:16)
    at listenInCluster (node:net:1920:12)
    at Server.listen (node:net:2008:7)
    at Object.<anonymous> (/srv/app/server.js:42:8)
    at Module._compile (node:internal/modules/cjs/loader:1358:14)
    at Module._extensions..js (node:internal/modules/cjs/loader:1416:10)
    at Module.load (node:internal/modules/cjs/loader:1208:32)
    at Module._load (node:internal/modules/cjs/loader:1024:12)
    at Object.<anonymous> (/usr/lib/node_modules/pm2/lib/ProcessContainerFork.js:33:23)
    at Module._compile (node:internal/modules/cjs/loader:1358:14) {{
  code: 'EADDRINUSE',
  errno: -98,
  syscall: 'listen',
  address: '::',
  port: {port}
}}
"""


def crash_log(port, size):
    """size bytes of repeated EADDRINUSE crashes naming port, each with its
    own timestamp; cut at a crash boundary, padded with whole crashes."""
    out, n, total = [], 0, 0
    while total < size:
        s, ms = divmod(n, 1000)
        m, s = divmod(s, 60)
        h, m = divmod(m, 60)
        rec = CRASH.format(stamp=f"2026-11-{1 + h // 24 % 28:02d}T{h % 24:02d}:{m:02d}:{s:02d}.{ms:03d}",
                           port=port).encode()
        out.append(rec)
        total += len(rec)
        n += 1
    return b"".join(out)[:size]


def cmd_errlogs(a):
    home = os.path.abspath(a.home)
    dump = json.load(open(os.path.join(home, "dump.pm2")))
    # Built once with a 5-character port placeholder, then specialised per
    # app (the bench's ports are all 5 digits, so every file has the same
    # size and the crash boundaries stay put).
    template = crash_log("PPPPP", a.bytes)
    first = None
    for e in dump:
        path = e["pm_err_log_path"]
        if first is not None and a.mode == "hardlink":
            os.unlink(path)
            os.link(first, path)
            continue
        port = str(e.get("PORT", "30000")).rjust(5, "0")[:5].encode()
        with open(path, "wb") as f:
            f.write(template.replace(b"PPPPP", port))
        first = path


def cmd_ecosystem(a):
    # Hold all sockets open at once so the ports are distinct, then release.
    socks = []
    for _ in range(a.apps):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    apps = [{
        "name": f"app-{i:02d}",
        "script": os.path.abspath(a.script),
        "env": {"PORT": str(p), "HOST": "127.0.0.1"},
        "autorestart": True,
    } for i, p in enumerate(ports)]
    with open(a.out, "w") as f:
        json.dump({"apps": apps}, f, indent=2)
    print(" ".join(map(str, ports)))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("home")
    h.add_argument("--home", required=True)
    h.add_argument("--apps", type=int, default=2000)
    h.add_argument("--sample", required=True)
    h.add_argument("--script", required=True)
    h.add_argument("--restart-mod", type=int, default=7,
                   help="app i gets restart_time = i %% N (1: no app ever restarted)")
    h.add_argument("--restart-base", type=int, default=None,
                   help="app i gets restart_time = B + i (overrides --restart-mod)")
    h.add_argument("--dump-only", action="store_true",
                   help="rewrite dump.pm2 only, keep pids/ and logs/")
    l = sub.add_parser("logs")
    l.add_argument("--home", required=True)
    l.add_argument("--total", type=int, required=True)
    l.add_argument("--mode", choices=("sparse", "real"), required=True)
    r = sub.add_parser("errlogs")
    r.add_argument("--home", required=True)
    r.add_argument("--bytes", type=int, required=True)
    r.add_argument("--mode", choices=("distinct", "hardlink"), required=True)
    e = sub.add_parser("ecosystem")
    e.add_argument("--out", required=True)
    e.add_argument("--script", required=True)
    e.add_argument("--apps", type=int, default=20)
    a = p.parse_args()
    {"home": cmd_home, "logs": cmd_logs, "errlogs": cmd_errlogs,
     "ecosystem": cmd_ecosystem}[a.cmd](a)


if __name__ == "__main__":
    main()
