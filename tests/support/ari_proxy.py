"""RFC 9773 ACME Renewal Information (ARI) in front of a real Pebble, for the renewal tests.

Debian's Pebble 2.4.0 offers no ``renewalInfo`` in its directory, and no newer Pebble can be installed here, so
the ARI side of renewal cannot be tested against Pebble alone. :func:`start_ari_proxy` puts a thin HTTPS reverse
proxy in front of it. Every request goes to Pebble unchanged (method, target, headers, body) and Pebble's answer
comes back unchanged (status, every header including repeated ``Link`` headers, body), except for what 2.4.0
lacks:

- ``GET`` of the directory: Pebble's directory plus ``"renewalInfo": "https://<proxy>/renewal-info"``;
- ``GET /renewal-info/{certID}``: the window a test set with :meth:`AriProxy.set_window` as RFC 9773 JSON, with
  its ``Retry-After``; a 404 problem document for a certID without a window (405 for other methods: RFC 9773
  has only GET). Every certID asked is recorded;
- newOrder: the JWS payload is decoded and recorded (so a test can assert ``replaces``), then forwarded as is.
  The payload cannot be changed anyway (the signature covers it); Pebble 2.4.0 ignores the unknown ``replaces``
  member (Go's JSON decoding skips unknown fields), so orders that carry it are created as usual.

Nothing in the bodies or headers is rewritten: Pebble builds every URL it returns (directory, ``Location``,
``Link``, order, authorization and certificate URLs) from the request's ``Host`` header, and checks a JWS's
``url`` against that same ``Host``. Forwarding the client's ``Host`` (the proxy's address) is therefore enough
for clients to see only the proxy's URLs and for their signed requests to verify. The proxy listens with
Pebble's own listener certificate and key, so the same ``ca_bundle`` trusts both.

:func:`ari_cert_id` computes RFC 9773's certID here, on purpose not with the daemon's code, so tests catch a
wrong certID in the daemon.
"""

from __future__ import annotations

import base64
import datetime as dt
import http.client
import json
import socket
import ssl
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from cryptography import x509

from tests.support.pebble import Pebble

#: Where the proxy serves renewal information; Pebble 2.4.0 has nothing under this path.
RENEWAL_INFO_PATH = "/renewal-info"

# Meaningful for one connection only (RFC 9110 7.6.1), so never relayed. Accept-Encoding is dropped too: the proxy
# reads the directory's JSON, so Pebble must answer uncompressed. Content-Length of responses is set anew.
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
                         "te", "trailer", "transfer-encoding", "upgrade"})
_NOT_FORWARDED = _HOP_BY_HOP | {"accept-encoding"}
_NOT_RELAYED = _HOP_BY_HOP | {"content-length"}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def ari_cert_id(cert_pem: str | bytes) -> str:
    """RFC 9773 section 4.1 certID of a certificate: ``base64url(AKI keyIdentifier) "." base64url(serial)``.

    The serial part is the content octets of the DER INTEGER: two's complement, big-endian, minimal length (so a
    positive serial whose high bit is set gets a leading 0x00). Both parts are base64url without padding.
    """
    cert = x509.load_pem_x509_certificate(cert_pem.encode() if isinstance(cert_pem, str) else cert_pem)
    try:
        key_identifier = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    except x509.ExtensionNotFound:
        key_identifier = None
    if key_identifier is None:
        raise ValueError("the certificate has no authority key identifier (keyIdentifier), which a certID needs")
    serial = cert.serial_number
    # Minimal two's complement length: the magnitude's bits plus a sign bit, rounded up to whole octets.
    magnitude = serial if serial >= 0 else ~serial
    serial_octets = serial.to_bytes(magnitude.bit_length() // 8 + 1, "big", signed=True)
    return f"{_b64url(key_identifier)}.{_b64url(serial_octets)}"


@dataclass(frozen=True)
class _Window:
    start: dt.datetime
    end: dt.datetime
    retry_after: int


@dataclass(frozen=True)
class _Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def _rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _problem(status: int, acme_type: str, detail: str, headers: Iterable[tuple[str, str]] = ()) -> _Reply:
    body = {"type": f"urn:ietf:params:acme:error:{acme_type}", "detail": detail, "status": status}
    return _Reply(status, [("Content-Type", "application/problem+json"), *headers], json.dumps(body).encode())


class AriProxy:
    """The running proxy: where clients connect, what it recorded, and the renewal windows it serves.

    ``new_order_payloads`` holds the decoded JWS payload of every newOrder request, ``renewal_info_requests``
    every certID asked at ``/renewal-info/``, both in arrival order.
    """

    def __init__(self, pebble: Pebble) -> None:
        upstream = urlsplit(pebble.directory_url)
        if upstream.hostname is None or upstream.port is None:
            raise ValueError(f"Pebble's directory URL has no host and port: {pebble.directory_url}")
        self._upstream = (upstream.hostname, upstream.port)
        self._directory_path = upstream.path
        # Pebble's paths are the same whatever Host a request names; only the URLs' authority follows Host.
        directory = requests.get(pebble.directory_url, verify=str(pebble.ca_bundle), timeout=10)
        directory.raise_for_status()
        self._new_order_path = urlsplit(directory.json()["newOrder"]).path
        self._to_pebble = ssl.create_default_context(cafile=str(pebble.ca_bundle))

        self.ca_bundle: Path = pebble.ca_bundle
        self.new_order_payloads: list[dict[str, Any]] = []
        self.renewal_info_requests: list[str] = []
        self._windows: dict[str | None, _Window] = {}
        self._lock = threading.Lock()

        listener = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        listener.load_cert_chain(pebble.ca_bundle, _listener_key(pebble))
        # Port 0: the kernel picks a free port at bind time, with none of free_port()'s close-then-rebind race.
        self._server = _ProxyServer(("127.0.0.1", 0), self, listener)
        port = self._server.server_address[1]
        self.base_url = f"https://127.0.0.1:{port}"
        self.directory_url = f"{self.base_url}{self._directory_path}"
        # A short poll interval makes stop() quick.
        self._thread = threading.Thread(target=lambda: self._server.serve_forever(poll_interval=0.05),
                                        name="ari-proxy", daemon=True)
        self._thread.start()

    def set_window(self, start: dt.datetime, end: dt.datetime, *, cert_id: str | None = None,
                   retry_after: int = 60) -> None:
        """Serve ``start``..``end`` with ``Retry-After: retry_after`` for ``cert_id`` (``None``: every certID
        without a window of its own). The window is not checked for order, so a test can serve an invalid one."""
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("renewal window bounds must be timezone-aware datetimes")
        if retry_after < 0:
            raise ValueError("retry_after is a number of seconds, not negative")
        with self._lock:
            self._windows[cert_id] = _Window(start, end, retry_after)

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _answer(self, method: str, target: str, headers: Message, body: bytes) -> _Reply:
        path = urlsplit(target).path
        if path == RENEWAL_INFO_PATH or path.startswith(RENEWAL_INFO_PATH + "/"):
            return self._renewal_info(method, path[len(RENEWAL_INFO_PATH) + 1:])
        if method == "POST" and path == self._new_order_path:
            self._record_new_order(body)
        reply = self._forward(method, target, headers, body)
        if method == "GET" and path == self._directory_path and reply.status == 200:
            return self._with_renewal_info(reply, headers.get("Host") or self.base_url.removeprefix("https://"))
        return reply

    def _renewal_info(self, method: str, cert_id: str) -> _Reply:
        if method != "GET":
            return _problem(405, "malformed", f"{method} is not allowed on renewal information", [("Allow", "GET")])
        if not cert_id or "/" in cert_id:
            return _problem(404, "malformed", "renewal information is at /renewal-info/{certID}")
        with self._lock:
            self.renewal_info_requests.append(cert_id)
            window = self._windows.get(cert_id) or self._windows.get(None)
        if window is None:
            return _problem(404, "malformed", f"no renewal window for certID {cert_id}")
        body = {"suggestedWindow": {"start": _rfc3339(window.start), "end": _rfc3339(window.end)}}
        return _Reply(200, [("Content-Type", "application/json"), ("Retry-After", str(window.retry_after))],
                      json.dumps(body).encode())

    def _record_new_order(self, body: bytes) -> None:
        try:
            payload = json.loads(_b64url_decode(json.loads(body)["payload"]))
        except (ValueError, KeyError, TypeError):
            return  # not a JWS with a JSON payload: Pebble refuses it and the client sees Pebble's own error
        if isinstance(payload, dict):
            with self._lock:
                self.new_order_payloads.append(payload)

    def _forward(self, method: str, target: str, headers: Message, body: bytes) -> _Reply:
        connection = http.client.HTTPSConnection(*self._upstream, context=self._to_pebble, timeout=30)
        try:
            # Host is the client's (the proxy's address): Pebble builds its URLs from it and checks JWS urls
            # against it.
            connection.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            for name, value in headers.items():
                if name.lower() not in _NOT_FORWARDED:
                    connection.putheader(name, value)
            connection.endheaders(body or None)
            response = connection.getresponse()
            return _Reply(response.status,
                          [(name, value) for name, value in response.getheaders() if name.lower() not in _NOT_RELAYED],
                          response.read())
        except (OSError, http.client.HTTPException) as exc:
            return _problem(502, "serverInternal", f"the ARI proxy cannot reach Pebble: {type(exc).__name__}: {exc}")
        finally:
            connection.close()

    @staticmethod
    def _with_renewal_info(reply: _Reply, host: str) -> _Reply:
        try:
            directory = json.loads(reply.body)
        except ValueError:
            return reply
        if not isinstance(directory, dict):
            return reply
        directory["renewalInfo"] = f"https://{host}{RENEWAL_INFO_PATH}"
        return _Reply(reply.status, reply.headers, json.dumps(directory, indent=2).encode())


def _listener_key(pebble: Pebble) -> Path:
    # write_tls_certificate puts the key next to the certificate; Pebble keeps only the certificate's path.
    key = pebble.ca_bundle.with_name("listener.key")
    if not key.is_file():
        raise FileNotFoundError(f"Pebble's listener key is not next to its certificate: {key}")
    return key


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], proxy: AriProxy, tls: ssl.SSLContext) -> None:
        super().__init__(address, _ProxyHandler)
        self.proxy = proxy
        # The TLS handshake happens on the first read, in the connection's own thread: a client that stalls in
        # it cannot block accept() for everyone else.
        self.socket = tls.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ProxyServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle's algorithm and the client's delayed
        # ACK add 40 ms to every keep-alive request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _serve(self) -> None:
        if "Transfer-Encoding" in self.headers:
            self._refuse(_problem(411, "malformed", "the ARI proxy needs a Content-Length, not a chunked body"))
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self._refuse(_problem(400, "malformed", "Content-Length is not a non-negative integer"))
            return
        body = self.rfile.read(length) if length else b""
        self._send(self.server.proxy._answer(self.command, self.path, self.headers, body))

    def _refuse(self, reply: _Reply) -> None:
        # The body was not read, so the connection is out of step: answer, then close it.
        self.close_connection = True
        self._send(reply)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _serve

    def _send(self, reply: _Reply) -> None:
        # send_response_only: Pebble's Date header is relayed, so none is added here.
        self.send_response_only(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass


def start_ari_proxy(pebble: Pebble) -> AriProxy:
    """An ARI proxy in front of ``pebble``, serving in a background thread until :meth:`AriProxy.stop`."""
    return AriProxy(pebble)
