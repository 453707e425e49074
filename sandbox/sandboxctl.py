#!/usr/bin/env python3
"""Start, stop and inspect the embedded sandbox (simulator, app directory, MariaDB).

    sandboxctl.py start [--dir DIR] [--port PORT] [--fault NAME=VALUE ...]
    sandboxctl.py stop  [--dir DIR]
    sandboxctl.py status [--dir DIR]
    sandboxctl.py seed-app DIR [--registry URL --install]
                                      # only lay out an app directory (used by the testbed image)

The app directory looks like the real one: .env with the TEMP_FILE_* settings,
package.json, package-lock.json and node_modules installed by the real npm
from the fixture registry (npm_registry.py, which ``start`` runs too), tmp/ with audio files of mixed ages and
sizes, and logs/app.log with ERROR lines. ``start`` re-seeds tmp/ every time so
runs are repeatable.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DEFAULT_DIR = os.environ.get("BEMORE_SANDBOX_DIR", os.path.join(REPO, ".sandbox"))
DEFAULT_PORT = int(os.environ.get("BEMORE_SANDBOX_PORT", "18080"))
DEFAULT_NPM_PORT = int(os.environ.get("BEMORE_SANDBOX_NPM_PORT", "18081"))
DAY = 86400

# (name, size KiB, age days): 8 files older than 7 days, the rest newer. The
# sandbox's cap (TEMP_FILE_MAX_SIZE_MB=2) is below what remains after the age
# rule, so every cleanup run exercises both rules.
SEED_FILES = [("rec_%02d.wav" % i, 64 + (i * 37) % 256, age) for i, age in enumerate(
    [14, 12, 10.5, 9, 8.2, 7.5, 7.1, 30, 6.5, 5, 4, 3.2, 3, 2.5, 2, 1.5, 1, 0.8, 0.5, 0.2, 0.1, 0.05])]
SEED_FILES += [("chunks/stt_%02d.webm" % i, 32 + i * 16, age) for i, age in enumerate([9, 2, 0.3])]

ENV_TEXT = """# BeMore Backend settings (sandbox)
NODE_ENV=development
PORT=3000
DATABASE_URL=mysql://bemore@127.0.0.1:3306/bemore
GEMINI_API_KEY=sandbox-not-a-secret
FRONTEND_URL=http://localhost:5173
RATE_LIMIT_MAX=300
TEMP_FILE_MAX_AGE_DAYS=7
TEMP_FILE_MAX_SIZE_MB=2
TEMP_CLEANUP_INTERVAL_MIN=60
"""

PACKAGE_JSON = {
    "name": "bemore-backend",
    "version": "1.0.0",
    "private": True,
    "description": "BeMore Backend (sandbox copy)",
    "main": "app.js",
    "scripts": {"test": "node test.js", "dev": "node app.js"},
    # Served by the fixture registry (npm_fixture.json): one patch, one minor
    # and one major update are out, and validator (through Sequelize) carries
    # the advisory the guide accepts.
    "dependencies": {"sequelize": "~6.35.0", "express": "~4.18.2", "ws": "8.18.0", "dotenv": "^16.4.5"},
}

# The app's `npm test`: every dependency must load.
TEST_JS = """// Sandbox smoke test: every dependency loads.
const pkg = require('./package.json');
for (const name of Object.keys(pkg.dependencies || {})) {
  try { require(name); } catch (err) { console.error(name + ': ' + err.message); process.exit(1); }
}
console.log('all ' + Object.keys(pkg.dependencies || {}).length + ' dependencies load');
"""

LOG_LINES = [
    "INFO BeMore backend starting",
    "ERROR [GEMINI] request to Gemini API timed out after 30000ms (session 4f2a91)",
    "WARN [STT] transcription took 6120ms for chunk 17",
    "ERROR [WEBSOCKET] client 10.0.0.12 disconnected unexpectedly (code 1006)",
    "INFO session 8812 ended after 1520s",
    "ERROR [DATABASE] deadlock found when trying to get lock; retrying (attempt 2)",
]

DB_SCHEMA = [
    "CREATE DATABASE IF NOT EXISTS `bemore` CHARACTER SET utf8mb4",
    """CREATE TABLE IF NOT EXISTS `bemore`.`User` (
        id INT AUTO_INCREMENT PRIMARY KEY, email VARCHAR(191) NOT NULL UNIQUE,
        name VARCHAR(100) NOT NULL, createdAt DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP) ENGINE=InnoDB""",
    """CREATE TABLE IF NOT EXISTS `bemore`.`Session` (
        id INT AUTO_INCREMENT PRIMARY KEY, userId INT NOT NULL, counselorId VARCHAR(64) NOT NULL,
        status VARCHAR(16) NOT NULL, transcript TEXT, startedAt DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
        KEY idx_user (userId)) ENGINE=InnoDB""",
]


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def seed_app(app_dir, now=None, registry=None, install=False):
    """Lay out (or reset) an app directory; return its path.

    With ``registry`` the app's .npmrc points npm at it; with ``install`` the
    dependencies are installed from it (package-lock.json, node_modules) when
    package.json was (re)written or no lockfile exists.
    """
    now = now or time.time()
    os.makedirs(app_dir, exist_ok=True)
    env_path = os.path.join(app_dir, ".env")
    if not os.path.exists(env_path):
        write(env_path, ENV_TEXT)
    package_json = json.dumps(PACKAGE_JSON, indent=2) + "\n"
    package_path = os.path.join(app_dir, "package.json")
    try:
        with open(package_path, encoding="utf-8") as handle:
            unchanged = handle.read() == package_json
    except OSError:
        unchanged = False
    write(package_path, package_json)
    write(os.path.join(app_dir, "test.js"), TEST_JS)
    if registry:
        write(os.path.join(app_dir, ".npmrc"),
              "registry=%s\naudit=false\nfund=false\nupdate-notifier=false\n" % registry)
    lock = os.path.join(app_dir, "package-lock.json")
    if install and registry and not (unchanged and os.path.exists(lock)):
        if shutil.which("npm") is None:
            sys.exit("sandbox: npm is not installed; the sandbox app's dependencies are installed with it "
                     "(Debian: apt-get install -y nodejs npm)")
        wait_for_url(registry)
        if os.path.exists(lock):
            os.unlink(lock)
        proc = subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=app_dir, capture_output=True,
                              text=True, timeout=300, check=False)
        if proc.returncode != 0:
            sys.exit("sandbox: npm install from %s failed: %s" % (registry, proc.stderr.strip()[-600:]))
    tmp = os.path.join(app_dir, "tmp")
    if os.path.isdir(tmp):
        shutil.rmtree(tmp)  # our own freshly created tree, never a user path
    for name, kib, age in SEED_FILES:
        path = os.path.join(tmp, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(b"RIFF" + os.urandom(kib * 1024 - 4))
        stamp = now - age * DAY
        os.utime(path, (stamp, stamp))
    log = os.path.join(app_dir, "logs", "app.log")
    if not os.path.exists(log):
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(now - 3600))
        write(log, "".join("%s %s\n" % (stamp, line) for line in LOG_LINES))
    return app_dir


def seed_db(host="127.0.0.1", port=3306, user="root", password=""):
    """Create the bemore schema with a few rows; return a status string."""
    try:
        import pymysql  # pylint: disable=import-outside-toplevel
    except ImportError:
        return "skipped: pymysql is not installed"
    try:
        conn = pymysql.connect(host=host, port=port, user=user, password=password, connect_timeout=3,
                               autocommit=True)
    except pymysql.MySQLError as exc:
        return "skipped: no database reachable at %s:%d (%s)" % (host, port, exc.args[-1])
    with conn.cursor() as cur:
        for stmt in DB_SCHEMA:
            cur.execute(stmt)
        cur.execute("SELECT COUNT(*) FROM `bemore`.`User`")
        if cur.fetchone()[0] == 0:
            cur.executemany("INSERT INTO `bemore`.`User` (email, name) VALUES (%s, %s)",
                            [("user%03d@example.test" % i, "User %d" % i) for i in range(200)])
            cur.executemany("INSERT INTO `bemore`.`Session` (userId, counselorId, status, transcript) "
                            "VALUES (%s, %s, %s, %s)",
                            [(i % 200 + 1, "counselor-%d" % (i % 7), "ended", "transcript " * 40)
                             for i in range(1000)])
    conn.close()
    return "seeded bemore schema at %s:%d" % (host, port)


def wait_for_url(url, timeout=30.0):
    """Wait until the host:port of ``url`` accepts connections (a unit started alongside)."""
    import urllib.parse  # pylint: disable=import-outside-toplevel

    parts = urllib.parse.urlsplit(url)
    deadline = time.time() + timeout
    while not port_open(parts.port or 80, parts.hostname):
        if time.time() > deadline:
            sys.exit("sandbox: nothing listens at %s" % url)
        time.sleep(0.1)


def port_open(port, host="127.0.0.1"):
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((host, port)) == 0


def read_pid(pid_file):
    try:
        with open(pid_file, encoding="utf-8") as handle:
            pid = int(handle.read().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def spawn(cmd, log, port, what):
    """Start a background server and wait until it listens on ``port``."""
    with open(log, "ab") as out:
        subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         start_new_session=True, close_fds=True)
    deadline = time.time() + 10
    while not port_open(port):
        if time.time() > deadline:
            sys.exit("sandbox: %s did not start; see %s" % (what, log))
        time.sleep(0.05)


def start(args):
    sandbox = os.path.abspath(args.dir)
    os.makedirs(sandbox, exist_ok=True)
    pid_file = os.path.join(sandbox, "sim.pid")
    npm_pid_file = os.path.join(sandbox, "npm.pid")
    if read_pid(pid_file) or read_pid(npm_pid_file):
        stop(args)
    for port, variable in ((args.port, "BEMORE_SANDBOX_PORT"), (args.npm_port, "BEMORE_SANDBOX_NPM_PORT")):
        if port_open(port):
            sys.exit("sandbox: port %d on 127.0.0.1 is already in use; set %s" % (port, variable))
    registry = "http://127.0.0.1:%d/" % args.npm_port
    spawn([sys.executable, os.path.join(HERE, "npm_registry.py"), "--port", str(args.npm_port),
           "--pid-file", npm_pid_file], os.path.join(sandbox, "npm.out"), args.npm_port, "npm fixture registry")
    app = seed_app(os.path.join(sandbox, "app"), registry=registry, install=True)
    cmd = [sys.executable, os.path.join(HERE, "bemore_sim.py"), "--port", str(args.port),
           "--log-file", os.path.join(app, "logs", "app.log"), "--env-file", os.path.join(app, ".env"),
           "--pid-file", pid_file, "--rate-limit", "300", "--cors-origin", "http://localhost:5173"]
    for fault in args.fault:
        cmd += ["--fault", fault]
    spawn(cmd, os.path.join(sandbox, "sim.out"), args.port, "simulator")
    db = seed_db() if not args.no_db else "skipped: --no-db"
    print("sandbox: simulator on http://127.0.0.1:%d, npm registry %s, app dir %s, database %s"
          % (args.port, registry, app, db))
    return 0


def stop_pid(pid_file):
    pid = read_pid(pid_file)
    if pid:
        os.kill(pid, signal.SIGTERM)
        for _ in range(50):
            if read_pid(pid_file) is None:
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
    if os.path.exists(pid_file):
        os.unlink(pid_file)
    return pid


def stop(args):
    sandbox = os.path.abspath(args.dir)
    pid = stop_pid(os.path.join(sandbox, "sim.pid"))
    stop_pid(os.path.join(sandbox, "npm.pid"))
    print("sandbox: stopped" if pid else "sandbox: was not running")
    return 0


def status(args):
    pid = read_pid(os.path.join(os.path.abspath(args.dir), "sim.pid"))
    print("sandbox: running (pid %d)" % pid if pid else "sandbox: not running")
    return 0 if pid else 3


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name in ("start", "stop", "status"):
        p = sub.add_parser(name)
        p.add_argument("--dir", default=DEFAULT_DIR)
        p.add_argument("--port", type=int, default=DEFAULT_PORT)
        p.add_argument("--npm-port", type=int, default=DEFAULT_NPM_PORT)
        if name == "start":
            p.add_argument("--fault", action="append", default=[])
            p.add_argument("--no-db", action="store_true")
    p = sub.add_parser("seed-app")
    p.add_argument("app_dir")
    p.add_argument("--registry", help="point the app's .npmrc at this npm registry")
    p.add_argument("--install", action="store_true", help="npm install from --registry")
    args = parser.parse_args(argv)
    if args.cmd == "seed-app":
        seed_app(os.path.abspath(args.app_dir), registry=args.registry, install=args.install)
        return 0
    return {"start": start, "stop": stop, "status": status}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
