"""Background jobs: CRL publication, expiry events, the ACME order driver and ACME renewals (``default_jobs``).

Each gunicorn worker starts one :class:`JobRunner` thread after fork (``start_background_jobs``, called from
``server.worker_app``) and stops it when the worker exits; database leases make sure each job runs in one worker
of one node at a time. In-process tests have no thread: they call ``run_jobs_once``.
"""

from __future__ import annotations

import atexit
import datetime as dt
import threading

from ..pki import acme_orders, events
from ..services import Services
from .crl import CrlJobs
from .runner import Job, JobRunner

__all__ = ["Job", "JobRunner", "default_jobs", "run_jobs_once", "start_background_jobs", "stop_background_jobs"]

_started: list[JobRunner] = []
_started_lock = threading.Lock()


# Plugins hear of certificates that expire within this window, once a day (so a certificate is announced on
# each of its last 30 days until it is renewed or expires).
EXPIRY_NOTICE = dt.timedelta(days=30)
DAY_SECONDS = 86400.0
ACME_RENEWAL_INTERVAL = 10.0


def default_jobs(services: Services) -> list[Job]:
    """Every job the daemon runs."""

    def announce_expiring() -> None:
        events.notify_expiring(services.plugins, within=EXPIRY_NOTICE)

    expiring = Job(
        "events.expiring",
        DAY_SECONDS,
        announce_expiring,
        # Held a little over a day, so the worker that ran it keeps it and no other worker runs it again today.
        lease_seconds=DAY_SECONDS + 600,
    )

    def drive_acme_orders() -> None:
        acme_orders.drive_due_orders(services.envelope, plugins=services.plugins)

    # Each order is stepped only when its own next attempt is due; the lease outlasts a slow CA's answers.
    acme = Job("acme.orders", 1.0, drive_acme_orders, lease_seconds=120)

    def renew_acme_certificates() -> None:
        acme_orders.renew_due_orders(services.envelope)

    # Renewal times carry jitter and failures back off for minutes, so checking every 10 s is plenty.
    renewals = Job("acme.renewals", ACME_RENEWAL_INTERVAL, renew_acme_certificates, lease_seconds=120)
    return [*CrlJobs(services.hsm, services.config).jobs(), expiring, acme, renewals]


def start_background_jobs(services: Services) -> JobRunner:
    """Start this process's job thread; it is stopped by ``stop_background_jobs`` or at interpreter exit."""
    runner = JobRunner(default_jobs(services))
    with _started_lock:
        if not _started:
            atexit.register(stop_background_jobs)
        _started.append(runner)
    runner.start()
    return runner


def stop_background_jobs() -> None:
    """Stop every job thread this process started (gunicorn's ``worker_exit`` hook, and atexit)."""
    with _started_lock:
        runners = list(_started)
        _started.clear()
    for runner in runners:
        runner.stop()


def run_jobs_once(services: Services) -> list[str]:
    """Run every job once, now, in the calling thread; returns the names that ran (their lease was free)."""
    return JobRunner(default_jobs(services)).run_all()
