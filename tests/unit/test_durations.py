import datetime as dt

import pytest

from scaivault_pki.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    "value,seconds",
    [("90d", 90 * 86400), ("720h", 720 * 3600), ("1h30m", 5400), ("45s", 45), (3600, 3600), ("3600", 3600),
     ("1d2h3m4s", 93784), ("30m", 1800)],
)
def test_accepted(value, seconds):
    assert parse_duration(value) == dt.timedelta(seconds=seconds)


@pytest.mark.parametrize(
    "value", ["", "d", "1x", "30m1h", "1h1h", "1h 30m", " 1h", "1.5h", "-5", -5, 0, "0s", True, 1.5, None, [], "１h",
              "1w", "101y", 10**12]
)
def test_refused(value):
    with pytest.raises(ValueError):
        parse_duration(value)


def test_format_round_trips():
    for text in ("90d", "1h30m", "45s", "1d2h3m4s"):
        assert format_duration(parse_duration(text)) == text
