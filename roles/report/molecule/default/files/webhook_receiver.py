#!/usr/bin/env python3
"""Receive one webhook POST on 127.0.0.1 (any free port), answer 200, save its body, exit.

    webhook_receiver.py PORT_FILE BODY_FILE

Writes the port it listens on to PORT_FILE first; gives up after 300 s.
"""
import http.server
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with open(sys.argv[2], "wb") as handle:
            handle.write(body)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
server.timeout = 300
with open(sys.argv[1], "w") as handle:
    handle.write(str(server.server_address[1]))
server.handle_request()
