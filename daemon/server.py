"""Running the app under gunicorn with sync workers.

The master never touches the HSM: a PKCS#11 library initialised before fork() is unusable in the child. Each
worker builds its own services after fork and opens the token there, once, so no request pays for a login.
"""

from __future__ import annotations

import logging

from gunicorn.app.base import BaseApplication

from .app import create_app
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


def serve(config: Config, workers: int | None = None, listen: str | None = None) -> None:
    configure_logging(config.log_level)
    _Gunicorn(config, gunicorn_options(config, workers, listen)).run()


def wsgi_from_environment():
    """Entry for ``gunicorn 'scaivault_pki.server:wsgi_from_environment()'`` with an external gunicorn config."""
    return worker_app(load_config())
