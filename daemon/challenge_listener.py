"""ACME challenge listeners: a dedicated http-01 port and the tls-alpn-01 responder (RFC 8555 8.3, RFC 8737).

Both serve the answers the ACME order job recorded in the database (``acme_challenges``) while their order is
unfinished; nothing else is reachable on them. They run in their own process (``scaivault-pki challenge-listener``,
or a child of ``serve``), apart from the gunicorn workers: that process opens the database but never the HSM,
binds ports that may need privileges (80, 443) the API does not, and answers validators even while every worker
is busy.

http-01 (``acme_http01_listen``): GET/HEAD ``/.well-known/acme-challenge/{token}`` gets the token's key
authorization; any other request gets 404.

tls-alpn-01 (``acme_tls_alpn01_listen``): the ClientHello is peeked (not consumed) first; a connection whose ALPN
does not offer ``acme-tls/1``, without SNI, or for a name with no unfinished tls-alpn-01 challenge is closed
without a handshake. Otherwise the handshake presents the RFC 8737 certificate for that name (``pki.acme_tls_alpn``)
and the connection is closed once it completes, as the RFC has it.

Each connection gets a thread, up to :data:`MAX_CONNECTIONS` per listener (more are closed at once), and at most
:data:`CONNECTION_DEADLINE` seconds in all; an error on one connection is logged and never stops the listener.
"""

from __future__ import annotations

import collections
import http.server
import json
import logging
import os
import select
import shutil
import signal
import socket
import socketserver
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

import peewee

from .config import Config, parse_host_port
from .errors import ApiError, not_found
from .logs import configure_logging
from .pki import acme_orders
from .pki.acme_tls_alpn import ACME_TLS_ALPN_PROTOCOL, challenge_certificate
from .schema.db import database

__all__ = [
    "ChallengeListener",
    "ChallengeListenerError",
    "ClientHello",
    "MalformedClientHello",
    "parse_client_hello",
    "run_challenge_listener",
    "spawn_challenge_listener",
    "stop_challenge_listener",
]

log = logging.getLogger("scaivault_pki.challenges")

#: RFC 8555 8.3: where a validator fetches an http-01 answer.
CHALLENGE_PATH = "/.well-known/acme-challenge/"
#: Connections served at once per listener; a validator makes a handful, so more means someone else.
MAX_CONNECTIONS = 64
#: Seconds for each read or write on a connection.
IO_TIMEOUT = 10.0
#: Seconds a connection may last in all, however slowly its peer trickles bytes.
CONNECTION_DEADLINE = 30.0
#: Challenge certificates kept ready (by domain and key authorization), and for how long (seconds), so repeated
#: validations (several vantage points, retries) do not each make a key; well within the certificate's lifetime.
CONTEXT_CACHE_SIZE = 32
CONTEXT_MAX_AGE = 86400.0
#: How often a listener started by ``serve`` checks that ``serve`` is still there (seconds).
PARENT_CHECK_SECONDS = 1.0
#: How long ``serve`` waits for its listener to report that it listens (seconds).
READY_TIMEOUT = 60.0

_TLS_HANDSHAKE = 22
_CLIENT_HELLO = 1
_EXTENSION_SERVER_NAME = 0
_EXTENSION_ALPN = 16
_SNI_HOST_NAME = 0
_MAX_RECORD = 2**14  # RFC 8446 5.1: a TLSPlaintext fragment is at most 2^14 bytes


class ChallengeListenerError(Exception):
    """The challenge listener cannot start (a port it cannot bind, a child that did not come up)."""


# -- ClientHello ------------------------------------------------------------------------------------------------


class MalformedClientHello(ValueError):
    """The first TLS record is not a complete, well-formed ClientHello."""


@dataclass(frozen=True)
class ClientHello:
    """What the responder needs from a ClientHello: the SNI host name and the offered ALPN protocols."""

    server_name: str | None
    alpn_protocols: tuple[str, ...]


class _Reader:
    """Big-endian reads over bytes; running short raises :class:`MalformedClientHello`."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, count: int) -> bytes:
        if count > self.remaining:
            raise MalformedClientHello("truncated")
        chunk = self.data[self.pos:self.pos + count]
        self.pos += count
        return chunk

    def number(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def vector(self, length_size: int) -> _Reader:
        """The next variable-length vector (its length in ``length_size`` bytes), as its own reader."""
        return _Reader(self.take(self.number(length_size)))


def parse_client_hello(record: bytes) -> ClientHello:
    """SNI and ALPN from one TLS record holding a whole ClientHello (RFC 8446 4.1.2, RFC 6066 3, RFC 7301 3.1).

    A ClientHello split over several records is refused (as malformed): validators send small ones.
    """
    reader = _Reader(record)
    if reader.number(1) != _TLS_HANDSHAKE:
        raise MalformedClientHello("not a TLS handshake record")
    reader.take(2)  # record-layer version: not meaningful (RFC 8446 5.1)
    fragment = reader.vector(2)
    if fragment.number(1) != _CLIENT_HELLO:
        raise MalformedClientHello("not a ClientHello")
    hello = fragment.vector(3)
    hello.take(2 + 32)  # legacy_version, random
    hello.vector(1)  # legacy_session_id
    hello.vector(2)  # cipher_suites
    hello.vector(1)  # legacy_compression_methods
    server_name: str | None = None
    protocols: list[str] = []
    extensions = hello.vector(2) if hello.remaining else _Reader(b"")
    while extensions.remaining:
        kind, body = extensions.number(2), extensions.vector(2)
        if kind == _EXTENSION_SERVER_NAME:
            names = body.vector(2)
            while names.remaining:
                name_type, name = names.number(1), names.vector(2).data
                if name_type == _SNI_HOST_NAME:
                    try:
                        server_name = name.decode("ascii")
                    except UnicodeDecodeError:
                        raise MalformedClientHello("SNI host name is not ASCII") from None
        elif kind == _EXTENSION_ALPN:
            offered = body.vector(2)
            while offered.remaining:
                protocols.append(offered.vector(1).data.decode("ascii", errors="replace"))
    return ClientHello(server_name, tuple(protocols))


def _peek_client_hello(sock: socket.socket) -> ClientHello:
    """Parse the first record without consuming it, so the TLS library still reads it for the handshake.

    ``MSG_WAITALL`` with a kernel receive timeout waits for the whole record (or the timeout) without spinning;
    raises ``OSError`` (timeout, reset) or :class:`MalformedClientHello`.
    """
    seconds = int(IO_TIMEOUT)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO,
                    struct.pack("@ll", seconds, int((IO_TIMEOUT - seconds) * 1_000_000)))
    header = sock.recv(5, socket.MSG_PEEK | socket.MSG_WAITALL)
    if len(header) < 5:
        raise MalformedClientHello("connection closed or timed out before a TLS record")
    if header[0] != _TLS_HANDSHAKE:
        raise MalformedClientHello("not a TLS handshake record")  # say so now, not after waiting for "its" length
    length = int.from_bytes(header[3:5], "big")
    if length > _MAX_RECORD:
        raise MalformedClientHello("record longer than TLS allows")
    record = sock.recv(5 + length, socket.MSG_PEEK | socket.MSG_WAITALL)
    if len(record) < 5 + length:
        raise MalformedClientHello("connection closed or timed out within the first TLS record")
    return parse_client_hello(record)


# -- servers ----------------------------------------------------------------------------------------------------


class _BoundedServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """A thread per connection, at most :data:`MAX_CONNECTIONS` at once, each ended at its deadline."""

    daemon_threads = True
    # Stopping must not wait for connections in flight (their deadlines are enforced by serve_forever, which
    # has ended by then): their threads are daemons and end with their sockets.
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = MAX_CONNECTIONS

    def __init__(self, name: str, address: tuple[str, int], handler: type[socketserver.BaseRequestHandler]) -> None:
        self.name = name
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._deadlines: dict[socket.socket, float] = {}
        self._lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            log.warning("challenge connection refused: too many at once",
                        extra={"listener": self.name, "client": client_address[0], "limit": MAX_CONNECTIONS})
            self.shutdown_request(request)
            return
        with self._lock:
            self._deadlines[request] = time.monotonic() + CONNECTION_DEADLINE
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._release(request)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release(request)

    def _release(self, request: socket.socket) -> None:
        with self._lock:
            self._deadlines.pop(request, None)
        self._slots.release()

    def service_actions(self) -> None:
        """Called by ``serve_forever`` twice a second: cut connections past their deadline (the handler's next
        read or write fails and its thread ends)."""
        now = time.monotonic()
        with self._lock:
            expired = [sock for sock, deadline in self._deadlines.items() if deadline <= now]
        for sock in expired:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # closed meanwhile

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("challenge connection failed", extra={"listener": self.name, "client": client_address[0]})


class _Http01Handler(http.server.BaseHTTPRequestHandler):
    """Answers ``GET``/``HEAD /.well-known/acme-challenge/{token}``; every other request gets 404."""

    server_version = "scaivault-pki-challenges"
    timeout = IO_TIMEOUT

    def version_string(self) -> str:
        return self.server_version  # no Python version in the Server header

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._answer(with_body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(with_body=False)

    def __getattr__(self, name: str) -> Callable[[], None]:
        # http.server looks up do_<METHOD>: every method but GET and HEAD finds nothing here (404, not 501).
        if name.startswith("do_"):
            return lambda: self._send_error(not_found("challenge"), with_body=True)
        raise AttributeError(name)

    def _answer(self, *, with_body: bool) -> None:
        path = urlsplit(self.path).path
        token = path[len(CHALLENGE_PATH):] if path.startswith(CHALLENGE_PATH) else ""
        if not token or "/" in token:
            self._send_error(not_found("challenge"), with_body=with_body)
            return
        try:
            with database.connection_context():
                key_authorization = acme_orders.http01_key_authorization(token)
        except (peewee.OperationalError, peewee.InterfaceError) as exc:
            log.error("http-01 lookup failed: database unavailable", extra={"error": str(exc)})
            self._send_error(ApiError("database_unavailable", "the database is unavailable"), with_body=with_body)
            return
        if key_authorization is None:
            self._send_error(not_found("challenge"), with_body=with_body)
            return
        self._send_body(200, "application/octet-stream", key_authorization.encode("ascii"), with_body)

    def _send_error(self, error: ApiError, *, with_body: bool) -> None:
        self._send_body(error.status, "application/json", json.dumps(error.to_body()).encode(), with_body)

    def _send_body(self, status: int, content_type: str, body: bytes, with_body: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        log.info("challenge request", extra={
            "listener": "http-01", "client": self.client_address[0], "method": self.command,
            # No path when the request line itself was refused (http.server answers 400 or 414 itself).
            "path": urlsplit(getattr(self, "path", "")).path, "status": int(code) if isinstance(code, int) else code})

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        # Malformed requests and timeouts (http.server answers those itself).
        log.info("challenge request refused", extra={"listener": "http-01", "client": self.client_address[0],
                                                     "reason": format % args})


class _ContextCache:
    """Server SSL contexts holding challenge certificates, by (domain, key authorization): bounded, least recently
    used out first, rebuilt once older than :data:`CONTEXT_MAX_AGE`."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="scaivault-tls-alpn-"))  # 0700: only this process's user
        self._entries: collections.OrderedDict[tuple[str, str], tuple[ssl.SSLContext, float]] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, domain: str, key_authorization: str) -> ssl.SSLContext:
        key = (domain, key_authorization)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and time.monotonic() - entry[1] < CONTEXT_MAX_AGE:
                self._entries.move_to_end(key)
                return entry[0]
        context = self._build(domain, key_authorization)  # outside the lock: makes a key and signs
        with self._lock:
            self._entries[key] = (context, time.monotonic())
            self._entries.move_to_end(key)
            while len(self._entries) > CONTEXT_CACHE_SIZE:
                self._entries.popitem(last=False)
        return context

    def _build(self, domain: str, key_authorization: str) -> ssl.SSLContext:
        made = challenge_certificate(domain, key_authorization)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2  # RFC 8737 4: TLS 1.2 or later
        context.set_alpn_protocols([ACME_TLS_ALPN_PROTOCOL])
        context.num_tickets = 0  # the connection ends with the handshake: nothing to resume
        # load_cert_chain reads only files: the PEM exists for a moment, 0600 in this process's 0700 directory.
        fd, path = tempfile.mkstemp(suffix=".pem", dir=self.directory)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(made.certificate_pem + made.private_key_pem)
            context.load_cert_chain(path)
        finally:
            os.unlink(path)
        return context


class _TlsAlpn01Handler(socketserver.BaseRequestHandler):
    """Peek, decide, hand shake with the challenge certificate, close."""

    server: _TlsAlpn01Server

    def handle(self) -> None:
        client = self.client_address[0]
        try:
            hello = _peek_client_hello(self.request)
        except BlockingIOError:  # the kernel receive timeout, with nothing received
            self._refuse(None, "no ClientHello within the timeout")
            return
        except (OSError, MalformedClientHello) as exc:
            self._refuse(None, str(exc) or type(exc).__name__)
            return
        domain = (hello.server_name or "").rstrip(".").lower()
        if ACME_TLS_ALPN_PROTOCOL not in hello.alpn_protocols:
            self._refuse(domain, f"ALPN does not offer {ACME_TLS_ALPN_PROTOCOL}")
            return
        if not domain:
            self._refuse(None, "no SNI")
            return
        try:
            with database.connection_context():
                key_authorization = acme_orders.tls_alpn01_key_authorization(domain)
        except (peewee.OperationalError, peewee.InterfaceError) as exc:
            log.error("tls-alpn-01 lookup failed: database unavailable", extra={"error": str(exc)})
            return
        if key_authorization is None:
            self._refuse(domain, "no unfinished tls-alpn-01 challenge for this name")
            return
        try:
            context = self.server.contexts.get(domain, key_authorization)
            _handshake(self.request, context)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError; ValueError: a name we cannot certify
            log.info("tls-alpn-01 handshake failed", extra={"client": client, "server_name": domain,
                                                           "reason": str(exc) or type(exc).__name__})
            return
        log.info("tls-alpn-01 challenge answered", extra={"client": client, "server_name": domain})

    def _refuse(self, domain: str | None, reason: str) -> None:
        """Close without a handshake (the server closes the socket when ``handle`` returns)."""
        log.info("tls-alpn-01 connection refused", extra={"client": self.client_address[0], "server_name": domain,
                                                          "reason": reason})


def _handshake(sock: socket.socket, context: ssl.SSLContext) -> None:
    """A server handshake over memory BIOs: the socket stays a plain one, owned (and closed) by the server."""
    sock.settimeout(IO_TIMEOUT)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_side=True)
    try:
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                sock.sendall(outgoing.read())
                data = sock.recv(_MAX_RECORD)
                if not data:
                    raise ConnectionError("the client closed the connection during the handshake") from None
                incoming.write(data)
    finally:
        if outgoing.pending:  # the last flight, or an alert
            sock.sendall(outgoing.read())
    if tls.selected_alpn_protocol() != ACME_TLS_ALPN_PROTOCOL:
        raise ssl.SSLError(f"{ACME_TLS_ALPN_PROTOCOL} was not negotiated")


class _TlsAlpn01Server(_BoundedServer):
    def __init__(self, address: tuple[str, int]) -> None:
        self.contexts = _ContextCache()
        try:
            super().__init__("tls-alpn-01", address, _TlsAlpn01Handler)
        except OSError:
            self._remove_directory()
            raise

    def server_close(self) -> None:
        super().server_close()
        self._remove_directory()

    def _remove_directory(self) -> None:
        shutil.rmtree(self.contexts.directory, ignore_errors=True)


class ChallengeListener:
    """The http-01 and tls-alpn-01 servers of one process (either may be absent), bound at construction.

    Addresses are ``(host, port)``; port 0 picks a free one (tests). Lookups go through the database proxy,
    which must be initialised (``schema.db.open_database``); each connection uses its own connection.
    """

    def __init__(self, http01: tuple[str, int] | None = None, tls_alpn01: tuple[str, int] | None = None) -> None:
        self.servers: list[_BoundedServer] = []
        self._threads: list[threading.Thread] = []
        try:
            if http01 is not None:
                self.servers.append(_bind("http-01", http01, lambda a: _BoundedServer("http-01", a, _Http01Handler)))
            if tls_alpn01 is not None:
                self.servers.append(_bind("tls-alpn-01", tls_alpn01, _TlsAlpn01Server))
        except ChallengeListenerError:
            self.stop()
            raise

    def port(self, name: str) -> int:
        """The bound port of listener ``name`` (``"http-01"`` or ``"tls-alpn-01"``)."""
        for server in self.servers:
            if server.name == name:
                return int(server.server_address[1])
        raise ValueError(f"no {name} listener here")

    def start(self) -> None:
        for server in self.servers:
            thread = threading.Thread(target=server.serve_forever, name=f"challenges-{server.name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop accepting and close the ports; connections in flight end at their deadline at the latest."""
        for server in self.servers:
            if self._threads:
                server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join()
        self._threads.clear()


def _bind(name: str, address: tuple[str, int], make: Callable[[tuple[str, int]], _BoundedServer]) -> _BoundedServer:
    try:
        return make(address)
    except OSError as exc:
        raise ChallengeListenerError(f"cannot listen on {address[0]}:{address[1]} for {name}: {exc.strerror or exc}"
                                     + (" (ports below 1024 need CAP_NET_BIND_SERVICE)" if address[1] < 1024 else "")) from None


# -- the process --------------------------------------------------------------------------------------------------


def run_challenge_listener(config: Config, *, exit_with_parent: bool = False, ready_fd: int | None = None) -> None:
    """``scaivault-pki challenge-listener``: serve until SIGTERM or SIGINT, in the foreground.

    The database must be opened (the CLI does); the HSM never is. ``exit_with_parent`` (``serve`` sets it): also
    stop once the process that started this one is gone. ``ready_fd``: a pipe to write ``ready`` to once every
    port listens (``serve`` waits for it); a listener that cannot start exits, which closes it unwritten.
    """
    parent = os.getppid()
    configure_logging(config.log_level)
    listener = ChallengeListener(
        parse_host_port(config.acme_http01_listen) if config.acme_http01_listen else None,
        parse_host_port(config.acme_tls_alpn01_listen) if config.acme_tls_alpn01_listen else None,
    )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    listener.start()
    log.info("challenge listener started", extra={"http01_listen": config.acme_http01_listen,
                                                  "tls_alpn01_listen": config.acme_tls_alpn01_listen})
    try:
        if ready_fd is not None:
            try:
                os.write(ready_fd, b"ready\n")
            except BrokenPipeError:
                log.warning("challenge listener: the process that started it is gone; stopping")
                return
            finally:
                os.close(ready_fd)
        while not stop.wait(PARENT_CHECK_SECONDS):
            if exit_with_parent and os.getppid() != parent:
                log.warning("challenge listener: the process that started it is gone; stopping")
                break
    finally:
        listener.stop()
        log.info("challenge listener stopped")


def spawn_challenge_listener(config_path: str | None) -> subprocess.Popen:
    """Start ``scaivault-pki challenge-listener`` as a child of ``serve`` and return once it listens.

    The child reads the same configuration (the same ``--config`` and environment) and stops when this process
    exits. Raises :class:`ChallengeListenerError` if it exits or stays silent instead (its log says why).
    """
    read_fd, write_fd = os.pipe()
    command = [sys.executable, "-m", "scaivault_pki.cli", *(["--config", config_path] if config_path else []),
               "challenge-listener", "--exit-with-parent", "--ready-fd", str(write_fd)]
    try:
        process = subprocess.Popen(command, pass_fds=(write_fd,))
    finally:
        os.close(write_fd)
    with os.fdopen(read_fd, "rb") as ready:
        readable, _, _ = select.select([ready], [], [], READY_TIMEOUT)
        answer = ready.readline() if readable else b""
    if answer != b"ready\n":
        stop_challenge_listener(process)
        raise ChallengeListenerError(f"the ACME challenge listener did not start (exit status {process.returncode}); "
                                     "its log above says why")
    return process


def stop_challenge_listener(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 10 seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
