import json, os, shutil
R = "/work/main/testdata/homes"
shutil.rmtree(R, ignore_errors=True)
os.makedirs(R)

def entry(name, pm_id, script, status="online", restarts=0, extra_env=None, home="{{ROOT}}/home", mode="fork_mode", interp="node", cwd="{{ROOT}}/apps"):
    env = {"PM2_HOME": home, "NODE_ENV": "production", "PATH": "/usr/local/bin:/usr/bin:/bin", "unique_id": "u-%s" % name}
    env.update(extra_env or {})
    e = {"name": name, "namespace": "default", "exec_mode": mode, "exec_interpreter": interp,
         "pm_exec_path": script, "pm_cwd": cwd,
         "pm_out_log_path": "%s/logs/%s-out.log" % (home, name), "pm_err_log_path": "%s/logs/%s-error.log" % (home, name),
         "pm_pid_path": "%s/pids/%s-%d.pid" % (home, name, pm_id),
         "status": status, "restart_time": restarts, "unstable_restarts": 0, "created_at": 1795854866686,
         "pm_uptime": 1795854866686, "autorestart": True, "env": env, "PM2_HOME": home}
    return e

def proc(pid, start, name, cmd, ppid=1, sid=None, env=None, state="alive", ports=(), uid=1000):
    p = {"pid": pid, "ppid": ppid, "start_time": start, "state": state, "sid": sid if sid is not None else pid,
         "uid": uid, "name": name, "cmd": cmd, "env": env, "listen_ports": list(ports)}
    return p

def app_env(name, pm_id, home="{{ROOT}}/home"):
    return {"home": home, "pm_id": str(pm_id), "unique_id": "u-%s" % name, "name": name}

def scenario(name, files, procs, expect, copy=True, extra=None, apps=("web.js", "ticker.js", "py.py")):
    d = os.path.join(R, name)
    os.makedirs(os.path.join(d, "home"), exist_ok=True)
    if apps:
        os.makedirs(os.path.join(d, "apps"), exist_ok=True)
        for a in apps:
            open(os.path.join(d, "apps", a), "w").write("// fixture app script\n")
    for rel, content in files.items():
        p = os.path.join(d, "home", rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        if content is None:
            os.makedirs(p, exist_ok=True)
            open(os.path.join(p, ".keep"), "w").write("")
            continue
        if not isinstance(content, str):
            content = json.dumps(content, indent=2)
        open(p, "w").write(content)
    json.dump({"processes": procs, "self_pid": 99999}, open(os.path.join(d, "processes.json"), "w"), indent=1)
    sc = {"copy": copy, "expect": expect}
    sc.update(extra or {})
    json.dump(sc, open(os.path.join(d, "scenario.json"), "w"), indent=2)

APPS = "{{ROOT}}/apps"
good_dump = [entry("web", 0, APPS + "/web.js"), entry("ticker", 1, APPS + "/ticker.js"),
             entry("py", 2, APPS + "/py.py", interp="python3")]
base_procs = [
    proc(1, 1795850000, "init", ["/sbin/init"], ppid=0, uid=0),
    proc(500, 1795850100, "bash", ["-bash"], env={"home": "{{ROOT}}/home"}),  # shell exporting PM2_HOME
]

# 1. healthy: no daemon running, valid dump, nothing stale
scenario("healthy-stopped", {"dump.pm2": good_dump, "dump.pm2.bak": good_dump, "logs/web-out.log": "hello\n"},
         base_procs, {"exit_code": 0, "problems": []},
         extra={"chmod": {"home/dump.pm2": "600", "home/dump.pm2.bak": "600"}})

# 2. daemon SIGKILLed: stale pm2.pid and sockets, orphans holding ports
procs = base_procs + [
    proc(16868, 1795855006, "node", ["node", "{{ROOT}}/apps/web.js"], env=app_env("web", 0), ports=[18741]),
    proc(16929, 1795855007, "python3", ["python3", "{{ROOT}}/apps/py.py"], env=app_env("py", 2), ports=[18742]),
    # grandchild of a wrapper app: env scrubbed, still in the wrapper's session
    proc(17022, 1795855008, "node", ["node", "server.js"], sid=16868, env={"home": None}, ports=[18743]),
    # another home's orphan: not ours
    proc(17100, 1795855009, "node", ["node", "/srv/other.js"], env=app_env("other", 0, home="/home/other/.pm2")),
    # a process whose pid is in a stale pid file? no: ticker died
]
scenario("daemon-killed-orphans",
         {"pm2.pid": "16113", "dump.pm2": good_dump, "pids/web-0.pid": "16868", "pids/ticker-1.pid": "16890",
          "pids/py-2.pid": "16929"},
         procs,
         {"exit_code": 4, "problems": ["daemon.pid-stale", "socket.stale", "pidfile.stale", "process.orphan"],
          "orphans": [16868, 16929, 17022]},
         extra={"stale_sockets": ["home/rpc.sock", "home/pub.sock"], "chmod": {"home/dump.pm2": "644"}})

# 3. pid reuse everywhere
procs = base_procs + [
    proc(4242, 1795850200, "sleep", ["sleep", "1000"], env={"home": None}),
    proc(5000, 1795850300, "nginx", ["nginx: worker process"], env={"home": None}, uid=33),
    proc(5001, 4102444800, "postgres", ["postgres: writer"], env=None, uid=110),  # started long after the file: reused
    proc(5002, 1000000000, "java", ["java", "-jar", "x.jar"], env=None, uid=111),  # unreadable, older: cannot tell
    proc(5003, 1795850400, "node", [], state="zombie", env=None),
]
scenario("pid-reuse",
         {"pm2.pid": "4242\n", "dump.pm2": good_dump, "pids/web-0.pid": "5000", "pids/api-1.pid": "5001",
          "pids/worker-2.pid": "5002", "pids/ticker-3.pid": "5003"},
         procs,
         {"exit_code": 12, "problems": ["daemon.pid-foreign", "pidfile.foreign", "pidfile.stale"], "unknown": ["pidfile.foreign"]},
         extra={"chmod": {"home/dump.pm2": "600"}})

# 4. hostile pid files
scenario("hostile-pid-files",
         {"pm2.pid": "", "pids/a-0.pid": "-1", "pids/b-1.pid": "0", "pids/c-2.pid": "99999999999",
          "pids/d-3.pid": "not a pid", "pids/e-4.pid": "", "pids/f-5.pid": None, "pids/g-6.pid": "1"},
         base_procs,
         {"exit_code": 12, "problems": ["daemon.pid-stale", "pidfile.invalid", "home.symlink-outside"],
          "unknown": ["pidfile.stale", "pidfile.foreign"]},
         extra={"symlinks": {"home/pids/h-7.pid": "/etc/hostname"}}, apps=())

# 5. corrupt dump with a valid backup
half = json.dumps(good_dump, indent=2)
scenario("corrupt-dump-with-backup", {"dump.pm2": half[: len(half) // 2], "dump.pm2.bak": good_dump},
         base_procs, {"exit_code": 4, "problems": ["dump.corrupt"], "fix": {"dump.corrupt": "restore-dump-from-backup"}},
         extra={"chmod": {"home/dump.pm2.bak": "600"}})

# 6. dump clobbered to []
scenario("empty-dump-with-backup", {"dump.pm2": "[]", "dump.pm2.bak": good_dump}, base_procs,
         {"exit_code": 0, "problems": ["dump.empty"]}, extra={"chmod": {"home/dump.pm2.bak": "600"}})

# 7. dumps PM2 would evaluate as code; a broken backup
scenario("dump-with-code",
         {"dump.pm2": '(process.mainModule.require("fs").writeFileSync("/tmp/INJECTED", "x"), [])',
          "dump.pm2.bak": "null"},
         base_procs, {"exit_code": 4, "problems": ["dump.unsafe", "dump.backup-corrupt"]}, apps=())
scenario("dump-js-literal",
         {"dump.pm2": "[{name: 'web', pm_exec_path: '/srv/web.js', env: {},}, // saved by hand\n]"},
         base_procs, {"exit_code": 4, "problems": ["dump.unsafe"]}, apps=())

# 8. bad entries
bad = [{"name": "noscript"}, 7,
       entry("gone", 1, "/nonexistent/pm2-doctor-fixture/gone.js", cwd="/nonexistent/pm2-doctor-fixture"),
       entry("elsewhere", 2, APPS + "/web.js", home="/home/someone/.pm2"),
       entry("leaky", 3, APPS + "/web.js", extra_env={"GITHUB_TOKEN": "ghp_FIXTURESECRET", "DB_PASSWORD": "hunter2"})]
scenario("bad-dump-entries", {"dump.pm2": bad}, base_procs,
         {"exit_code": 4, "problems": ["dump.invalid-entry", "dump.missing-script", "dump.foreign-home", "dump.secrets-exposed"],
          "secret_values": ["ghp_FIXTURESECRET", "hunter2"]},
         extra={"chmod": {"home/dump.pm2": "644"}})

# 9. a directory where rpc.sock should be
scenario("socket-is-a-directory", {"rpc.sock": None, "pub.sock": "not a socket\n"}, base_procs,
         {"exit_code": 4, "problems": ["socket.not-a-socket", "socket.stale"]}, apps=())

# 10. ghost daemons: two daemons of this home, socket deleted under them
procs = base_procs + [
    proc(16113, 1795855000, "PM2 v7.0.4: God", ["PM2 v7.0.4: God Daemon ({{ROOT}}/home)"], env={"home": "{{ROOT}}/home", "silent": True}),
    proc(16381, 1795855100, "PM2 v7.0.4: God", ["PM2 v7.0.4: God Daemon ({{ROOT}}/home)"], env={"home": "{{ROOT}}/home", "silent": True}),
    proc(16355, 1795855050, "node", ["node", "{{ROOT}}/apps/web.js"], ppid=16113, env=app_env("web", 0), ports=[18731]),
]
scenario("ghost-daemons", {"pm2.pid": "16381", "dump.pm2": good_dump, "pids/web-0.pid": "16355"}, procs,
         {"exit_code": 4, "problems": ["daemon.duplicate", "daemon.unresponsive"]},
         extra={"chmod": {"home/dump.pm2": "600"}})

# 11. no home at all
d = os.path.join(R, "no-home"); os.makedirs(d)
json.dump({"processes": base_procs, "self_pid": 99999}, open(os.path.join(d, "processes.json"), "w"), indent=1)
json.dump({"copy": True, "expect": {"exit_code": 0, "problems": ["home.missing"]}}, open(os.path.join(d, "scenario.json"), "w"), indent=2)

# 11b. the home was deleted (`rm -rf ~/.pm2`) but an app of it still runs
d = os.path.join(R, "home-deleted-orphan"); os.makedirs(d)
procs = base_procs + [proc(16868, 1795855006, "node", ["node", "/srv/web.js"], env=app_env("web", 0), ports=[18741])]
json.dump({"processes": procs, "self_pid": 99999}, open(os.path.join(d, "processes.json"), "w"), indent=1)
json.dump({"copy": True, "expect": {"exit_code": 4, "problems": ["home.missing", "process.orphan"], "orphans": [16868]}},
          open(os.path.join(d, "scenario.json"), "w"), indent=2)

# 12. the seed incident, as found on the Windows box (replayed on any OS)
WH = "C:\\Users\\dev\\.pm2"
def wentry(name, pm_id, script, interp, status, restarts, mode, cwd):
    e = entry(name, pm_id, script, status=status, restarts=restarts, home=WH, mode=mode, interp=interp, cwd=cwd)
    e["pm_out_log_path"] = WH + "\\logs\\%s-out.log" % name
    e["pm_err_log_path"] = WH + "\\logs\\%s-error.log" % name
    e["pm_pid_path"] = WH + "\\pids\\%s-%d.pid" % (name, pm_id)
    e["env"]["USERPROFILE"] = "C:\\Users\\dev"
    return e
seed_dump = [
    wentry("c3-backend", 0, "C:\\Code\\c3\\server.js", "node", "online", 212, "cluster_mode", "C:\\Code\\c3"),
    wentry("chinvex-gateway", 1, "C:\\Code\\chinvex\\gateway.py", "python", "online", 3446, "fork_mode", "C:\\Code\\chinvex"),
    wentry("chinvex-tunnel", 2, "C:\\Code\\chinvex\\tunnel.js", "node", "errored", 15, "fork_mode", "C:\\Code\\chinvex"),
]
seed_dump[1]["env"]["OPENAI_API_KEY"] = "sk-FIXTURE-NOT-REAL"
log = "\n".join([
    "2024-02-04T09:12:01: PM2 log: App [chinvex-gateway:1] exited with code [1] via signal [SIGINT]",
    "2024-02-04T09:12:01: PM2 log: App [chinvex-gateway:1] starting in -fork mode-",
    "2024-02-04T09:12:02: PM2 log: App [chinvex-gateway:1] online",
    "2024-02-04T09:12:05: PM2 error: Error caught while calling pidusage",
    "2024-02-04T09:12:05: PM2 error: Error: Node - DESKTOP-P97ADMK",
    "ERROR: Description = Call cancelled",
    "2024-02-04T09:12:09: PM2 log: App [chinvex-gateway:1] exited with code [1] via signal [SIGINT]",
]) + "\n"
err = "ERROR: [Errno 10048] error while attempting to bind on address ('127.0.0.1', 7778): [winerror 10048] only one usage of each socket address (protocol/network address/port) is normally permitted\n" * 3
SH = "testdata/homes/seed-incident/home"
procs = [
    proc(4, 1706990000, "System", [], ppid=0, env=None, uid=0),
    # the hung c3-backend instance holding 7780 (its daemon is gone)
    proc(4960, 1707030000, "node.exe", ["node", "C:\\Code\\c3\\server.js"], ppid=66696, env=app_env("c3-backend", 0, home=SH), ports=[7780]),
    # the hung chinvex-gateway instance holding 7778
    proc(7312, 1707031000, "python.exe", ["python", "C:\\Code\\chinvex\\gateway.py"], ppid=66696, env=app_env("chinvex-gateway", 1, home=SH), ports=[7778]),
    # unrelated node processes on the same machine (an editor's helpers): never touched
    proc(8100, 1707000000, "node.exe", ["node", "C:\\Program Files\\Editor\\server.js"], env={"home": None}),
    proc(8101, 1707000001, "Code.exe", ["Code.exe"], env=None),
]
scenario("seed-incident",
         {"pm2.pid": "66696", "dump.pm2": seed_dump, "dump.pm2.bak": seed_dump, "pm2.log": log,
          "logs/chinvex-gateway-error.log": err, "logs/c3-backend-error.log": "Error: listen EADDRINUSE: address already in use 127.0.0.1:7780\n",
          "pids/c3-backend-0.pid": "4960", "pids/chinvex-gateway-1.pid": "18244", "pids/chinvex-tunnel-2.pid": "18250"},
         procs,
         {"exit_code": 4, "problems": ["daemon.pid-stale", "pidfile.stale", "process.orphan", "dump.secrets-exposed",
                                       "app.crash-loop", "app.guard-bypassed", "app.port-conflict", "log.daemon-errors",
                                       "windows.wmi-degraded"],
          "orphans": [4960, 7312], "port_holders": {"c3-backend": 4960, "chinvex-gateway": 7312}},
         copy=False, apps=())
print("ok")
