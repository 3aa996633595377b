#!/usr/bin/env python3
"""A wedged PM2 daemon: listens on a unix socket, accepts every connection and
never sends a byte. Usage: wedge.py SOCKET READY_FILE [MAX_SECONDS]

Writes READY_FILE once it is listening. Exits on SIGTERM, or by itself after
MAX_SECONDS (default 300) so a forgotten listener cannot outlive a bench run.
"""
import os
import signal
import socket
import sys

path, ready = sys.argv[1], sys.argv[2]
max_secs = int(sys.argv[3]) if len(sys.argv) > 3 else 300
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
signal.alarm(max_secs)  # default SIGALRM action terminates the process

srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(path)
srv.listen(64)
with open(ready, "w") as f:
    f.write(str(os.getpid()))
held = []
try:
    while True:
        conn, _ = srv.accept()
        held.append(conn)  # keep it open, read nothing, answer nothing
finally:
    srv.close()
    try:
        os.unlink(path)
    except OSError:
        pass
