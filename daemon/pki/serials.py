"""Certificate serial numbers: generation, hex formatting and parsing.

RFC 5280 4.1.2.2: serials are positive integers of at most 20 octets (as DER
INTEGER contents, i.e. including any sign octet).  The CA/B Forum Baseline
Requirements (7.1) additionally demand at least 64 bits of CSPRNG output, which
also makes serials unpredictable (the historical defence against chosen-prefix
collision attacks on the signature hash).
"""

from __future__ import annotations

import re
import secrets
from typing import Final

__all__ = [
    "MAX_SERIAL",
    "MIN_RANDOM_SERIAL",
    "parse_serial",
    "random_serial",
    "serial_der_length",
    "serial_to_hex",
]

#: Largest serial whose DER INTEGER contents fit in 20 octets (the top bit of
#: the first octet must be 0, or a 0x00 sign octet would make it 21).
MAX_SERIAL: Final = 2**159 - 1

#: :func:`random_serial` never returns less than this, so every serial it
#: produces is visibly "big" and carries at least 64 random bits.
MIN_RANDOM_SERIAL: Final = 2**64

# 16 bytes with the top bit cleared give 127 random bits and a DER INTEGER of
# at most 16 octets, comfortably within both bounds above.
_RANDOM_BYTES: Final = 16

_PLAIN_HEX_RE: Final = re.compile(r"[0-9a-fA-F]+")
_COLON_HEX_RE: Final = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2})*")


def random_serial() -> int:
    """Return a fresh serial: 127 bits from ``secrets``, retried until >= 2**64.

    The retry only triggers with probability 2**-63, so the output still
    carries at least 64 bits of entropy.  The DER encoding is at most 16
    octets.
    """
    while True:
        raw = bytearray(secrets.token_bytes(_RANDOM_BYTES))
        raw[0] &= 0x7F  # keep it positive without needing a sign octet
        serial = int.from_bytes(raw, "big")
        if serial >= MIN_RANDOM_SERIAL:
            return serial


def serial_der_length(serial: int) -> int:
    """Return the length of the DER INTEGER contents (sign octet included) of ``serial``."""
    if serial < 0:
        raise ValueError("serial numbers are positive")
    # Non-negative INTEGERs need one extra bit for the sign: bit_length() + 1.
    return max(1, (serial.bit_length() + 8) // 8)


def serial_to_hex(serial: int) -> str:
    """Format ``serial`` as lower-case hex, no colons, padded to whole octets.

    The result always has an even number of digits ("0f", "0100") because the
    daemon stores and logs serials as octet strings, the way OpenSSL shows
    them; a leading "00" sign octet is *not* included (0x80 -> "80", not
    "0080").  :func:`parse_serial` reverses it exactly.
    """
    if not isinstance(serial, int) or isinstance(serial, bool):
        raise ValueError("serial must be an int")
    if serial <= 0:
        raise ValueError("serial numbers must be positive")
    digits = format(serial, "x")
    return digits if len(digits) % 2 == 0 else "0" + digits


def parse_serial(text: str) -> int:
    """Parse a serial given as hex, upper or lower case, with or without colons.

    Accepts ``"0a1b"``, ``"A1B"`` and ``"0a:1b"`` (colon form must be
    two-digit groups, as printed by OpenSSL).  Rejects everything else,
    including whitespace, ``0x`` prefixes and underscores (which ``int(x, 16)``
    would silently accept), zero, and values longer than 20 DER octets.
    """
    if not isinstance(text, str):
        raise ValueError("serial must be given as a string")
    if ":" in text:
        if not _COLON_HEX_RE.fullmatch(text):
            raise ValueError(f"invalid serial {text!r}: colon form needs two-digit hex groups")
        digits = text.replace(":", "")
    else:
        if not _PLAIN_HEX_RE.fullmatch(text):
            raise ValueError(f"invalid serial {text!r}: expected hexadecimal digits")
        digits = text
    serial = int(digits, 16)
    if serial == 0:
        raise ValueError("invalid serial: serial numbers must be positive")
    if serial > MAX_SERIAL:
        raise ValueError("invalid serial: longer than 20 octets")
    return serial
