"""The TLS reading against a real TLS server on loopback (a certificate made
here by openssl), and report_trend on report files."""

from __future__ import annotations

import datetime
import http.server
import json
import os
import socket
import threading
import time

import pytest

from tests.helpers import load_module, serve_tls

trend = load_module("report_trend")


@pytest.fixture
def tls_server(tmp_path):
    yield from serve_tls(tmp_path, http.server.SimpleHTTPRequestHandler)


def test_tls_days_left_of_a_self_signed_certificate(tls_server):
    checks = register_and_import()
    info = checks.read_tls(tls_server, 5, False)
    assert 4.0 < info["days_left"] <= 5.0 and info["subject"] == "localhost" and info["error"] is None
    strict = checks.read_tls(tls_server, 5, True)
    assert strict["days_left"] is None and "cannot verify the certificate" in strict["error"]
    assert checks.read_tls("http://127.0.0.1:1", 5, True) is None  # plain http: nothing to check


def register_and_import():
    from tests.helpers import register_module_utils  # pylint: disable=import-outside-toplevel
    register_module_utils()
    from ansible.module_utils import bemore_checks  # pylint: disable=import-outside-toplevel
    return bemore_checks


def write_report(folder, when, host, p95, check_mode=False):
    os.makedirs(folder, exist_ok=True)
    stamp = when.strftime("%Y%m%dT%H%M%SZ")
    with open(os.path.join(folder, stamp + ".json"), "w") as fh:
        json.dump({"generated_at": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "check_mode": check_mode,
                   "hosts": {host: {"steps": [{"step": "performance", "figures": {"p95_ms": p95, "rss_mb": 100}},
                                              {"step": "error_monitoring", "figures": {"error_rate_percent": None}}]}}},
                  fh)


def test_trend_over_the_period(tmp_path):
    now = datetime.datetime.now(datetime.timezone.utc)
    folder = str(tmp_path / "weekly")
    for i, p95 in enumerate([100, 110, 105, 150, 160, 170]):
        write_report(folder, now - datetime.timedelta(days=60 - i * 10), "api1", p95)
    write_report(folder, now - datetime.timedelta(days=200), "api1", 999)       # outside the quarter
    write_report(folder, now - datetime.timedelta(days=1), "api1", 5000, True)  # a check-mode run
    series, used = trend.collect(sorted(os.path.join(folder, f) for f in os.listdir(folder)),
                                 now - datetime.timedelta(days=92))
    assert used == 6 and "error_rate" not in series["api1"]  # a null figure is no point
    t = trend.trend(series["api1"]["p95_ms"], 25, 3)
    assert t["points"] == 6 and t["early_mean"] == 105 and t["late_mean"] == 165
    assert t["change_percent"] == pytest.approx(57.1) and t["worse"] is True
    flat = trend.trend(series["api1"]["rss_mb"], 25, 3)
    assert flat["change_percent"] == 0 and flat["worse"] is False
    assert trend.trend([(now, 1.0), (now, 9.0)], 25, 3)["worse"] is False  # too few points to judge


def test_a_handshake_sent_a_byte_at_a_time_ends_at_the_total_deadline():
    """The TLS reading has a total deadline: a server that dribbles its handshake never trips a per-read timeout."""
    checks = register_and_import()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    stop = threading.Event()

    def dribble():
        conn, _ = listener.accept()
        with conn:
            # A TLS record header announcing 16 KiB, then its body one byte per 0.2 s.
            conn.sendall(b"\x16\x03\x03\x40\x00")
            while not stop.wait(0.2):
                try:
                    conn.sendall(b"\x00")
                except OSError:
                    return

    thread = threading.Thread(target=dribble, daemon=True)
    thread.start()
    started = time.monotonic()
    try:
        info = checks.read_tls("https://127.0.0.1:%d" % listener.getsockname()[1], 1.0, False)
    finally:
        stop.set()
        listener.close()
    elapsed = time.monotonic() - started
    assert info["days_left"] is None and "within the 1s deadline" in info["error"]
    # A busy machine is slower, never faster: the 16 KiB record alone would take 55 minutes.
    assert elapsed < 30, elapsed
