"""A generic background-job runner: a daemon thread in each worker process, jobs coordinated by leases.

A job is a name, an interval and a function. Every worker of every node runs a runner; for each job only the
worker holding its lease (see ``leases``) calls the function, every ``interval`` seconds. A job function must be
safe to repeat and should not assume it is the only one running: a holder that stalls past its lease is replaced,
and may finish its run after the new holder started.

The thread never takes the worker down: every failure is logged (rate-limited while it keeps failing) and the
job is tried again at its next interval. peewee connections are per thread, so the runner keeps its own,
reconnecting after a database error. PKCS#11 calls are serialised with request handling by the token's lock.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import peewee

from ..hsm import HsmError
from ..schema.db import database
from .leases import acquire_lease, process_holder, release_leases

log = logging.getLogger("scaivault_pki.jobs")

#: While a job keeps failing with the same error, it is logged again at most this often.
REPEAT_FAILURE_LOG_SECONDS = 300.0
# Failures that are the environment's, not our bug: logged without a traceback.
_EXPECTED_FAILURES = (HsmError, peewee.OperationalError, peewee.InterfaceError)


@dataclass(frozen=True)
class Job:
    """A recurring background job."""

    name: str  # unique; also the lease's name
    interval: float  # seconds between runs
    function: Callable[[], None]
    # How long one run may hold the job before another worker may take it; default max(30 s, 3 intervals).
    lease_seconds: float | None = None

    @property
    def lease(self) -> dt.timedelta:
        """How long one acquisition of the job's lease lasts."""
        return dt.timedelta(seconds=self.lease_seconds or max(30.0, 3 * self.interval))


@dataclass
class _Failure:
    message: str
    logged_at: float
    count: int = 1


@dataclass
class _State:
    next_due: float = 0.0
    failure: _Failure | None = field(default=None)


class JobRunner:
    """Runs ``jobs`` on a daemon thread (``start``/``stop``), or one pass at a time (``run_due``, ``run_all``)."""

    def __init__(self, jobs: Sequence[Job], *, holder: str | None = None, tick_seconds: float = 0.25):
        names = [job.name for job in jobs]
        if len(set(names)) != len(names):
            raise ValueError(f"job names must be unique: {names}")
        self.jobs = tuple(jobs)
        self.holder = holder or process_holder()
        self._tick = tick_seconds
        self._states = {job.name: _State() for job in jobs}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- one pass ------------------------------------------------------------

    def run_due(self) -> list[str]:
        """Run every job whose interval has passed and whose lease this runner gets; returns the names run."""
        ran = []
        for job in self.jobs:
            state = self._states[job.name]
            if time.monotonic() < state.next_due:
                continue
            if self._run(job, state):
                ran.append(job.name)
            state.next_due = time.monotonic() + job.interval
        return ran

    def run_all(self) -> list[str]:
        """Run every job now, whatever its interval (tests, and ``scaivault-pki`` tooling)."""
        for state in self._states.values():
            state.next_due = 0.0
        return self.run_due()

    def _run(self, job: Job, state: _State) -> bool:
        try:
            database.connect(reuse_if_open=True)
            if not acquire_lease(job.name, self.holder, job.lease):
                return False
            job.function()
        except Exception as exc:  # noqa: BLE001 - a job must never take the worker down
            if isinstance(exc, (peewee.OperationalError, peewee.InterfaceError)) and not database.is_closed():
                database.close()  # reconnect next time (a restarted PostgreSQL, a network blip)
            self._log_failure(job, state, exc)
            return False
        if state.failure is not None:
            log.info("job recovered", extra={"job": job.name, "failures": state.failure.count})
            state.failure = None
        return True

    def _log_failure(self, job: Job, state: _State, exc: Exception) -> None:
        message = f"{type(exc).__name__}: {exc}"
        now = time.monotonic()
        failure = state.failure
        if failure is not None and failure.message == message:
            failure.count += 1
            if now - failure.logged_at < REPEAT_FAILURE_LOG_SECONDS:
                return
            failure.logged_at = now
        else:
            state.failure = failure = _Failure(message, now)
        log.warning(
            "job failed",
            extra={"job": job.name, "error": message, "failures": failure.count},
            exc_info=not isinstance(exc, _EXPECTED_FAILURES),
        )

    # -- the thread ----------------------------------------------------------

    def start(self) -> None:
        """Start the daemon thread (once)."""
        if self._thread is not None:
            raise RuntimeError("the job runner is already started")
        self._thread = threading.Thread(target=self._loop, name="scaivault-jobs", daemon=True)
        self._thread.start()
        log.info("job runner started", extra={"holder": self.holder, "jobs": [job.name for job in self.jobs]})

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread after its current job, give up its leases and close its connection. Idempotent."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        thread.join(timeout)
        if thread.is_alive():
            log.warning("job runner did not stop in time", extra={"holder": self.holder, "timeout": timeout})

    @property
    def running(self) -> bool:
        """Whether the thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    self.run_due()
                except Exception:  # noqa: BLE001 - run_due already guards each job; this is the last line
                    log.exception("job runner pass failed", extra={"holder": self.holder})
                self._stop.wait(self._tick)
        finally:
            self._shut_down()

    def _shut_down(self) -> None:
        try:
            database.connect(reuse_if_open=True)
            release_leases(self.holder)
        except Exception as exc:  # noqa: BLE001 - leases expire on their own; stopping must not fail
            log.warning("could not release job leases", extra={"holder": self.holder, "error": str(exc)})
        finally:
            if not database.is_closed():
                database.close()
