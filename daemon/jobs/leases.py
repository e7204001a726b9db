"""Job leases in the database: whoever holds an unexpired lease on a job is the only one running it.

A lease row per job (``job_leases``). Taking it is one conditional UPDATE inside a write transaction, so among
all workers of all nodes sharing the database exactly one succeeds while the lease lasts; the holder renews it
each time it runs the job, and another worker takes over once it expires (the holder died or hangs).
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import socket

from ..schema.db import write_transaction
from ..schema.models import JobLease
from ..times import as_naive_utc, utc_now

# A free lease looks like one that expired long ago.
_EXPIRED = dt.datetime(1970, 1, 1)
_holder: tuple[int, str] | None = None


def process_holder() -> str:
    """This process's holder name: host, pid and a random part (pids repeat across restarts and containers)."""
    global _holder
    if _holder is None or _holder[0] != os.getpid():
        _holder = (os.getpid(), f"{socket.gethostname()[:80]}:{os.getpid()}:{secrets.token_hex(4)}")
    return _holder[1]


def acquire_lease(name: str, holder: str, duration: dt.timedelta, now: dt.datetime | None = None) -> bool:
    """Take or renew the lease on job ``name`` until now + ``duration``; False when someone else holds it."""
    now_naive = as_naive_utc(now or utc_now())
    with write_transaction():
        JobLease.insert(name=name, holder="", expires_at=_EXPIRED).on_conflict_ignore().execute()
        taken = (
            JobLease.update(holder=holder, expires_at=now_naive + duration)
            .where((JobLease.name == name) & ((JobLease.expires_at < now_naive) | (JobLease.holder == holder)))
            .execute()
        )
    return taken == 1


def release_leases(holder: str) -> int:
    """Give up every lease ``holder`` has, so another worker can take over at once (on a clean stop)."""
    with write_transaction():
        return JobLease.update(expires_at=_EXPIRED).where(JobLease.holder == holder).execute()
