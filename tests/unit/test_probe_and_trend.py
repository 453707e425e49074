"""api_probe against real servers on loopback (the simulator; a TLS server
with a certificate made here by openssl) and report_trend on report files."""

from __future__ import annotations

import datetime
import http.server
import json
import os
import ssl
import subprocess
import threading

import pytest

from tests.conftest import Sim
from tests.helpers import load_module

trend = load_module("report_trend")


@pytest.fixture
def tls_server(tmp_path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "5", "-subj", "/CN=localhost"], check=True, capture_output=True)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield "https://127.0.0.1:%d" % server.server_address[1]
    server.shutdown()


def test_tls_days_left_of_a_self_signed_certificate(tls_server, run_module):
    result = run_module("api_probe", {"base_url": tls_server, "checks": ["tls"], "validate_certs": False})
    assert 4.0 < result["tls"]["days_left"] <= 5.0 and result["tls"]["subject"] == "localhost"
    strict = run_module("api_probe", {"base_url": tls_server, "checks": ["tls"]})
    assert strict["tls"]["days_left"] is None
    assert "cannot verify the certificate" in strict["problems"][0]


def test_cors_and_rate_limit_against_the_simulator(tmp_path, run_module):
    sim = Sim(tmp_path, extra=["--rate-limit", "50", "--cors-origin", "https://bemore.dev"])
    try:
        ok = run_module("api_probe", {"base_url": sim.url, "checks": ["cors", "rate_limit"],
                                      "frontend_origin": "https://bemore.dev", "rate_limit_max_requests": 80})
        assert ok["problems"] == []
        assert ok["cors"]["allowed_origin"] == "https://bemore.dev" and ok["cors"]["foreign_allowed"] is False
        assert ok["rate_limit"]["requests_until_429"] == 51
        sim.control("DELETE", "/__sim/rate-window")
        sim.fault(no_rate_limit=True)
        bad = run_module("api_probe", {"base_url": sim.url, "checks": ["cors", "rate_limit"],
                                       "frontend_origin": "https://staging.bemore.dev", "rate_limit_max_requests": 60})
        assert bad["rate_limit"]["active"] is False and bad["rate_limit"]["sent"] == 60
        assert any("https://staging.bemore.dev was answered" in p for p in bad["problems"])
        assert bad["changed"] is False
    finally:
        sim.stop()


def write_report(folder, when, host, p95, check_mode=False):
    os.makedirs(folder, exist_ok=True)
    stamp = when.strftime("%Y%m%dT%H%M%SZ")
    with open(os.path.join(folder, stamp + ".json"), "w") as fh:
        json.dump({"generated_at": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "check_mode": check_mode,
                   "hosts": {host: {"steps": [{"step": "performance", "figures": {"p95_ms": p95, "rss_mb": 100}},
                                              {"step": "error_monitoring", "figures": {"error_rate": None}}]}}}, fh)


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
