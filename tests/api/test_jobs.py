"""The background-job runner over the session's real database: leases, failures, the thread's start and stop."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import uuid

import peewee
import pytest

from scaivault_pki.hsm import HsmUnavailable
from scaivault_pki.jobs import Job, JobRunner
from scaivault_pki.jobs.leases import acquire_lease, release_leases

pytestmark = pytest.mark.needs_softhsm


def job_name() -> str:
    return f"test.{uuid.uuid4().hex[:10]}"


def test_one_holder_at_a_time(services):
    name = job_name()
    calls: list[str] = []
    first = JobRunner([Job(name, 60, lambda: calls.append("first"))], holder="node-a:1")
    second = JobRunner([Job(name, 60, lambda: calls.append("second"))], holder="node-b:2")
    assert first.run_all() == [name]
    assert second.run_all() == []
    assert first.run_all() == [name]  # the holder renews
    assert calls == ["first", "first"]
    release_leases("node-a:1")
    assert second.run_all() == [name] and first.run_all() == []
    assert calls[-1] == "second"


def test_an_expired_lease_is_taken_over(services):
    name = job_name()
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    assert acquire_lease(name, "dead-worker", dt.timedelta(seconds=30), now=past)
    assert not acquire_lease(name, "live-worker", dt.timedelta(seconds=30), now=past + dt.timedelta(seconds=10))
    assert acquire_lease(name, "live-worker", dt.timedelta(seconds=30))


def test_interval_is_respected(services):
    calls = []
    runner = JobRunner([Job(job_name(), 3600, lambda: calls.append(1))])
    runner.run_due()
    runner.run_due()
    assert len(calls) == 1
    runner.run_all()
    assert len(calls) == 2


def test_failures_are_logged_once_and_never_raised(services, caplog):
    state = {"fail": True, "calls": 0}

    def flaky() -> None:
        state["calls"] += 1
        if state["fail"]:
            raise HsmUnavailable("token gone")

    def broken() -> None:
        raise RuntimeError("a bug")

    flaky_name, broken_name = job_name(), job_name()
    runner = JobRunner([Job(flaky_name, 1, flaky), Job(broken_name, 1, broken)])
    with caplog.at_level(logging.INFO, logger="scaivault_pki.jobs"):
        for _ in range(3):
            assert runner.run_all() == []
        state["fail"] = False
        assert flaky_name in runner.run_all()
    records = [r for r in caplog.records if r.name == "scaivault_pki.jobs"]
    flaky_failures = [r for r in records if getattr(r, "job", None) == flaky_name and r.msg == "job failed"]
    assert len(flaky_failures) == 1 and flaky_failures[0].error == "HsmUnavailable: token gone"
    assert not flaky_failures[0].exc_info  # the environment's failure: no traceback
    bug = [r for r in records if getattr(r, "job", None) == broken_name and r.msg == "job failed"]
    assert len(bug) == 1 and bug[0].exc_info  # our bug: with its traceback
    assert any(r.msg == "job recovered" and r.job == flaky_name and r.failures == 3 for r in records)
    assert state["calls"] == 4


def test_a_database_error_drops_the_connection(services, caplog):
    from scaivault_pki.schema.db import database

    def lost() -> None:
        raise peewee.OperationalError("server closed the connection")

    runner = JobRunner([Job(job_name(), 1, lost)])
    with caplog.at_level(logging.WARNING, logger="scaivault_pki.jobs"):
        assert runner.run_all() == []
    assert database.is_closed()
    database.connect(reuse_if_open=True)


def test_the_thread_runs_and_stops_cleanly(services):
    from scaivault_pki.schema.models import JobLease

    name = job_name()
    ran = threading.Event()
    threads = set()

    def tick() -> None:
        threads.add(threading.current_thread().name)
        ran.set()

    runner = JobRunner([Job(name, 0.05, tick)], holder=f"thread-test:{uuid.uuid4().hex[:6]}", tick_seconds=0.02)
    runner.start()
    with pytest.raises(RuntimeError, match="already started"):
        runner.start()
    assert ran.wait(10)
    assert runner.running and threads == {"scaivault-jobs"}
    assert JobLease.get_by_id(name).holder == runner.holder
    runner.stop()
    assert not runner.running
    # The lease was given up, so another worker takes over at once.
    assert JobLease.get_by_id(name).expires_at < dt.datetime(2000, 1, 1)
    runner.stop()  # idempotent


def test_job_names_are_unique():
    with pytest.raises(ValueError, match="unique"):
        JobRunner([Job("same", 1, lambda: None), Job("same", 2, lambda: None)])
    assert Job("x", 1, lambda: None).lease == dt.timedelta(seconds=30)
    assert Job("x", 60, lambda: None).lease == dt.timedelta(seconds=180)
    assert Job("x", 1, lambda: None, lease_seconds=5).lease == dt.timedelta(seconds=5)
