#!/usr/bin/env python3
"""A small npm registry and advisory service for tests and the sandbox (stdlib only).

The public registry answers GET requests only on these machines, so `npm
audit` (a POST) cannot reach it. This server speaks the few parts of the npm
registry protocol the real npm CLI needs, from a fixture file:

    GET  /NAME, /@SCOPE%2fNAME            packument (every version, dist-tags)
    GET  /NAME/-/NAME-VERSION.tgz         tarball built from the fixture
    POST /-/npm/v1/security/advisories/bulk   gzip JSON {name: [versions]}
                                          -> {name: [advisory, ...]}
    POST /-/npm/v1/security/audits/quick  answered with the same status as bulk
    GET/POST /__registry/state            {"audit_status": 200|4xx|5xx}

Fixture (JSON):
    {"packages": {"validator": {"latest": "13.15.20",
                                "versions": {"13.9.0": {"dependencies": {}},
                                             "13.15.20": {"index_js": "..."}}}},
     "advisories": {"validator": [{"id": 1, "url": "...", "title": "...",
                                   "severity": "moderate",
                                   "vulnerable_versions": "<13.15.20"}]}}

Tarballs are built deterministically (fixed mtimes), so integrity hashes in a
package-lock.json stay valid across restarts.

    npm_registry.py --port 4873 --fixture sandbox/npm_fixture.json [--pid-file F]
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_FIXTURE = os.path.join(HERE, "npm_fixture.json")


def build_tarball(name, version, spec):
    """Return the .tgz bytes of one fixture version (deterministic)."""
    manifest = {"name": name, "version": version, "main": "index.js",
                "dependencies": spec.get("dependencies", {})}
    files = {
        "package/package.json": json.dumps(manifest, indent=2).encode(),
        "package/index.js": spec.get(
            "index_js",
            "module.exports = { name: %s, version: %s };\n" % (json.dumps(name), json.dumps(version))).encode(),
    }
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for member, data in sorted(files.items()):
            info = tarfile.TarInfo(member)
            info.size = len(data)
            info.mtime = 499162500  # npm's own fixed mtime (1985-10-26)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


class Registry:
    def __init__(self, fixture):
        self.packages = fixture.get("packages", {})
        self.advisories = fixture.get("advisories", {})
        self.audit_status = 200
        self.audit_requests = []
        self._tarballs = {}
        self.lock = threading.Lock()

    def tarball(self, name, version):
        key = (name, version)
        if key not in self._tarballs:
            self._tarballs[key] = build_tarball(name, version, self.packages[name]["versions"][version])
        return self._tarballs[key]

    def packument(self, name, base):
        pkg = self.packages[name]
        versions = {}
        for version, spec in pkg["versions"].items():
            data = self.tarball(name, version)
            basename = name.split("/")[-1]
            versions[version] = {
                "name": name,
                "version": version,
                "dependencies": spec.get("dependencies", {}),
                "dist": {
                    "tarball": "%s/%s/-/%s-%s.tgz" % (base, name, basename, version),
                    "shasum": hashlib.sha1(data).hexdigest(),
                    "integrity": "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode(),
                },
            }
        latest = pkg.get("latest") or sorted(versions, key=_version_key)[-1]
        return {"name": name, "dist-tags": {"latest": latest}, "versions": versions,
                "time": {v: "2025-01-01T00:00:00.000Z" for v in versions}}

    def bulk(self, request):
        out = {}
        for name in request:
            if name in self.advisories:
                out[name] = self.advisories[name]
        return out


def _version_key(version):
    core = version.split("-", 1)[0]
    return tuple(int(p) if p.isdigit() else 0 for p in core.split("."))


class Handler(BaseHTTPRequestHandler):
    server_version = "bemore-npm-fixture/1"
    registry: Registry = None

    def log_message(self, fmt, *args):  # quiet: tests read results, not logs
        pass

    def _send(self, status, body, ctype="application/json"):
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length) if length else b""
        if self.headers.get("Content-Encoding") == "gzip" or data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        return data

    def _base(self):
        return "http://%s" % self.headers.get("Host", "127.0.0.1:%d" % self.server.server_address[1])

    def do_GET(self):
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).lstrip("/")
        reg = self.registry
        if path == "__registry/state":
            return self._send(200, {"audit_status": reg.audit_status, "audit_requests": reg.audit_requests})
        if "/-/" in path:
            name, filename = path.split("/-/", 1)
            pkg = reg.packages.get(name)
            prefix = name.split("/")[-1] + "-"
            if pkg and filename.startswith(prefix) and filename.endswith(".tgz"):
                version = filename[len(prefix):-4]
                if version in pkg["versions"]:
                    return self._send(200, reg.tarball(name, version), "application/octet-stream")
            return self._send(404, {"error": "Not found"})
        if path in reg.packages:
            return self._send(200, reg.packument(path, self._base()))
        return self._send(404, {"error": "Not found"})

    def do_POST(self):
        path = urllib.parse.urlsplit(self.path).path
        reg = self.registry
        if path == "/__registry/state":
            state = json.loads(self._body() or b"{}")
            with reg.lock:
                reg.audit_status = int(state.get("audit_status", reg.audit_status))
                if state.get("advisories") is not None:
                    reg.advisories = state["advisories"]
            return self._send(200, {"audit_status": reg.audit_status})
        if path in ("/-/npm/v1/security/advisories/bulk", "/-/npm/v1/security/audits/quick"):
            try:
                request = json.loads(self._body() or b"{}")
            except ValueError:
                return self._send(400, {"error": "bad request body"})
            with reg.lock:
                reg.audit_requests.append(path)
                status = reg.audit_status
            if status != 200:
                return self._send(status, {"error": "advisory service unavailable (fixture status %d)" % status})
            if path.endswith("/quick"):
                return self._send(200, {"advisories": {}, "metadata": {}})
            return self._send(200, reg.bulk(request))
        return self._send(405, {"error": "method not allowed"})


def serve(port, fixture_path, host="127.0.0.1"):
    with open(fixture_path) as fh:
        fixture = json.load(fh)
    handler = type("BoundHandler", (Handler,), {"registry": Registry(fixture)})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=4873)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--fixture", default=DEFAULT_FIXTURE)
    parser.add_argument("--pid-file")
    args = parser.parse_args(argv)
    server = serve(args.port, args.fixture, args.host)
    if args.pid_file:
        with open(args.pid_file, "w") as fh:
            fh.write("%d\n" % os.getpid())
    sys.stdout.write("npm fixture registry on http://%s:%d/\n" % (args.host, server.server_address[1]))
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
