#!/usr/bin/env python3
"""BeMore Backend API simulator for the sandbox and the Molecule testbed.

It serves every endpoint of the maintenance guide with the shapes written in
module_utils/bemore_api.py, and lets tests inject faults at start
(``--fault NAME=VALUE``) or at run time (``POST /__sim/faults`` with a JSON
object; ``DELETE /__sim/faults`` clears them; ``GET /__sim/faults`` reads them).

Faults:
  error_spike=CATEGORY[:PERCENT]  that category's errors reach PERCENT % (default 3)
  latency_ms=N                    every API answer is delayed by N ms
  status_5xx=CODE                 every /api and /health answer is HTTP CODE
  malformed_json=1                answers are truncated JSON
  health_down=1                   /health answers 503 with status "error"
  refuse_s=N                      stop listening for N seconds (connection refused)
  cleanup_stalled=1               the app's temp cleanup service stopped running
  cleanup_errors=N                the app's temp cleanup service reports N errors
  memory_mb=N                     the process holds about N MB of extra memory
  no_rate_limit=1                 the rate limiter is off

Run-time control also accepts ``POST /__sim/commit`` ({"commit": "...",
"version": "..."}) and ``POST /__sim/restart`` (uptime starts again; memory_mb and health_down
end, as they would with a real restart).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
for candidate in (os.path.join(HERE, "..", "module_utils"), HERE):
    if os.path.exists(os.path.join(candidate, "bemore_api.py")):
        sys.path.insert(0, candidate)
        break
import bemore_api  # noqa: E402  pylint: disable=wrong-import-position

FAULT_NAMES = ("error_spike", "latency_ms", "status_5xx", "malformed_json", "health_down",
               "refuse_s", "cleanup_stalled", "cleanup_errors", "memory_mb", "no_rate_limit")

# Synthetic background traffic, so error rates are meaningful without load.
BASE_REQUESTS_PER_MIN = 2000
BASE_ERROR_RATE = 0.0005  # 0.05 %, inside the guide's 0.1 % target


def iso(ts):
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_fault(name, value):
    """Turn a CLI/JSON fault value into its typed form; raise ValueError when bad."""
    if name not in FAULT_NAMES:
        raise ValueError("unknown fault %r (known: %s)" % (name, ", ".join(FAULT_NAMES)))
    if name == "error_spike":
        if isinstance(value, dict):
            cat, pct = value.get("category"), value.get("percent", 3.0)
        else:
            cat, _, pct = str(value).partition(":")
            pct = pct or 3.0
        cat = str(cat).upper()
        if cat not in bemore_api.CATEGORIES:
            raise ValueError("error_spike category must be one of %s" % ", ".join(bemore_api.CATEGORIES))
        return {"category": cat, "percent": float(pct)}
    if name in ("malformed_json", "health_down", "cleanup_stalled", "no_rate_limit"):
        return str(value).lower() not in ("0", "false", "no", "")
    number = float(value)
    if number < 0:
        raise ValueError("%s must not be negative" % name)
    return number


class SimState(object):
    def __init__(self, args):
        self.lock = threading.Lock()
        self.started = time.time()
        self.version = args.version
        self.commit = args.commit
        self.faults = {}
        self.log_file = args.log_file
        self.env_file = args.env_file
        self.rate_limit = args.rate_limit
        self.cors_origins = [o for o in args.cors_origin if o]
        self.real_requests = 0
        self.real_errors = 0
        self.errors = []  # newest last
        self.rate_window = {}
        self.ballast = b""
        self.sessions = 0
        for cat in bemore_api.CATEGORIES:
            for i in range(2):
                self.record_error(cat, "%s sample error %d" % (cat.lower(), i + 1),
                                  ts=self.started - random.randint(600, 86400))
        self.errors.sort(key=lambda e: e["timestamp"])

    # errors -------------------------------------------------------------
    def record_error(self, category, message, ts=None):
        ts = ts or time.time()
        entry = {"id": "err_" + uuid.uuid4().hex[:12], "timestamp": iso(ts), "category": category,
                 "message": message, "level": "error"}
        self.errors.append(entry)
        del self.errors[:-500]
        self.log("ERROR", "[%s] %s" % (category, message), ts)
        return entry

    def log(self, level, message, ts=None):
        if not self.log_file:
            return
        line = "%s %s %s\n" % (iso(ts or time.time()), level, message)
        try:
            with open(self.log_file, "a", encoding="utf-8") as handle:
                handle.write(line)
        except OSError:
            pass

    def uptime(self):
        return int(time.time() - self.started)

    def window_counts(self):
        """Requests and errors in the last 5 minutes, synthetic + real."""
        minutes = min(5.0, max(self.uptime() / 60.0, 1.0))
        total = int(BASE_REQUESTS_PER_MIN * minutes) + self.real_requests
        by_cat = {cat: 0 for cat in bemore_api.CATEGORIES}
        base_errors = int(round(total * BASE_ERROR_RATE))
        by_cat["NETWORK"] += base_errors
        spike = self.faults.get("error_spike")
        if spike:
            by_cat[spike["category"]] += int(round(total * spike["percent"] / 100.0))
        by_cat["NETWORK"] += self.real_errors
        return total, by_cat

    # temp cleanup service --------------------------------------------------
    def cleanup_interval_min(self):
        interval = 60
        if self.env_file and os.path.exists(self.env_file):
            with open(self.env_file, encoding="utf-8") as handle:
                for line in handle:
                    key, _, value = line.strip().partition("=")
                    if key == "TEMP_CLEANUP_INTERVAL_MIN":
                        try:
                            interval = max(1, int(value))
                        except ValueError:
                            pass
        return interval

    def cleanup_stats(self):
        interval = self.cleanup_interval_min() * 60
        now = time.time()
        if self.faults.get("cleanup_stalled"):
            last = self.started - 3 * interval
            runs = 1
        else:
            runs = int((now - self.started) // interval) + 1
            last = self.started + (runs - 1) * interval
        return {"filesDeleted": 3 * runs, "bytesFreed": "%.2f" % (0.42 * runs), "checksRun": runs,
                "lastCheckTime": iso(last), "errors": int(self.faults.get("cleanup_errors", 0))}

    def set_faults(self, faults):
        parsed = {}
        for name, value in faults.items():
            parsed[name] = parse_fault(name, value)
        with self.lock:
            self.faults.update(parsed)
            mem = self.faults.get("memory_mb")
            self.ballast = bytearray(int(mem * 1024 * 1024)) if mem else b""
            for i in range(len(self.ballast) // 4096):
                self.ballast[i * 4096] = 1  # touch the pages so RSS really grows
        if "error_spike" in parsed:
            spike = parsed["error_spike"]
            for i in range(5):
                self.record_error(spike["category"], "%s failure during spike (%d)" % (spike["category"].lower(), i + 1))
        return parsed


def make_handler(state, server_holder):
    class Handler(BaseHTTPRequestHandler):
        server_version = "BeMoreSim/1.0"
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):  # quiet: the app log is what matters
            pass

        # helpers -------------------------------------------------------
        def _send(self, status, body, headers=None, raw=None):
            data = raw if raw is not None else json.dumps(body).encode("utf-8")
            if raw is None and state.faults.get("malformed_json") and not self.path.startswith("/__sim"):
                data = data[: max(1, len(data) // 2)]
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            origin = self.headers.get("Origin")
            if origin and origin in state.cors_origins:
                self.send_header("Access-Control-Allow-Origin", origin)
                self.send_header("Vary", "Origin")
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def _fail(self, status, code, message):
            self._send(status, {"success": False, "error": {"code": code, "message": message}})

        def _body(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length > 1024 * 1024:
                raise ValueError("request body too large")
            raw = self.rfile.read(length) if length else b""
            return json.loads(raw.decode("utf-8")) if raw else {}

        def _pre(self):
            """Apply injected faults and rate limiting; return False when answered."""
            path = urlsplit(self.path).path
            if path.startswith("/__sim"):
                return True
            with state.lock:
                state.real_requests += 1
            latency = state.faults.get("latency_ms")
            if latency:
                time.sleep(latency / 1000.0)
            code = state.faults.get("status_5xx")
            if code:
                state.log("ERROR", "[NETWORK] injected HTTP %d on %s" % (code, path))
                self._fail(int(code), "INJECTED", "injected server error")
                return False
            if path.startswith("/api/") and state.rate_limit and not state.faults.get("no_rate_limit"):
                key = (self.client_address[0], int(time.time() // 60))
                with state.lock:
                    state.rate_window = {k: v for k, v in state.rate_window.items() if k[1] == key[1]}
                    state.rate_window[key] = state.rate_window.get(key, 0) + 1
                    count = state.rate_window[key]
                if count > state.rate_limit:
                    self._send(429, {"success": False, "error": {"code": "RATE_LIMITED",
                                                                 "message": "Too many requests"}},
                               headers={"Retry-After": "60", "RateLimit-Limit": str(state.rate_limit)})
                    return False
            return True

        # verbs ---------------------------------------------------------
        def do_OPTIONS(self):  # CORS preflight
            origin = self.headers.get("Origin")
            self.send_response(204)
            if origin and origin in state.cors_origins:
                self.send_header("Access-Control-Allow-Origin", origin)
                self.send_header("Access-Control-Allow-Methods", "GET,POST,OPTIONS")
                self.send_header("Access-Control-Allow-Headers", "Content-Type,Authorization")
                self.send_header("Vary", "Origin")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self):
            if not self._pre():
                return
            parts = urlsplit(self.path)
            path, query = parts.path.rstrip("/") or "/", parse_qs(parts.query)
            now = time.time()
            if path == "/health":
                if state.faults.get("health_down"):
                    return self._send(503, {"status": "error", "timestamp": iso(now), "uptime": state.uptime(),
                                            "version": state.version, "commit": state.commit})
                return self._send(200, {"status": "ok", "timestamp": iso(now), "uptime": state.uptime(),
                                        "version": state.version, "commit": state.commit})
            if path == "/api/errors/stats":
                total, by_cat = state.window_counts()
                last = state.errors[-1]["timestamp"] if state.errors else None
                return self._send(200, {"success": True, "data": {
                    "totalErrors": sum(by_cat.values()), "totalRequests": total, "windowMinutes": 5,
                    "byCategory": by_cat, "lastErrorTime": last}})
            if path == "/api/monitoring/recent-errors":
                raw = query.get("limit", ["20"])[0]
                try:
                    limit = int(raw)
                except ValueError:
                    return self._fail(400, "INVALID_LIMIT", "limit must be an integer, got %r" % raw)
                if not 1 <= limit <= bemore_api.RECENT_LIMIT_MAX:
                    return self._fail(400, "INVALID_LIMIT", "limit must be between 1 and %d"
                                      % bemore_api.RECENT_LIMIT_MAX)
                errors = list(reversed(state.errors[-limit:]))
                return self._send(200, {"success": True, "data": {"errors": errors, "count": len(errors),
                                                                  "limit": limit}})
            if path.startswith("/api/monitoring/errors/"):
                cat = path.rsplit("/", 1)[1]
                if cat not in bemore_api.CATEGORIES:
                    return self._fail(404, "UNKNOWN_CATEGORY", "unknown error category %r; known: %s"
                                      % (cat, ", ".join(bemore_api.CATEGORIES)))
                errors = [e for e in reversed(state.errors) if e["category"] == cat][:50]
                _total, by_cat = state.window_counts()
                return self._send(200, {"success": True, "data": {"category": cat, "count": by_cat[cat],
                                                                  "errors": errors}})
            if path == "/api/system/temp-cleanup-stats":
                return self._send(200, {"success": True, "data": state.cleanup_stats()})
            if path == "/__sim/faults":
                return self._send(200, {"faults": state.faults, "commit": state.commit, "pid": os.getpid()})
            return self._fail(404, "NOT_FOUND", "no route for GET %s" % path)

        def do_POST(self):
            if not self._pre():
                return
            path = urlsplit(self.path).path.rstrip("/")
            try:
                body = self._body()
            except (ValueError, UnicodeDecodeError) as exc:
                return self._fail(400, "INVALID_JSON", "request body is not valid JSON: %s" % exc)
            if path == "/api/session/start":
                missing = [k for k in ("userId", "counselorId")
                           if not isinstance(body, dict) or not isinstance(body.get(k), str) or not body.get(k)]
                if missing:
                    return self._fail(400, "VALIDATION_ERROR", "missing or empty: %s" % ", ".join(missing))
                state.sessions += 1
                state.log("INFO", "session started for user %s" % body["userId"])
                return self._send(201, {"success": True, "data": {
                    "sessionId": "sess_" + uuid.uuid4().hex[:16], "userId": body["userId"],
                    "counselorId": body["counselorId"], "status": "active", "startedAt": iso(time.time())}})
            if path == "/__sim/faults":
                if not isinstance(body, dict):
                    return self._fail(400, "INVALID_FAULTS", "faults must be a JSON object")
                try:
                    parsed = state.set_faults(body)
                except (ValueError, TypeError) as exc:
                    return self._fail(400, "INVALID_FAULTS", str(exc))
                if "refuse_s" in parsed and parsed["refuse_s"] > 0:
                    threading.Thread(target=server_holder["refuse"], args=(parsed["refuse_s"],), daemon=True).start()
                return self._send(200, {"faults": state.faults})
            if path == "/__sim/commit":
                state.commit = str(body.get("commit") or state.commit)
                state.version = str(body.get("version") or state.version)
                return self._send(200, {"commit": state.commit, "version": state.version})
            if path == "/__sim/restart":
                # A restart ends what lives in the process (leaked memory, a
                # hung event loop), not what comes from outside (error_spike
                # of a failing upstream API, latency, disk).
                with state.lock:
                    state.started = time.time()
                    for fault in ("memory_mb", "health_down"):
                        state.faults.pop(fault, None)
                    state.ballast = b""
                state.log("INFO", "server restarted")
                return self._send(200, {"uptime": 0})
            return self._fail(404, "NOT_FOUND", "no route for POST %s" % path)

        def do_DELETE(self):
            path = urlsplit(self.path).path.rstrip("/")
            if path == "/__sim/faults":
                with state.lock:
                    state.faults.clear()
                    state.ballast = b""
                return self._send(200, {"faults": {}})
            if path == "/__sim/rate-window":
                # Test hook: forget the requests counted this minute.
                with state.lock:
                    state.rate_window = {}
                return self._send(200, {"rate_window": {}})
            return self._fail(404, "NOT_FOUND", "no route for DELETE %s" % path)

    return Handler


def serve(args):
    state = SimState(args)
    for item in args.fault:
        name, _, value = item.partition("=")
        state.set_faults({name: value})
    holder = {}

    def make_server():
        srv = ThreadingHTTPServer((args.host, args.port), make_handler(state, holder))
        srv.daemon_threads = True
        return srv

    holder["server"] = make_server()

    def refuse(seconds):
        old = holder["server"]
        old.shutdown()
        old.server_close()
        time.sleep(seconds)
        with state.lock:
            state.faults.pop("refuse_s", None)
        holder["server"] = make_server()
        holder["restart"].set()

    holder["refuse"] = refuse
    holder["restart"] = threading.Event()

    def stop(_signum, _frame):
        holder["stopping"] = True
        threading.Thread(target=holder["server"].shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.pid_file:
        with open(args.pid_file, "w", encoding="utf-8") as handle:
            handle.write("%d\n" % os.getpid())
    state.log("INFO", "BeMore simulator listening on %s:%d (commit %s)" % (args.host, args.port, args.commit))
    initial_refuse = state.faults.get("refuse_s")
    if initial_refuse:
        threading.Thread(target=refuse, args=(initial_refuse,), daemon=True).start()
    while True:
        holder["restart"].clear()
        holder["server"].serve_forever(poll_interval=0.2)
        if holder.get("stopping"):
            break
        holder["restart"].wait()
    holder["server"].server_close()
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument("--version", default="1.0.0")
    parser.add_argument("--commit", default="abc1234def567")
    parser.add_argument("--commit-file", help="read the commit from this file (a release's REVISION); "
                                              "a missing or empty file stops the start, as a broken release would")
    parser.add_argument("--log-file", help="append app log lines (INFO/ERROR) here")
    parser.add_argument("--env-file", help="the app's .env, read for TEMP_CLEANUP_INTERVAL_MIN")
    parser.add_argument("--pid-file")
    parser.add_argument("--rate-limit", type=int, default=100, help="API requests per client per minute; 0 = off")
    parser.add_argument("--cors-origin", action="append", default=[], help="an allowed frontend origin")
    parser.add_argument("--fault", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    if args.commit_file:
        try:
            with open(args.commit_file, encoding="utf-8") as handle:
                args.commit = handle.read().strip()
        except OSError as exc:
            sys.exit("bemore_sim: cannot read the release's commit: %s" % exc)
        if not args.commit:
            sys.exit("bemore_sim: %s is empty" % args.commit_file)
    for item in args.fault:
        name, sep, value = item.partition("=")
        if not sep:
            parser.error("--fault wants NAME=VALUE, got %r" % item)
        try:
            parse_fault(name, value)
        except ValueError as exc:
            parser.error(str(exc))
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())
