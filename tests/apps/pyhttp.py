"""HTTP server for the real-PM2 tests: listens on 127.0.0.1:$PORT.

Silent (no request log), so it survives the death of its PM2 daemon as an
orphan, like any non-Node app (pm2-internals section 5.4).
"""

import http.server
import os


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("ok from %d\n" % os.getpid()).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
