#!/usr/bin/env python3
"""Start, stop and inspect the embedded sandbox (simulator, app directory, MariaDB).

    sandboxctl.py start [--dir DIR] [--port PORT] [--fault NAME=VALUE ...] [--sim=--ARG=VALUE ...]
    sandboxctl.py stop  [--dir DIR]
    sandboxctl.py status [--dir DIR]     # with the simulator's uptime, faults and open sessions
    sandboxctl.py seed-app DIR [--registry URL --install]
                                      # only lay out an app directory (used by the testbed image)
    sandboxctl.py seed-db [--host H --port P --user U]
                                      # only (re)create the bemore schema

The app directory looks like the real one: .env (PORT, NODE_ENV, FRONTEND_URLS
and the TEMP_* settings), config/config.json, package.json, package-lock.json
and node_modules installed by the real npm from the fixture registry
(npm_registry.py, which ``start`` runs too), tmp/ with audio files of mixed
ages and sizes, and logs/app.log with lines in the backend's own formats
(morgan access lines, ANSI error lines, a CRITICAL with its stack trace).
``start`` re-seeds tmp/ every time so runs are repeatable, and runs the
simulator (bemore_sim.py) with the app's .env and log.

The database gets the tables the backend's Sequelize models create (users,
sessions, counselings, reports, feedbacks, user_preferences), a few rows each,
and a fragmented ``sessions`` table so that an OPTIMIZE has work to do.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid

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
# The backend reads its MySQL credentials from config/config.json; a
# DATABASE_URL (later releases) makes it use PostgreSQL instead.
DATABASE_URL=mysql://bemore@127.0.0.1:3306/bemore
GEMINI_API_KEY=sandbox-not-a-secret
# CORS: FRONTEND_URLS (comma-separated) wins over the older FRONTEND_URL.
FRONTEND_URLS=http://localhost:5173
FRONTEND_URL=http://localhost:5173
TEMP_FILE_MAX_AGE_DAYS=7
TEMP_FILE_MAX_SIZE_MB=2
TEMP_CLEANUP_INTERVAL_MIN=60
"""

# config/config.json as the backend's models/index.js reads it (the block of NODE_ENV).
DB_CONFIG = {env: {"database": "bemore", "username": "root", "password": None, "host": "127.0.0.1",
                   "port": 3306, "dialect": "mysql", "logging": False,
                   "define": {"charset": "utf8", "collate": "utf8_general_ci"}}
             for env in ("development", "production", "test")}

PACKAGE_JSON = {
    "name": "beforeme-backend",
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

# The backend's tables as sequelize.sync() of its models/ creates them on
# MySQL/MariaDB (checked with SHOW CREATE TABLE after a sync): utf8 tables,
# JSON columns, the unique keys Sequelize adds twice (column and index).
TABLE_OPTIONS = "ENGINE=InnoDB DEFAULT CHARSET=utf8 COLLATE=utf8_general_ci"
DB_SCHEMA = [
    "CREATE DATABASE IF NOT EXISTS `bemore` CHARACTER SET utf8mb4",
    # Tables of earlier sandbox seeds, named after the models instead of the tables.
    "DROP TABLE IF EXISTS `bemore`.`User`, `bemore`.`Session`",
    """CREATE TABLE IF NOT EXISTS `bemore`.`users` (
        `id` INT NOT NULL AUTO_INCREMENT, `username` VARCHAR(50) NOT NULL, `email` VARCHAR(100) NOT NULL,
        `password` VARCHAR(255) NOT NULL, `refreshToken` TEXT, `profileImage` TEXT,
        `createdAt` DATETIME NOT NULL, `updatedAt` DATETIME NOT NULL,
        PRIMARY KEY (`id`), UNIQUE KEY `username` (`username`), UNIQUE KEY `email` (`email`),
        UNIQUE KEY `users_username` (`username`), KEY `users_created_at` (`createdAt`), KEY `users_id` (`id`)
    ) """ + TABLE_OPTIONS,
    """CREATE TABLE IF NOT EXISTS `bemore`.`sessions` (
        `id` INT NOT NULL AUTO_INCREMENT, `sessionId` VARCHAR(64) NOT NULL, `userId` VARCHAR(64) NOT NULL,
        `counselorId` VARCHAR(64), `status` ENUM('active','paused','ended') NOT NULL DEFAULT 'active',
        `startedAt` BIGINT NOT NULL, `endedAt` BIGINT, `duration` INT, `counters` JSON,
        `emotionsData` JSON COMMENT '분석된 감정 데이터 배열 [{timestamp, emotion, frameCount, ...}]',
        `createdAt` DATETIME NOT NULL, `updatedAt` DATETIME NOT NULL,
        PRIMARY KEY (`id`), UNIQUE KEY `sessionId` (`sessionId`), UNIQUE KEY `sessions_session_id` (`sessionId`),
        KEY `sessions_user_id` (`userId`), KEY `sessions_created_at` (`createdAt`),
        KEY `sessions_user_id_started_at` (`userId`, `startedAt`),
        KEY `sessions_user_id_ended_at` (`userId`, `endedAt`), KEY `sessions_id` (`id`)
    ) """ + TABLE_OPTIONS,
    """CREATE TABLE IF NOT EXISTS `bemore`.`counselings` (
        `id` INT NOT NULL AUTO_INCREMENT, `userId` INT NOT NULL, `responses` JSON NOT NULL,
        `submittedAt` DATETIME NOT NULL, `createdAt` DATETIME NOT NULL, `updatedAt` DATETIME NOT NULL,
        PRIMARY KEY (`id`), KEY `userId` (`userId`),
        CONSTRAINT `counselings_ibfk_1` FOREIGN KEY (`userId`) REFERENCES `users` (`id`)
            ON DELETE CASCADE ON UPDATE CASCADE
    ) """ + TABLE_OPTIONS,
    """CREATE TABLE IF NOT EXISTS `bemore`.`reports` (
        `id` INT NOT NULL AUTO_INCREMENT, `reportId` VARCHAR(64) NOT NULL, `sessionId` VARCHAR(64) NOT NULL,
        `vadVector` JSON, `vadTimeline` JSON, `cbtSummary` JSON, `statistics` JSON, `metadata` JSON,
        `analysis` JSON, `createdAt` DATETIME NOT NULL, `updatedAt` DATETIME NOT NULL,
        PRIMARY KEY (`id`), UNIQUE KEY `reportId` (`reportId`),
        KEY `reports_session_id_created_at` (`sessionId`, `createdAt`)
    ) """ + TABLE_OPTIONS,
    """CREATE TABLE IF NOT EXISTS `bemore`.`feedbacks` (
        `feedbackId` VARCHAR(64) NOT NULL, `sessionId` VARCHAR(64) NOT NULL, `rating` INT NOT NULL,
        `note` TEXT, `submittedAt` BIGINT NOT NULL, `createdAt` DATETIME NOT NULL, `updatedAt` DATETIME NOT NULL,
        PRIMARY KEY (`feedbackId`), UNIQUE KEY `feedbackId` (`feedbackId`)
    ) """ + TABLE_OPTIONS,
    """CREATE TABLE IF NOT EXISTS `bemore`.`user_preferences` (
        `id` INT NOT NULL AUTO_INCREMENT, `userId` VARCHAR(64) NOT NULL, `preferences` JSON NOT NULL,
        `createdAt` DATETIME NOT NULL, `updatedAt` DATETIME NOT NULL,
        PRIMARY KEY (`id`), UNIQUE KEY `userId` (`userId`), UNIQUE KEY `user_preferences_user_id` (`userId`),
        KEY `user_preferences_created_at` (`createdAt`), KEY `user_preferences_id` (`id`)
    ) """ + TABLE_OPTIONS,
]
SEED_TABLES = ("users", "sessions", "counselings", "reports", "feedbacks", "user_preferences")
# Below this much free space in `sessions`, the seed fragments it again (an
# OPTIMIZE of an earlier run brings it to 0).
FRAGMENT_MIN_FREE = 1024 * 1024
FRAGMENT_ROWS = 1200


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
    config_path = os.path.join(app_dir, "config", "config.json")
    if not os.path.exists(config_path):
        write(config_path, json.dumps(DB_CONFIG, indent=2) + "\n")
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
    if not os.path.exists(log) or _invented_log(log):
        write(log, "".join(line + "\n" for line in seed_log_lines(app_dir, now - 3600)))
    return app_dir


def _invented_log(path):
    """True for a log of earlier sandbox seeds ("<time> ERROR [CATEGORY] ..."), which the backend never wrote."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            head = handle.read(4096)
    except OSError:
        return False
    return "\x1b[" not in head and re.search(r"^\S+Z (INFO|ERROR|WARN) ", head, re.M) is not None


def seed_log_lines(app_dir, start):
    """An earlier run of the backend, as it writes to stdout/stderr: startup
    lines, a day of morgan access lines and the ErrorHandler's ANSI error lines
    (a WARN, three ERRORs, a CRITICAL with its stack trace), then a shutdown."""
    if HERE not in sys.path:
        sys.path.insert(0, HERE)
    import bemore_sim  # pylint: disable=import-outside-toplevel

    rng = random.Random(20251024)
    clock = [start]

    def rid():
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    def access(method, path, status, size, ms, request_id=None):
        clock[0] += rng.uniform(0.5, 40.0)
        return "%s %s %d %d - %.3f ms reqId=%s" % (method, path, status, size, ms, request_id or rid())

    def failure(kind, index, method, path):
        template = bemore_sim.FAILURES[kind][index]
        request_id = rid()
        clock[0] += rng.uniform(0.5, 40.0)
        entry = {"timestamp": bemore_sim.iso(clock[0]), "module": "express", "message": template["message"]}
        entry["type"], entry["level"] = bemore_sim.classify(template["message"], template.get("code"),
                                                            template.get("name"), template.get("syscall"))
        stack = bemore_sim.fake_stack(template.get("error_name"), template["message"], app_dir)
        body = bemore_sim.to_json({"success": False, "error": {
            "type": entry["type"], "message": template["message"], "timestamp": entry["timestamp"],
            "requestId": request_id, "code": template.get("code") or entry["type"]}})
        status = 500 if entry["level"] == "CRITICAL" else 400
        return bemore_sim.error_lines(entry, stack) + [access(method, path, status, len(body), rng.uniform(3, 40),
                                                              request_id)]

    session = "sess_%d_%08x" % (int(start * 1000), rng.getrandbits(32))
    lines = ["🌐 CORS allowed origins: [ 'http://localhost:5173' ]",
             "[TempFileCleanup] [TempFileCleanup] 초기화 완료 {",
             "  tmpDir: '%s'," % os.path.join(app_dir, "tmp"),
             "  maxAgeDays: '7',", "  maxSizeMB: '2',", "  checkIntervalMinutes: '60'", "}",
             "[TempFileCleanup] ✅ Temporary file cleanup started { interval: '60분' }",
             "🚀 서버 실행 중 (port): 3000",
             "[TempFileCleanup] ✅ Cleanup completed { filesDeleted: 0, bytesFreed: '0.00MB', remainingSize: '3.90MB' }",
             "✅ 데이터베이스 연결 성공",
             access("GET", "/health", 200, 107, 1.204),
             "✅ 세션 생성: %s (사용자: user_001, 상담사: counselor_001)" % session,
             access("POST", "/api/session/start", 201, 417, 9.871),
             "❌ Error creating session in Supabase: Supabase client not configured: "
             "missing SUPABASE_URL or SUPABASE_ANON_KEY",
             access("POST", "/api/session/%s/frames" % session, 200, 66, 14.2)]
    # A day of ordinary traffic: a quiet backend fails far fewer than the
    # guide's 0.1 % target of its requests (4 errors in about 6000).
    for i in range(6000):
        path = ("/health", "/api/dashboard/summary", "/api/session/%s/frames" % session, "/api/user/preferences")[i % 4]
        lines.append(access("POST" if "frames" in path else "GET", path, 200, rng.randint(60, 2000),
                            rng.uniform(0.6, 25.0)))
    lines += failure("AUTH", 0, "GET", "/api/user/preferences")
    lines += failure("AI_SERVICE", 0, "POST", "/api/session/%s/frames" % session)
    lines.append(access("GET", "/api/dashboard/summary", 200, 1876, 18.5))
    lines += failure("WEBSOCKET", 0, "POST", "/api/session/%s/tick" % session)
    lines += failure("DATABASE", 0, "GET", "/api/dashboard/summary")
    lines.append(access("GET", "/health", 200, 108, 0.912))
    lines += failure("UNKNOWN", 0, "GET", "/api/session/%s/report" % session)
    lines += ["🛑 Received SIGTERM. Shutting down gracefully...",
              "[TempFileCleanup] ⏹️ Temporary file cleanup stopped {}", "✅ Shutdown complete"]
    return lines


def seed_db(host="127.0.0.1", port=3306, user="root", password=""):
    """Create the bemore schema with the backend's tables, a few rows each and
    a fragmented ``sessions``; return a status string. Idempotent, and safe to
    run from several processes at once (a named lock serialises them)."""
    try:
        import pymysql  # pylint: disable=import-outside-toplevel
    except ImportError:
        return "skipped: pymysql is not installed"
    try:
        conn = pymysql.connect(host=host, port=port, user=user, password=password, connect_timeout=3,
                               autocommit=True, charset="utf8mb4")
    except pymysql.MySQLError as exc:
        return "skipped: no database reachable at %s:%d (%s)" % (host, port, exc.args[-1])
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT GET_LOCK('bemore_sandbox_seed', 120)")
            if cur.fetchone()[0] != 1:
                return "skipped: another seed held the lock bemore_sandbox_seed for 120 s"
            try:
                for stmt in DB_SCHEMA:
                    cur.execute(stmt)
                _seed_rows(cur)
                free = _fragment_sessions(conn, cur)
                # Fresh statistics, so information_schema shows the rows and sizes at once.
                cur.execute("ANALYZE TABLE %s" % ", ".join("`bemore`.`%s`" % t for t in SEED_TABLES))
                cur.fetchall()
            finally:
                cur.execute("SELECT RELEASE_LOCK('bemore_sandbox_seed')")
    finally:
        conn.close()
    return "seeded bemore schema at %s:%d (sessions: %.1f MB free)" % (host, port, free / 1048576.0)


def _seed_rows(cur):
    now = "NOW()"
    cur.executemany(
        "INSERT IGNORE INTO `bemore`.`users` (username, email, password, createdAt, updatedAt) "
        "VALUES (%%s, %%s, %%s, %s, %s)" % (now, now),
        # A placeholder, not a password hash anyone can log in with.
        [("user_%03d" % i, "user%03d@example.test" % i, "sandbox-not-a-password-hash") for i in range(1, 6)])
    cur.execute("SELECT COUNT(*) FROM `bemore`.`counselings`")
    if cur.fetchone()[0] == 0:
        cur.execute("INSERT INTO `bemore`.`counselings` (userId, responses, submittedAt, createdAt, updatedAt) "
                    "SELECT id, JSON_ARRAY(3, 2, 4, 1, 5), NOW(), NOW(), NOW() FROM `bemore`.`users` "
                    "WHERE username IN ('user_001', 'user_002', 'user_003')")
    base = 1761300000000  # 2025-10-24, when the guide was written
    sessions = [("sess_%d_%08x" % (base + i * 3600000, 0x5eed0000 + i), "user_%03d" % (i % 5 + 1),
                 "counselor_%03d" % (i % 2 + 1), "ended", base + i * 3600000, base + i * 3600000 + 1500000,
                 1500000, '{"emotionCount": 12}', '[{"timestamp": %d, "emotion": "neutral", "frameCount": 30}]'
                 % (base + i * 3600000 + 60000)) for i in range(5)]
    cur.executemany(
        "INSERT IGNORE INTO `bemore`.`sessions` (sessionId, userId, counselorId, status, startedAt, endedAt, "
        "duration, counters, emotionsData, createdAt, updatedAt) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, "
        "NOW(), NOW())", sessions)
    cur.executemany(
        "INSERT IGNORE INTO `bemore`.`reports` (reportId, sessionId, vadVector, statistics, createdAt, updatedAt) "
        "VALUES (%s, %s, %s, %s, NOW(), NOW())",
        [("report_%d_seed%d" % (s[4] + 1500000, i), s[0], '{"valence": 0.4, "arousal": 0.3, "dominance": 0.5}',
          '{"emotionCount": 12}') for i, s in enumerate(sessions[:3])])
    cur.executemany(
        "INSERT IGNORE INTO `bemore`.`feedbacks` (feedbackId, sessionId, rating, note, submittedAt, createdAt, "
        "updatedAt) VALUES (%s, %s, %s, %s, %s, NOW(), NOW())",
        [("fb_seed_%d" % i, s[0], 4 + i % 2, "helpful session", s[5] + 60000) for i, s in enumerate(sessions[:3])])
    cur.executemany(
        "INSERT IGNORE INTO `bemore`.`user_preferences` (userId, preferences, createdAt, updatedAt) "
        "VALUES (%s, %s, NOW(), NOW())",
        [("user_%03d" % i, '{"language": "ko", "notifications": true}') for i in range(1, 4)])


def _sessions_free(cur):
    cur.execute("SELECT data_free FROM information_schema.tables "
                "WHERE table_schema = 'bemore' AND table_name = 'sessions'")
    row = cur.fetchone()
    return int(row[0] or 0) if row else 0


def _fragment_sessions(conn, cur):
    """Fill ``sessions`` with throw-away rows and delete them, leaving free
    pages that information_schema reports as data_free and OPTIMIZE reclaims."""
    free = _sessions_free(cur)
    if free >= FRAGMENT_MIN_FREE:
        return free
    emotions = json.dumps([{"timestamp": 1761300000000 + i * 1000, "emotion": "neutral", "frameCount": 30}
                           for i in range(90)])
    rows = [("frag_%05d" % i, "user_%03d" % (i % 5 + 1), "counselor_001", "ended", 1761300000000,
             1761300600000, 600000, "{}", emotions) for i in range(FRAGMENT_ROWS)]
    conn.begin()
    cur.execute("DELETE FROM `bemore`.`sessions` WHERE sessionId LIKE 'frag\\_%'")
    cur.executemany(
        "INSERT INTO `bemore`.`sessions` (sessionId, userId, counselorId, status, startedAt, endedAt, duration, "
        "counters, emotionsData, createdAt, updatedAt) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, NOW(), NOW())",
        rows)
    conn.commit()
    filled = _sessions_free(cur)
    cur.execute("DELETE FROM `bemore`.`sessions` WHERE sessionId LIKE 'frag\\_%'")
    # InnoDB frees the pages when its purge thread gets to the deleted rows,
    # usually within a second; wait a little so the figures are settled.
    deadline = time.time() + 3
    while _sessions_free(cur) <= filled and time.time() < deadline:
        time.sleep(0.2)
    return _sessions_free(cur)


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
    # The backend's own limits and CORS origins: the .env's FRONTEND_URLS.
    cmd = [sys.executable, os.path.join(HERE, "bemore_sim.py"), "--port", str(args.port),
           "--log-file", os.path.join(app, "logs", "app.log"), "--env-file", os.path.join(app, ".env"),
           "--pid-file", pid_file]
    for fault in args.fault:
        cmd += ["--fault", fault]
    cmd += args.sim
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
    if not pid:
        print("sandbox: not running")
        return 3
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/__sim/state" % args.port, timeout=3) as resp:
            state = json.loads(resp.read())
    except (OSError, ValueError) as exc:
        print("sandbox: running (pid %d), but the simulator does not answer on port %d: %s" % (pid, args.port, exc))
        return 1
    print("sandbox: running (pid %d) on port(s) %s, up %.0f s, commit %s, %d error(s), %d open session(s), "
          "faults %s" % (pid, ",".join(str(p) for p in state["ports"]), state["uptime"], state["commit"],
                         state["errors_total"], state["sessions"]["open"],
                         json.dumps(state["faults"], sort_keys=True) if state["faults"] else "none"))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name in ("start", "stop", "status"):
        p = sub.add_parser(name)
        p.add_argument("--dir", default=DEFAULT_DIR)
        p.add_argument("--port", type=int, default=DEFAULT_PORT)
        p.add_argument("--npm-port", type=int, default=DEFAULT_NPM_PORT)
        if name == "start":
            p.add_argument("--fault", action="append", default=[], metavar="NAME=VALUE",
                           help="a simulator fault at start (bemore_sim.py lists them)")
            p.add_argument("--sim", action="append", default=[], metavar="--ARG=VALUE",
                           help="one more simulator argument, e.g. --sim=--background-rps=20 (repeatable)")
            p.add_argument("--no-db", action="store_true")
    p = sub.add_parser("seed-app")
    p.add_argument("app_dir")
    p.add_argument("--registry", help="point the app's .npmrc at this npm registry")
    p.add_argument("--install", action="store_true", help="npm install from --registry")
    p = sub.add_parser("seed-db")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=3306)
    p.add_argument("--user", default="root")
    args = parser.parse_args(argv)
    if args.cmd == "seed-app":
        seed_app(os.path.abspath(args.app_dir), registry=args.registry, install=args.install)
        return 0
    if args.cmd == "seed-db":
        # The password, if any, comes from the environment, never the command line.
        result = seed_db(args.host, args.port, args.user, os.environ.get("BEMORE_DB_PASSWORD", ""))
        print("sandbox: database %s" % result)
        return 0 if result.startswith("seeded") else 1
    return {"start": start, "stop": stop, "status": status}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
