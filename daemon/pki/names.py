"""Distinguished names: building ``asn1crypto.x509.Name`` values and parsing RFC 4514 strings.

Only the attributes our profiles use are supported.  They are emitted in the
conventional "big-endian" order C, ST, L, O, OU, CN so that names built from the
same fields always encode to the same DER, which matters because issuer/subject
name chaining compares encodings byte for byte.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from asn1crypto import core, x509

__all__ = [
    "NAME_FIELDS",
    "NameField",
    "build_name",
    "name_fields",
    "parse_rfc4514",
]


@dataclass(frozen=True)
class NameField:
    """One supported subject attribute and its RFC 5280 rules."""

    #: keyword argument / dict key used by this module
    field: str
    #: asn1crypto ``NameType`` name
    attribute: str
    #: RFC 4514 short name
    short_name: str
    #: dotted OID, accepted in RFC 4514 strings as an alternative to the short name
    oid: str
    #: upper bound in characters (RFC 5280 Appendix A.1, ub-* constants)
    max_length: int
    #: PrintableString is mandated for countryName (RFC 5280 A.1, X520countryName);
    #: everything else is UTF8String, which RFC 5280 4.1.2.6 says CAs MUST use.
    printable: bool = False


#: Supported attributes, in the order they appear in an encoded name.
NAME_FIELDS: Final[tuple[NameField, ...]] = (
    NameField("country", "country_name", "C", "2.5.4.6", 2, printable=True),
    NameField("state_or_province", "state_or_province_name", "ST", "2.5.4.8", 128),
    NameField("locality", "locality_name", "L", "2.5.4.7", 128),
    NameField("organization", "organization_name", "O", "2.5.4.10", 64),
    NameField("organizational_unit", "organizational_unit_name", "OU", "2.5.4.11", 64),
    NameField("common_name", "common_name", "CN", "2.5.4.3", 64),
)

_BY_FIELD: Final[dict[str, NameField]] = {f.field: f for f in NAME_FIELDS}
_BY_ATTRIBUTE: Final[dict[str, NameField]] = {f.attribute: f for f in NAME_FIELDS}
_BY_RFC4514_TYPE: Final[dict[str, NameField]] = {
    **{f.short_name.casefold(): f for f in NAME_FIELDS},
    **{f.oid: f for f in NAME_FIELDS},
}

_COUNTRY_RE: Final = re.compile(r"[A-Z]{2}")
# C0 controls and DEL have no business in a certificate name; they break
# display and logs, and some relying parties mis-handle embedded NULs.
_CONTROL_RE: Final = re.compile(r"[\x00-\x1f\x7f]")


def _validate(spec: NameField, value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{spec.field}: must be a string, got {type(value).__name__}")
    if value == "":
        # DirectoryString is SIZE (1..MAX); absent attributes are passed as None.
        raise ValueError(f"{spec.field}: must not be empty (omit it instead)")
    if len(value) > spec.max_length:
        raise ValueError(
            f"{spec.field}: {len(value)} characters exceeds the RFC 5280 "
            f"upper bound of {spec.max_length}"
        )
    if _CONTROL_RE.search(value):
        raise ValueError(f"{spec.field}: must not contain control characters")
    if spec.printable and not _COUNTRY_RE.fullmatch(value):
        raise ValueError(
            f"{spec.field}: must be a two-letter upper-case ISO 3166 code, got {value!r}"
        )
    return value


def build_name(
    fields: Mapping[str, str | None] | None = None,
    /,
    *,
    common_name: str | None = None,
    organization: str | None = None,
    organizational_unit: str | None = None,
    country: str | None = None,
    locality: str | None = None,
    state_or_province: str | None = None,
) -> x509.Name:
    """Build a validated ``x509.Name`` with one single-valued RDN per given attribute.

    Fields come as keyword arguments, or as a mapping with the same keys
    (e.g. the result of :func:`parse_rfc4514` or a request body), or both;
    a field given both ways, or an unknown key, raises ``ValueError``.
    Attributes that are ``None`` are omitted; with none given the result is
    the empty name (only valid as a subject with a critical subjectAltName).
    Raises ``ValueError`` naming the offending field.
    """
    given: dict[str, str | None] = {
        "common_name": common_name,
        "organization": organization,
        "organizational_unit": organizational_unit,
        "country": country,
        "locality": locality,
        "state_or_province": state_or_province,
    }
    if fields is not None:
        if not isinstance(fields, Mapping):
            raise ValueError("name fields must be a mapping of field name to value")
        for key, value in fields.items():
            if key not in _BY_FIELD:
                raise ValueError(
                    f"{key}: unsupported name field; expected one of {sorted(_BY_FIELD)}"
                )
            if value is not None and given[key] is not None:
                raise ValueError(f"{key}: given both in the mapping and as a keyword")
            if value is not None:
                given[key] = value
    rdns = []
    for spec in NAME_FIELDS:
        raw = given[spec.field]
        if raw is None:
            continue
        value = _validate(spec, raw)
        if spec.printable:
            directory_string = x509.DirectoryString(
                name="printable_string", value=core.PrintableString(value)
            )
        else:
            directory_string = x509.DirectoryString(
                name="utf8_string", value=core.UTF8String(value)
            )
        rdns.append(
            x509.RelativeDistinguishedName(
                [x509.NameTypeAndValue({"type": spec.attribute, "value": directory_string})]
            )
        )
    return x509.Name(name="", value=x509.RDNSequence(rdns))


def name_fields(name: x509.Name) -> dict[str, str]:
    """Return the fields of ``name`` as keyword arguments for :func:`build_name`.

    Raises ``ValueError`` for attributes this module does not support, for
    multi-valued RDNs and for repeated attributes, so a round trip through
    :func:`build_name` never silently drops information.
    """
    result: dict[str, str] = {}
    for rdn in name.chosen:
        if len(rdn) != 1:
            raise ValueError("multi-valued RDNs are not supported")
        type_and_value = rdn[0]
        attribute = type_and_value["type"].native
        spec = _BY_ATTRIBUTE.get(attribute)
        if spec is None:
            raise ValueError(f"unsupported name attribute {attribute!r}")
        if spec.field in result:
            raise ValueError(f"{spec.field}: appears more than once")
        result[spec.field] = type_and_value["value"].native
    return result


# RFC 4514 section 2.4: characters that may follow a backslash verbatim.
_ESCAPABLE: Final = frozenset(' "#+,;<=>\\')
# RFC 4514 section 3: these must be escaped inside a value.
_MUST_ESCAPE: Final = frozenset('"+,;<>\\')
_KEYWORD_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9-]*")
_NUMERICOID_RE: Final = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+")
_HEX_DIGITS: Final = frozenset("0123456789abcdefABCDEF")


def _parse_attribute_type(text: str) -> NameField:
    attribute_type = text.strip(" ")
    if attribute_type.lower().startswith("oid."):
        # RFC 2253 implementations emitted "OID.2.5.4.3"; RFC 4514 dropped it.
        attribute_type = attribute_type[4:]
    if not (_KEYWORD_RE.fullmatch(attribute_type) or _NUMERICOID_RE.fullmatch(attribute_type)):
        raise ValueError(f"invalid attribute type {attribute_type!r}")
    spec = _BY_RFC4514_TYPE.get(attribute_type.casefold())
    if spec is None:
        raise ValueError(f"unsupported attribute type {attribute_type!r}")
    return spec


def _parse_hexstring_value(text: str, spec: NameField) -> str:
    """Decode an RFC 4514 ``#hexstring`` value: the BER encoding of the attribute value."""
    digits = text[1:]
    if not digits or len(digits) % 2 or not set(digits) <= _HEX_DIGITS:
        raise ValueError(f"{spec.field}: invalid hex-encoded value {text!r}")
    try:
        decoded = core.load(bytes.fromhex(digits))
        native = decoded.native
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{spec.field}: hex-encoded value is not valid BER") from exc
    if not isinstance(decoded, core.AbstractString) or not isinstance(native, str):
        raise ValueError(f"{spec.field}: hex-encoded value is not a string type")
    return native


def parse_rfc4514(text: str) -> dict[str, str]:
    """Parse an RFC 4514 distinguished name string into :func:`build_name` fields.

    ``'CN=example.com,O=Acme\\, Inc.,C=US'`` gives
    ``{"common_name": "example.com", "organization": "Acme, Inc.", "country": "US"}``.
    Attribute types are matched case-insensitively and may be dotted OIDs.
    Escapes follow RFC 4514 section 2.4 (``\\`` + special character, or ``\\``
    + two hex digits forming UTF-8); ``#hexstring`` values are decoded.  As a
    convenience, unescaped spaces around ``=`` and ``,`` are ignored (escaped
    spaces are kept).  Unknown attributes, multi-valued RDNs (``+``), repeated
    attributes, malformed escapes and values that violate the RFC 5280 limits
    raise ``ValueError``.  The empty string is the empty name.
    """
    result: dict[str, str] = {}
    if text == "":
        return result
    length = len(text)
    position = 0
    while True:
        equals = text.find("=", position)
        if equals < 0:
            raise ValueError(f"missing '=' after position {position} in {text!r}")
        spec = _parse_attribute_type(text[position:equals])
        if spec.field in result:
            raise ValueError(f"{spec.field}: appears more than once")
        position = equals + 1

        # Skip unescaped leading spaces before looking for a '#hexstring' value.
        while position < length and text[position] == " ":
            position += 1

        if position < length and text[position] == "#":
            end = position
            while end < length and text[end] not in ",+":
                end += 1
            value = _parse_hexstring_value(text[position:end].rstrip(" "), spec)
            position = end
        else:
            # Collect UTF-8 bytes so that hex escapes of multi-byte characters
            # (e.g. "\C3\A9") combine correctly; remember where the last
            # escaped byte ended so only *unescaped* trailing spaces are stripped.
            buffer = bytearray()
            keep_up_to = 0
            while position < length and text[position] not in ",+":
                char = text[position]
                if char == "\\":
                    if position + 1 >= length:
                        raise ValueError(f"{spec.field}: dangling '\\' at end of value")
                    nxt = text[position + 1]
                    if nxt in _ESCAPABLE:
                        buffer += nxt.encode()
                        position += 2
                    elif (
                        nxt in _HEX_DIGITS
                        and position + 2 < length
                        and text[position + 2] in _HEX_DIGITS
                    ):
                        buffer.append(int(text[position + 1 : position + 3], 16))
                        position += 3
                    else:
                        raise ValueError(f"{spec.field}: invalid escape '\\{nxt}'")
                    keep_up_to = len(buffer)
                    continue
                if char in _MUST_ESCAPE:
                    raise ValueError(f"{spec.field}: character {char!r} must be escaped")
                buffer += char.encode()
                if char != " ":
                    keep_up_to = len(buffer)
                position += 1
            del buffer[keep_up_to:]
            try:
                value = buffer.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError(f"{spec.field}: escaped bytes are not valid UTF-8") from exc

        result[spec.field] = _validate(spec, value)

        if position >= length:
            break
        if text[position] == "+":
            raise ValueError("multi-valued RDNs ('+') are not supported")
        position += 1  # the ','
        if position >= length:
            raise ValueError("trailing ',' in distinguished name")
    return result
