"""Running the app under gunicorn with sync workers.

The master never touches the HSM: a PKCS#11 library initialised before fork() is unusable in the child. Each
worker builds its own services after fork and opens the token there, once, so no request pays for a login.

With ``acme_http01_listen`` or ``acme_tls_alpn01_listen`` set, the master first starts the ACME challenge
listener as a child process (``challenge_listener``) and stops it when it exits itself.
"""

from __future__ import annotations

import logging
import os

from gunicorn.app.base import BaseApplication

from .app import create_app
from .challenge_listener import spawn_challenge_listener, stop_challenge_listener
from .config import Config, load_config
from .hsm import HsmError
from .jobs import start_background_jobs, stop_background_jobs
from .logs import configure_logging
from .services import build_services

log = logging.getLogger("scaivault_pki.server")


def worker_app(config: Config):
    """Build the WSGI app inside a worker (after fork) and open the token there."""
    configure_logging(config.log_level)
    services = build_services(config)
    try:
        services.hsm.open()
    except HsmError as exc:
        # Keep serving: health says 503 with the reason, and the token is tried again on the next request.
        log.error("hsm not available at worker start", extra={"error": str(exc)})
    app = create_app(services)
    # After fork, in the worker: the job thread shares this process's token (its lock) and database settings.
    start_background_jobs(services)
    return app


def _worker_exit(server, worker) -> None:
    """gunicorn hook, in the worker as it exits: stop the job thread cleanly and give up its leases."""
    stop_background_jobs()


class _Gunicorn(BaseApplication):
    def __init__(self, config: Config, options: dict):
        self.config_obj = config
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        return worker_app(self.config_obj)


def gunicorn_options(config: Config, workers: int | None = None, listen: str | None = None) -> dict:
    return {
        "bind": listen or config.listen,
        "workers": workers or config.workers,
        # Sync workers: one request at a time per process, so one HSM session per process is never shared.
        "worker_class": "sync",
        "preload_app": False,
        "timeout": 60,
        "graceful_timeout": 30,
        "keepalive": 5,
        "proc_name": "scaivault-pki",
        "loglevel": config.log_level,
        "limit_request_line": 8190,
        "forwarded_allow_ips": "127.0.0.1,::1",
        "worker_exit": _worker_exit,
    }


def serve(config: Config, workers: int | None = None, listen: str | None = None, config_path: str | None = None) -> None:
    """Run gunicorn until it is stopped, with the ACME challenge listener beside it when one is configured.

    ``config_path`` is the ``--config`` this process was given: the listener reads the same configuration.
    Raises ``ChallengeListenerError`` when the listener cannot start (then nothing else is started).
    """
    configure_logging(config.log_level)
    listener = None
    if config.acme_http01_listen or config.acme_tls_alpn01_listen:
        # Before gunicorn forks anything, and as a fresh interpreter: the listener shares nothing with workers.
        listener = spawn_challenge_listener(config_path)
    master = os.getpid()
    try:
        _Gunicorn(config, gunicorn_options(config, workers, listen)).run()
    finally:
        # gunicorn ends workers with SystemExit, which unwinds through here in them too: only the master owns it.
        if listener is not None and os.getpid() == master:
            stop_challenge_listener(listener)


def wsgi_from_environment():
    """Entry for ``gunicorn 'scaivault_pki.server:wsgi_from_environment()'`` with an external gunicorn config."""
    return worker_app(load_config())
