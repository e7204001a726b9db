"""Durations as the API accepts them: ``"90d"``, ``"720h"``, ``"1h30m"``, ``"45s"`` or integer seconds."""

from __future__ import annotations

import datetime as dt
import re

_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
# Units in descending order, each at most once: "1h30m" yes, "30m1h" and "1h1h" no.
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$", re.ASCII)
# Far beyond any certificate lifetime, small enough that datetime arithmetic cannot overflow.
MAX_DURATION_SECONDS = 100 * 365 * 86400


def parse_duration(value: object) -> dt.timedelta:
    """Parse a duration or raise ``ValueError`` saying what is accepted."""
    if isinstance(value, bool):
        raise ValueError("a duration is a string like '90d', '720h', '1h30m', '45s' or integer seconds")
    if isinstance(value, int):
        seconds = value
    elif isinstance(value, str) and value.isascii() and value.isdigit():
        seconds = int(value)
    elif isinstance(value, str) and value and (match := _DURATION.match(value)):
        seconds = sum(int(n) * _UNIT_SECONDS[u] for n, u in zip(match.groups(), "dhms") if n is not None)
    else:
        raise ValueError(f"invalid duration {value!r}: use '90d', '720h', '1h30m', '45s' or integer seconds")
    if seconds <= 0:
        raise ValueError(f"invalid duration {value!r}: must be positive")
    if seconds > MAX_DURATION_SECONDS:
        raise ValueError(f"invalid duration {value!r}: longer than 100 years")
    return dt.timedelta(seconds=seconds)


def format_duration(delta: dt.timedelta) -> str:
    """The canonical string form, e.g. ``"90d"`` or ``"1h30m"``."""
    seconds = int(delta.total_seconds())
    parts = []
    for unit, size in _UNIT_SECONDS.items():
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"
