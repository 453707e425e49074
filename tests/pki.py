"""Certificates made in the test (a private CA, server and client
certificates with chosen dates) and loopback servers that use them: an
HTTPS server that may require a client certificate, and an HTTP CONNECT
proxy that records what it was asked for."""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import select
import socket
import ssl
import threading

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

UTC = datetime.timezone.utc


def _name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _dates(not_after):
    now = datetime.datetime.now(UTC).replace(microsecond=0)
    return now - datetime.timedelta(days=1), not_after or now + datetime.timedelta(days=30)


class Issued(object):
    """A key and its certificate, written as PEM files under a folder."""

    def __init__(self, key, cert, folder, stem):
        self.key, self.cert = key, cert
        self.cert_path = str(folder / (stem + ".crt"))
        self.key_path = str(folder / (stem + ".key"))
        self.both_path = str(folder / (stem + ".pem"))
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        for path, data in ((self.cert_path, cert_pem), (self.key_path, key_pem), (self.both_path, cert_pem + key_pem)):
            with open(path, "wb") as fh:
                fh.write(data)


def make_ca(folder, common_name="BeMore test CA"):
    key = ec.generate_private_key(ec.SECP256R1())
    not_before, not_after = _dates(None)
    cert = (x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(_name(common_name))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return Issued(key, cert, folder, "ca")


def issue(ca, folder, common_name, client=False, not_after=None):
    """A certificate signed by ``ca``: for 127.0.0.1 and localhost, or a client's; valid until ``not_after``."""
    key = ec.generate_private_key(ec.SECP256R1())
    not_before, not_after = _dates(not_after)
    builder = (x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(ca.cert.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(not_before).not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH if client
                                                     else ExtendedKeyUsageOID.SERVER_AUTH]), critical=False))
    if not client:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return Issued(key, builder.sign(ca.key, hashes.SHA256()), folder, common_name)


class Recorder(http.server.BaseHTTPRequestHandler):
    """Answers every GET with JSON and records the path, the Authorization and the client certificate's name."""

    seen = None  # set per server
    location = None  # when set, every GET is redirected there

    def do_GET(self):  # noqa: N802 (the http.server interface)
        peer = self.connection.getpeercert() if isinstance(self.connection, ssl.SSLSocket) else None
        client = dict(x[0] for x in peer.get("subject", ())).get("commonName") if peer else None
        self.seen.append({"path": self.path, "authorization": self.headers.get("Authorization"), "client": client})
        if self.location:
            self.send_response(302)
            self.send_header("Location", self.location + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b'{"status": "ok"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def serve_https(server_cert, client_ca=None, location=None):
    """A threading HTTPS server on loopback; yields (base URL, list of requests seen). Use with ``yield from``.

    With ``client_ca`` the server requires a client certificate signed by it.
    """
    seen = []
    handler = type("Handler", (Recorder,), {"seen": seen, "location": location})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(server_cert.cert_path, server_cert.key_path)
    if client_ca is not None:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(client_ca.cert_path)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "https://127.0.0.1:%d" % server.server_address[1], seen
    finally:
        server.shutdown()
        server.server_close()


class Proxy(object):
    """An HTTP CONNECT proxy on loopback that tunnels, or with ``dribble`` answers one byte per 0.2 s forever."""

    def __init__(self, dribble=False):
        self.connects = []
        self.dribble = dribble
        self.stop = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = "http://127.0.0.1:%d" % self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stop.is_set():
            try:
                conn, _addr = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                head += chunk
            method, target = head.split(b" ")[:2]
            self.connects.append((method.decode(), target.decode()))
            if self.dribble:
                conn.sendall(b"HTTP/1.1 200 ")
                while not self.stop.wait(0.2):
                    try:
                        conn.sendall(b"x")
                    except OSError:
                        return
                return
            host, _sep, port = target.decode().rpartition(":")
            with socket.create_connection((host, int(port)), timeout=10) as upstream:
                conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                self._relay(conn, upstream)

    def _relay(self, one, other):
        pair = {one: other, other: one}
        while not self.stop.is_set():
            ready, _w, _x = select.select(list(pair), [], [], 0.5)
            for sock in ready:
                try:
                    data = sock.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                pair[sock].sendall(data)

    def close(self):
        self.stop.set()
        self.listener.close()
