"""Pebble and pebble-challtestsrv for the ACME tests (module-scoped: each module gets fresh servers)."""

from __future__ import annotations

import pytest

from tests.support.daemon import free_port
from tests.support.pebble import have_pebble, start_challtestsrv, start_pebble

#: Pebble's example EAB credentials (HMAC keys are base64url).
EAB_KEYS = {"kid-1": "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"}


def pytest_collection_modifyitems(config, items):
    if not have_pebble():
        skip = pytest.mark.skip(reason="pebble is not installed (apt-get install pebble)")
        for item in items:
            if "tests/acme/" in str(item.fspath):
                item.add_marker(skip)


@pytest.fixture(scope="module")
def challtestsrv(tmp_path_factory):
    server = start_challtestsrv(tmp_path_factory.mktemp("challtestsrv"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def eab_pebble(tmp_path_factory, challtestsrv):
    """Pebble in EAB-required mode (no challenges are answered through it)."""
    pebble = start_pebble(tmp_path_factory.mktemp("pebble-eab"), dns_port=challtestsrv.dns_port,
                          http_port=free_port(), tls_port=free_port(), eab_keys=EAB_KEYS)
    yield pebble
    pebble.stop()


@pytest.fixture(scope="module")
def app_listener(services):
    """The daemon's real app (the in-process services) on a loopback port: where Pebble fetches http-01 answers."""
    import socketserver
    import threading
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    from scaivault_pki.app import create_app

    class ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
        daemon_threads = True

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, *args):  # the app logs requests itself
            pass

    server = make_server("127.0.0.1", 0, create_app(services), server_class=ThreadingServer, handler_class=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def pebble(tmp_path_factory, challtestsrv, app_listener):
    """Pebble validating for real: http-01 against the daemon's app listener."""
    server = start_pebble(tmp_path_factory.mktemp("pebble"), dns_port=challtestsrv.dns_port,
                          http_port=app_listener, tls_port=free_port())
    yield server
    server.stop()
