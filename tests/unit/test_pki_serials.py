"""Serial number generation, formatting and parsing."""

from __future__ import annotations

import pytest
from asn1crypto import core

from scaivault_pki.pki.serials import (
    MAX_SERIAL,
    parse_serial,
    random_serial,
    serial_der_length,
    serial_to_hex,
)


def test_random_serials_properties() -> None:
    serials = [random_serial() for _ in range(1000)]
    assert len(set(serials)) == 1000
    for serial in serials:
        assert serial >= 2**64
        assert serial > 0
        der_contents = core.Integer(serial).contents
        assert len(der_contents) <= 20
        assert serial_der_length(serial) == len(der_contents)
    # 127 random bits: across 1000 draws the top bits are exercised.
    assert max(serial.bit_length() for serial in serials) == 127


@pytest.mark.parametrize(
    ("serial", "expected"),
    [(1, 1), (0x7F, 1), (0x80, 2), (0xFF, 2), (0x100, 2), (MAX_SERIAL, 20), (MAX_SERIAL + 1, 21)],
)
def test_serial_der_length(serial: int, expected: int) -> None:
    assert serial_der_length(serial) == expected == len(core.Integer(serial).contents)


@pytest.mark.parametrize(
    ("serial", "text"),
    [(1, "01"), (0x0F, "0f"), (0xFF, "ff"), (0x80, "80"), (0x100, "0100"), (0xABCDEF, "abcdef")],
)
def test_serial_to_hex_is_lower_case_even_length(serial: int, text: str) -> None:
    assert serial_to_hex(serial) == text
    assert parse_serial(text) == serial


@pytest.mark.parametrize("bad", [0, -1, True, 1.0, "01"])
def test_serial_to_hex_rejects_non_positive_or_non_int(bad: object) -> None:
    with pytest.raises(ValueError):
        serial_to_hex(bad)  # type: ignore[arg-type]


def test_round_trips_random_serials() -> None:
    for _ in range(200):
        serial = random_serial()
        text = serial_to_hex(serial)
        assert text == text.lower() and ":" not in text and len(text) % 2 == 0
        assert parse_serial(text) == serial
        assert parse_serial(text.upper()) == serial
        colon_form = ":".join(text[i : i + 2] for i in range(0, len(text), 2))
        assert parse_serial(colon_form) == serial
        assert parse_serial(colon_form.upper()) == serial


@pytest.mark.parametrize(
    ("text", "value"),
    [("1", 1), ("abc", 0xABC), ("ABC", 0xABC), ("0a:1B", 0x0A1B), ("00ff", 0xFF)],
)
def test_parse_serial_accepts(text: str, value: int) -> None:
    assert parse_serial(text) == value


@pytest.mark.parametrize(
    "text",
    [
        "",
        "0",
        "00:00",
        "0x1f",
        "1_000",
        " 1f",
        "1f ",
        "1f\n",
        "g1",
        "-1",
        "+1",
        "a:b",
        "0a:",
        ":0a",
        "0a::0b",
        "0a1:b2",
        "\uff18",  # FULLWIDTH DIGIT EIGHT: int(x, 16) would accept it
        "80" + "00" * 19,  # 2**159: needs 21 DER octets
    ],
)
def test_parse_serial_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_serial(text)


def test_parse_serial_accepts_largest() -> None:
    assert parse_serial(serial_to_hex(MAX_SERIAL)) == MAX_SERIAL


def test_parse_serial_rejects_non_string() -> None:
    with pytest.raises(ValueError):
        parse_serial(0x1F)  # type: ignore[arg-type]
