"""The API client's TLS and proxy options (ansible.module_utils.urls, as
ansible.builtin.uri has them) against real loopback servers: a private CA
bundle, a client certificate the server requires, a CONNECT proxy from
HTTPS_PROXY / NO_PROXY, a redirect to another origin, the total deadline;
and the TLS expiry read with cryptography from a certificate made here.

Times are upper bounds with a generous margin (a busy machine is slower,
never faster)."""

from __future__ import annotations

import datetime
import time

import pytest

from tests import pki

from ansible.module_utils.bemore_api import ApiError, Client, client_argument_spec, tls_context
from ansible.module_utils.bemore_checks import read_tls

MARGIN = 5.0
TOKEN = "tok-mtls-secret"


@pytest.fixture(autouse=True)
def no_proxy_from_the_machine(monkeypatch):
    """Each test sets the proxy it means; one from the machine would change what is tested."""
    for name in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY",
                 "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return pki.make_ca(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def server_cert(ca, tmp_path_factory):
    return pki.issue(ca, tmp_path_factory.mktemp("server"), "api.test")


@pytest.fixture(scope="module")
def client_cert(ca, tmp_path_factory):
    return pki.issue(ca, tmp_path_factory.mktemp("client"), "runbook-client", client=True)


@pytest.fixture
def https_api(server_cert):
    yield from pki.serve_https(server_cert)


@pytest.fixture
def mtls_api(server_cert, ca):
    yield from pki.serve_https(server_cert, client_ca=ca)


@pytest.fixture
def proxy():
    made = []

    def make(dribble=False):
        made.append(pki.Proxy(dribble))
        return made[-1]
    yield make
    for one in made:
        one.close()


# --- a private CA -------------------------------------------------------------

def test_a_private_ca_bundle_is_trusted_and_the_default_trust_refuses_it(https_api, ca):
    url, seen = https_api
    _resp, body = Client(url, timeout=5, retries=0, ca_path=ca.cert_path, api_token=TOKEN).get_json("/health")
    assert body == {"status": "ok"} and seen[-1]["authorization"] == "Bearer " + TOKEN
    with pytest.raises(ApiError) as err:
        Client(url, timeout=5, retries=0, api_token=TOKEN).get_json("/health")
    assert err.value.kind == "connect" and "CERTIFICATE_VERIFY_FAILED" in str(err.value)
    assert len(seen) == 1  # the refused handshake sent nothing, the token least of all


def test_the_tls_reading_uses_the_clients_trust(https_api, ca):
    url, _seen = https_api
    trusting = Client(url, timeout=5, retries=0, ca_path=ca.cert_path)
    assert read_tls(url, 5, True, trusting.context)["error"] is None
    refused = read_tls(url, 5, True, Client(url, timeout=5, retries=0).context)
    assert refused["days_left"] is None and "cannot verify the certificate" in refused["error"]


# --- a client certificate ------------------------------------------------------

@pytest.mark.parametrize("split", [True, False], ids=["cert-and-key-files", "one-pem-with-both"])
def test_a_client_certificate_the_server_requires_is_presented(mtls_api, ca, client_cert, split):
    url, seen = mtls_api
    files = dict(client_cert=client_cert.cert_path, client_key=client_cert.key_path) if split \
        else dict(client_cert=client_cert.both_path)
    _resp, body = Client(url, timeout=5, retries=0, ca_path=ca.cert_path, **files).get_json("/health")
    assert body == {"status": "ok"} and seen == [{"path": "/health", "authorization": None, "client": "runbook-client"}]


def test_without_the_client_certificate_the_server_refuses(mtls_api, ca):
    url, seen = mtls_api
    with pytest.raises(ApiError) as err:
        Client(url, timeout=5, retries=0, ca_path=ca.cert_path).get_json("/health")
    assert err.value.kind == "connect" and seen == []


def test_the_session_end_client_keeps_the_tls_files(mtls_api, ca, client_cert):
    url, _seen = mtls_api
    client = Client(url, timeout=5, retries=0, ca_path=ca.cert_path, client_cert=client_cert.both_path)
    assert client.tls == {"ca_path": ca.cert_path, "client_cert": client_cert.both_path, "client_key": None}


@pytest.mark.parametrize("files,message", [
    ({"ca_path": "/nonexistent/ca.pem"}, "ca_path '/nonexistent/ca.pem' is not a file"),
    ({"client_cert": "/nonexistent/c.pem"}, "client_cert '/nonexistent/c.pem' is not a file"),
    ({"client_key": "KEY"}, "client_key is set without client_cert"),
    ({"ca_path": "GARBAGE"}, "cannot use the TLS files (ca_path "),
])
def test_unusable_tls_files_are_named(tmp_path, client_cert, files, message):
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    files = dict((k, {"KEY": client_cert.key_path, "GARBAGE": str(garbage)}.get(v, v)) for k, v in files.items())
    with pytest.raises(ValueError) as err:
        Client("https://127.0.0.1:9", **files)
    assert message in str(err.value)


def test_the_tls_options_are_module_options_of_type_path():
    spec = client_argument_spec()
    assert [spec[k] for k in ("ca_path", "client_cert", "client_key")] == [{"type": "path"}] * 3


def test_one_context_serves_every_client_with_the_same_options(ca):
    assert tls_context(True, ca.cert_path) is tls_context(True, ca.cert_path)
    assert tls_context(True, ca.cert_path) is not tls_context(False, ca.cert_path)


# --- proxies from the environment ---------------------------------------------

def test_https_proxy_from_the_environment_carries_the_request(monkeypatch, https_api, ca, proxy):
    url, seen = https_api
    via = proxy()
    monkeypatch.setenv("https_proxy", via.url)
    _resp, body = Client(url, timeout=5, retries=0, ca_path=ca.cert_path).get_json("/health")
    # The tunnel ends at the API: TLS is verified end to end, the proxy sees only CONNECT.
    assert body == {"status": "ok"} and via.connects == [("CONNECT", url[len("https://"):])] and len(seen) == 1


def test_no_proxy_sends_the_request_directly(monkeypatch, https_api, ca, proxy):
    url, seen = https_api
    via = proxy()
    monkeypatch.setenv("https_proxy", via.url)
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    Client(url, timeout=5, retries=0, ca_path=ca.cert_path).get_json("/health")
    assert via.connects == [] and len(seen) == 1


def test_the_deadline_holds_through_a_proxy_that_answers_a_byte_at_a_time(monkeypatch, https_api, ca, proxy):
    url, seen = https_api
    via = proxy(dribble=True)
    monkeypatch.setenv("https_proxy", via.url)
    client = Client(url, timeout=1.0, retries=0, ca_path=ca.cert_path)
    started = time.monotonic()
    with pytest.raises(ApiError) as err:
        client.get_json("/health")
    elapsed = time.monotonic() - started
    assert err.value.kind == "timeout" and "1.0s deadline" in str(err.value)
    assert elapsed < 1.0 + MARGIN and seen == []


# --- redirects ------------------------------------------------------------------

def test_a_redirect_to_another_https_origin_is_not_followed(server_cert, ca):
    other = pki.serve_https(server_cert)
    other_url, other_seen = next(other)
    # localhost and 127.0.0.1 are two origins, though one server could answer both.
    elsewhere = other_url.replace("127.0.0.1", "localhost")
    home = pki.serve_https(server_cert, location=elsewhere)
    url, seen = next(home)
    try:
        with pytest.raises(ApiError) as err:
            Client(url, timeout=5, retries=0, ca_path=ca.cert_path, api_token=TOKEN).get_json("/health")
    finally:
        for gen in (home, other):
            gen.close()
    assert err.value.kind == "redirect" and err.value.status == 302
    assert "redirected to %s" % elsewhere in str(err.value) and TOKEN not in str(err.value)
    assert len(seen) == 1 and other_seen == []


# --- the certificate's dates (cryptography) ---------------------------------------

def test_days_left_come_from_the_certificates_not_after(tmp_path, ca, monkeypatch):
    not_after = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) + datetime.timedelta(days=42)
    leaf = pki.issue(ca, tmp_path, "expiring.test", not_after=not_after)
    gen = pki.serve_https(leaf)
    url, _seen = next(gen)
    try:
        monkeypatch.setenv("BEMORE_RUNBOOK_NOW", (not_after - datetime.timedelta(days=11, hours=12)).isoformat())
        verified = read_tls(url, 5, True, tls_context(True, ca.cert_path))
        unverified = read_tls(url, 5, False)
    finally:
        gen.close()
    expected = {"subject": "expiring.test", "not_after": not_after.strftime("%Y-%m-%dT%H:%M:%SZ"), "days_left": 11.5,
                "error": None}
    assert verified == expected and unverified == expected
