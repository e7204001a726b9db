"""Issuance policy of a role: which names, IP addresses, URIs, lifetimes and keys a certificate may have.

This module is pure: no HTTP, database or HSM.  The daemon builds a :class:`RolePolicy` from a role's
settings and asks it about each request; the answers are either a normalised result or one of two errors:

* :class:`InvalidName` (a ``ValueError``): the input is syntactically impossible, whatever the role says
  (an empty name, whitespace in a DNS name, ``"010.0.0.1"``, a relative URI).  The daemon answers 400.
* :class:`PolicyViolation`: the input is well-formed but this role refuses it; ``rule`` names the role
  field that refused it, so an operator knows which setting would change the answer.  The daemon answers 422.

The matching rules are written up for users in ``docs/name-matching.md``; keep the two in step.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final

import idna

from ..durations import format_duration, parse_duration

__all__ = [
    "DEFAULT_KEY_BITS",
    "LOCALHOST_NAMES",
    "MAX_COMMON_NAME_LENGTH",
    "MAX_DNS_NAME_LENGTH",
    "MAX_SANS",
    "InvalidName",
    "NameDecision",
    "PolicyViolation",
    "RolePolicy",
]

#: RFC 5280 Appendix A.1 ub-common-name.
MAX_COMMON_NAME_LENGTH: Final = 64
#: RFC 1035 2.3.4: 255 octets on the wire is 253 characters in text form without the trailing dot.
MAX_DNS_NAME_LENGTH: Final = 253
#: RFC 1035 2.3.4 label limit; part of the hostname rules (enforce_hostnames).
MAX_LABEL_LENGTH: Final = 63
#: Upper bound on SANs per certificate.  Far above any real service, low enough that a request cannot make
#: issuance (and every relying party's name matching) expensive.
MAX_SANS: Final = 100

#: The names ``allow_localhost`` permits outright.
LOCALHOST_NAMES: Final = ("localhost", "localhost.localdomain")

#: Key sizes a role may name, per key type; the first is the default (``key_bits: 0``).  They are the sizes
#: the HSM layer generates for CAs too (RSA 2048/3072/4096, P-256/P-384).
_KEY_BITS: Final[dict[str, tuple[int, ...]]] = {"rsa": (2048, 3072, 4096), "ec": (256, 384)}
#: What ``key_bits: 0`` means for each generating key type.
DEFAULT_KEY_BITS: Final[dict[str, int]] = {kind: sizes[0] for kind, sizes in _KEY_BITS.items()}
_KEY_TYPES: Final = ("rsa", "ec", "any")
#: A role with ``key_type: any`` still refuses weak CSR keys: RSA below this, or an EC curve not listed.
_ANY_MIN_RSA_BITS: Final = 2048
_ANY_EC_BITS: Final = (256, 384)

_BOOL_FIELDS: Final = (
    "allow_bare_domains",
    "allow_subdomains",
    "allow_glob_domains",
    "allow_wildcard_certificates",
    "allow_localhost",
    "allow_any_name",
    "enforce_hostnames",
    "allow_ip_sans",
    "require_cn",
)
_DOMAIN_FLAGS: Final = ("allow_bare_domains", "allow_subdomains", "allow_glob_domains")
_LDH: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")
_URI_SCHEME_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class InvalidName(ValueError):
    """A name, address, URI or value that is syntactically impossible: the daemon answers 400.

    ``field`` is the request field it came from (``common_name``, ``alt_names``, ``ip_sans``,
    ``uri_sans``, ``ttl``, ``key_bits``), ``value`` the offending input and ``message`` a sentence
    naming it (without the field prefix; the daemon adds that).
    """

    def __init__(self, field: str, value: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.value = value
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        # The default would re-create the exception from ``args`` (the message only).
        return (type(self), (self.field, self.value, self.message))


class PolicyViolation(Exception):
    """A well-formed request that the role refuses: the daemon answers 422.

    ``rule`` is the role field that refused it (``allowed_domains``, ``allow_subdomains``,
    ``enforce_hostnames``, ``max_ttl``, ...), ``value`` the name, address, URI, TTL or key refused,
    and ``message`` a sentence naming both.
    """

    def __init__(self, rule: str, value: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.value = value
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.rule, self.value, self.message))


@dataclass(frozen=True)
class NameDecision:
    """The names a certificate will carry, normalised, after the role accepted all of them."""

    #: The subject CN: A-label form when it is a DNS name, as given when it is an IP literal or free text.
    common_name: str | None
    #: DNS SANs in A-label form, deduplicated, request order kept, a DNS-name CN first.
    dns_names: tuple[str, ...]
    #: IP SANs in ``ipaddress`` text form: CN first, then alt_names, then ip_sans.
    ip_addresses: tuple[str, ...]
    uris: tuple[str, ...]


class _Unparsable(Exception):
    """Internal: why a text is not a DNS name / IP address; callers decide between 400 and 422."""


# --- Syntax: DNS names ---------------------------------------------------------------------------------


def _check_printable(text: str) -> None:
    # Whitespace and control characters are never part of a DNS name, IP address or URI, and they make
    # logs and certificate viewers lie about what was issued.
    for char in text:
        if char.isspace():
            raise _Unparsable("contains whitespace")
        if unicodedata.category(char) == "Cc":
            raise _Unparsable("contains a control character")


def _to_a_labels(text: str, *, pattern: bool = False) -> str:
    """Normalise a DNS name (or an allowed_domains pattern) to lower-case A-label form.

    One trailing dot is dropped; UTS 46 mapping (IDNA 2008, non-transitional) lower-cases and maps
    full-width characters and dots; each non-ASCII label becomes its ``xn--`` A-label; ASCII labels
    starting ``xn--`` must be canonical A-labels.  ASCII labels are otherwise left alone: whether they
    are LDH is the hostname rule's business (``enforce_hostnames``), not syntax.
    """
    if text == "":
        raise _Unparsable("is empty")
    _check_printable(text)
    try:
        # std3_rules=False: '_' and '*' must survive the mapping; the hostname rules judge them later.
        mapped = idna.uts46_remap(text, std3_rules=False)
    except (idna.IDNAError, UnicodeError, IndexError) as exc:
        raise _Unparsable(f"cannot be mapped for IDNA ({exc})") from None
    # The mapping can produce what the raw check did not see (U+FF20 becomes '@', U+3002 becomes '.').
    _check_printable(mapped)
    if "@" in mapped:
        raise _Unparsable("contains '@'")
    if mapped.endswith("."):
        mapped = mapped[:-1]
    if mapped == "":
        raise _Unparsable("is empty")
    labels: list[str] = []
    for label in mapped.split("."):
        if label == "":
            raise _Unparsable("has an empty label")
        if label.isascii():
            if label.startswith("xn--"):
                _check_a_label(label)
            labels.append(label)
            continue
        if "*" in label:
            raise _Unparsable(
                f"label {label!r} mixes '*' with non-ASCII characters, which IDNA cannot encode"
            )
        try:
            idna.check_label(label)
        except (idna.IDNAError, UnicodeError) as exc:
            raise _Unparsable(f"label {label!r} is not a valid IDNA 2008 label ({exc})") from None
        labels.append("xn--" + label.encode("punycode").decode("ascii"))
    name = ".".join(labels)
    if len(name) > MAX_DNS_NAME_LENGTH:
        raise _Unparsable(
            f"is {len(name)} characters long in A-label form; the limit is {MAX_DNS_NAME_LENGTH}"
        )
    if not pattern and labels[-1].isdigit():
        # An all-numeric last label is how IPv4 literals look (RFC 3696 2 rules out numeric TLDs), and
        # resolvers and URL parsers read such names as addresses: never issue them as DNS names.
        raise _Unparsable(
            "ends in an all-numeric label, so it is not a DNS name; give IP addresses as IP SANs"
        )
    return name


def _check_a_label(label: str) -> None:
    # An "xn--" label that is not the exact encoding of a valid U-label would be displayed as something
    # other than what was checked; RFC 5891 5.4 requires A-labels to round-trip.
    try:
        unicode_label = idna.ulabel(label)
        canonical = "xn--" + unicode_label.encode("punycode").decode("ascii")
    except (idna.IDNAError, UnicodeError) as exc:
        raise _Unparsable(f"label {label!r} is not a valid A-label ({exc})") from None
    if unicode_label.isascii() or canonical != label:
        raise _Unparsable(f"label {label!r} is not a canonical A-label")


def _wildcard_form(name: str) -> str:
    """``"none"``, ``"valid"`` (the whole left-most label is ``*``, with a parent) or ``"partial"``."""
    if "*" not in name:
        return "none"
    first, _, rest = name.partition(".")
    if first == "*" and rest and "*" not in rest:
        return "valid"
    return "partial"


_PARTIAL_WILDCARD: Final = (
    "'*' may only be the whole left-most label of a name with a parent domain (like '*.example.com'); "
    "partial, nested and bare wildcards are never issued"
)


def _hostname_problem(name: str) -> str | None:
    """Why a normalised name is not a valid hostname (RFC 1123 LDH labels), or None if it is one."""
    labels = name.split(".")
    form = _wildcard_form(name)
    if form == "partial":
        return _PARTIAL_WILDCARD
    if form == "valid":
        labels = labels[1:]
    for label in labels:
        if len(label) > MAX_LABEL_LENGTH:
            return f"label {label[:16]!r}... is {len(label)} characters long; the limit is {MAX_LABEL_LENGTH}"
        if not set(label) <= _LDH:
            return f"label {label!r} may only contain letters, digits and '-'"
        if label.startswith("-") or label.endswith("-"):
            return f"label {label!r} starts or ends with '-'"
    return None


# --- Syntax: IP addresses and URIs ---------------------------------------------------------------------


def _looks_like_ip(text: str) -> bool:
    """Whether a name is meant as an IP literal (then it must parse as one, never fall back to DNS).

    A ':' cannot be in a DNS name, and an all-numeric last label is an IPv4 shape (``127.1``, ``1.2.3``,
    ``010.0.0.1``).  Text with whitespace is a free-form CN, never an address.
    """
    if any(char.isspace() for char in text):
        return False
    if ":" in text:
        return True
    core = text.split("/", 1)[0].split("%", 1)[0]
    if core.endswith("."):
        core = core[:-1]
    last = core.rsplit(".", 1)[-1]
    return last.isascii() and last.isdigit()


def _parse_ip(text: str) -> str:
    """Parse one IPv4/IPv6 address and return its ``ipaddress`` text form."""
    if text == "":
        raise _Unparsable("is empty")
    _check_printable(text)
    if "/" in text:
        raise _Unparsable("is CIDR notation; an IP SAN is a single address")
    if "%" in text:
        # ipaddress accepts "fe80::1%eth0", but a zone id is local to one host and cannot be encoded.
        raise _Unparsable("has a zone identifier, which a certificate cannot carry")
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise _Unparsable(
            "is not a valid IP address (IPv4 as four decimal octets without leading zeros, or IPv6)"
        ) from None
    return str(address)


def _check_uri(uri: str) -> None:
    if uri == "":
        raise _Unparsable("is empty")
    if not uri.isascii():
        # A URI SAN is an IA5String (RFC 5280 4.2.1.6): percent-encode, and use A-labels for hosts.
        raise _Unparsable(
            "contains non-ASCII characters; percent-encode them and use A-labels for host names"
        )
    _check_printable(uri)
    scheme, colon, rest = uri.partition(":")
    if (
        not colon
        or not scheme
        or not scheme[0].isalpha()
        or not set(scheme) <= _URI_SCHEME_CHARS
        or not rest
    ):
        raise _Unparsable("is not an absolute URI with a scheme (like 'spiffe://example.org/service')")


# --- Matching ------------------------------------------------------------------------------------------


def _glob_match(pattern: str, text: str, *, min_star: int) -> bool:
    """Match ``text`` against ``pattern`` where each ``*`` stands for at least ``min_star`` characters
    (dots and slashes included) and every other character is literal.

    Greedy left-most placement of the literal pieces is exact for '*'-only globs and runs in linear
    passes of ``str.find``, so neither a long URI nor a pattern full of stars can make it backtrack.
    """
    head, *rest = pattern.split("*")
    if not rest:
        return pattern == text
    *middle, tail = rest
    if not text.startswith(head):
        return False
    position = len(head)
    for piece in middle:
        found = text.find(piece, position + min_star)
        if found < 0:
            return False
        position = found + len(piece)
    return len(text) - len(tail) - position >= min_star and text.endswith(tail)


def _shown(raw: str, normalised: str) -> str:
    # Messages name what the client sent, and what it became when normalisation changed it.
    return repr(raw) if raw == normalised else f"{raw!r} ({normalised})"


# --- Parsed request entries ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    """One name of the request after syntax checks, waiting for the role's verdict."""

    # "dns", "ip", "uri", "text" (a free-form CN) or "hostname_error" (a CN that cannot be a hostname,
    # refused when the rules run because enforce_hostnames is on)
    kind: str
    value: str  # normalised form (A-label name, ipaddress text, URI as given)
    raw: str
    detail: str = ""  # for "hostname_error": why


def _string_list(field_name: str, values: object) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise InvalidName(field_name, str(values), "must be a list of strings")
    items = list(values)
    for item in items:
        if not isinstance(item, str):
            raise InvalidName(field_name, repr(item), f"{item!r} is not a string")
    return items


# --- The role ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RolePolicy:
    """A role's issuance rules (HashiCorp Vault PKI role semantics, see docs/name-matching.md).

    Construction validates and normalises: ``allowed_domains`` become lower-case A-labels without a
    trailing dot, ``allowed_ip_sans_cidr`` canonical network text, duplicates dropped.  Invalid settings
    raise ``ValueError`` whose message starts with the field name.
    """

    allowed_domains: tuple[str, ...] = ()
    allow_bare_domains: bool = False
    allow_subdomains: bool = False
    allow_glob_domains: bool = False
    allow_wildcard_certificates: bool = True
    allow_localhost: bool = True
    allow_any_name: bool = False
    enforce_hostnames: bool = True
    allow_ip_sans: bool = True
    #: Empty: any address (when allow_ip_sans).
    allowed_ip_sans_cidr: tuple[str, ...] = ()
    #: Glob patterns; empty: no URI SANs at all.
    allowed_uri_sans: tuple[str, ...] = ()
    require_cn: bool = True
    #: Default lifetime when the request names none; None: max_ttl.
    ttl: timedelta | None = None
    max_ttl: timedelta = timedelta(days=30)
    #: "rsa" | "ec" | "any" ("any" can only sign CSRs).
    key_type: str = "rsa"
    #: 0: the default for the type (rsa 2048, ec 256).
    key_bits: int = 0
    # Parsed allowed_ip_sans_cidr, kept so checks do not re-parse on every request.
    _networks: tuple[IPNetwork, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in _BOOL_FIELDS:
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}: must be true or false, got {getattr(self, name)!r}")
        set_field = object.__setattr__  # frozen: normalised values are written once, here
        set_field(self, "allowed_domains", self._normalised_domains())
        networks = self._parsed_networks()
        set_field(self, "_networks", networks)
        set_field(self, "allowed_ip_sans_cidr", tuple(str(network) for network in networks))
        set_field(self, "allowed_uri_sans", self._normalised_uri_patterns())
        self._validate_ttls()
        self._validate_key()

    def _normalised_domains(self) -> tuple[str, ...]:
        patterns: list[str] = []
        for raw in _config_strings("allowed_domains", self.allowed_domains):
            if "*" in raw and not self.allow_glob_domains:
                raise ValueError(
                    f"allowed_domains: {raw!r} contains '*' but allow_glob_domains is off "
                    "(without it a pattern is a plain domain)"
                )
            if _looks_like_ip(raw):
                raise ValueError(
                    f"allowed_domains: {raw!r} looks like an IP address (its last label is numeric); "
                    "use allowed_ip_sans_cidr for addresses"
                )
            try:
                pattern = _to_a_labels(raw, pattern=True)
            except _Unparsable as exc:
                raise ValueError(f"allowed_domains: {raw!r} {exc}") from None
            if pattern not in patterns:
                patterns.append(pattern)
        return tuple(patterns)

    def _parsed_networks(self) -> tuple[IPNetwork, ...]:
        networks: list[IPNetwork] = []
        for raw in _config_strings("allowed_ip_sans_cidr", self.allowed_ip_sans_cidr):
            if "%" in raw or any(char.isspace() for char in raw):
                raise ValueError(f"allowed_ip_sans_cidr: {raw!r} is not a CIDR block")
            try:
                network = ipaddress.ip_network(raw, strict=True)
            except ValueError as exc:
                # Host bits set ("10.0.0.1/8") is almost always a typo for a different block: refuse it
                # rather than silently widen or narrow what the operator wrote.
                loose = _loose_network(raw)
                hint = f"; did you mean {str(loose)!r}?" if loose is not None else ""
                raise ValueError(f"allowed_ip_sans_cidr: {raw!r} is not a CIDR block ({exc}){hint}") from None
            if network not in networks:
                networks.append(network)
        return tuple(networks)

    def _normalised_uri_patterns(self) -> tuple[str, ...]:
        patterns: list[str] = []
        for raw in _config_strings("allowed_uri_sans", self.allowed_uri_sans):
            if raw == "" or not raw.isascii():
                raise ValueError(f"allowed_uri_sans: {raw!r} must be a non-empty ASCII pattern")
            try:
                _check_printable(raw)
            except _Unparsable as exc:
                raise ValueError(f"allowed_uri_sans: {raw!r} {exc}") from None
            if raw not in patterns:
                patterns.append(raw)
        return tuple(patterns)

    def _validate_ttls(self) -> None:
        if not isinstance(self.max_ttl, timedelta) or self.max_ttl <= timedelta(0):
            raise ValueError(f"max_ttl: must be a positive duration, got {self.max_ttl!r}")
        if self.ttl is None:
            return
        if not isinstance(self.ttl, timedelta) or self.ttl <= timedelta(0):
            raise ValueError(f"ttl: must be a positive duration or null, got {self.ttl!r}")
        if self.ttl > self.max_ttl:
            raise ValueError(
                f"ttl: {format_duration(self.ttl)} is longer than max_ttl {format_duration(self.max_ttl)}"
            )

    def _validate_key(self) -> None:
        if self.key_type not in _KEY_TYPES:
            raise ValueError(f"key_type: must be one of {', '.join(_KEY_TYPES)}, got {self.key_type!r}")
        if not isinstance(self.key_bits, int) or isinstance(self.key_bits, bool):
            raise ValueError(f"key_bits: must be an integer, got {self.key_bits!r}")
        if self.key_type == "any":
            if self.key_bits != 0:
                # "any" accepts both RSA and EC CSRs; one number cannot describe both minimums.
                raise ValueError(
                    "key_bits: must be 0 with key_type 'any' (it accepts RSA >= 2048 and EC 256/384)"
                )
            return
        sizes = _KEY_BITS[self.key_type]
        if self.key_bits != 0 and self.key_bits not in sizes:
            choices = ", ".join(str(size) for size in sizes)
            raise ValueError(
                f"key_bits: {self.key_bits} is not a size for key_type {self.key_type!r}; "
                f"use {choices}, or 0 for {sizes[0]}"
            )

    @classmethod
    def from_mapping(cls, fields: Mapping[str, Any]) -> RolePolicy:
        """Build a policy from role settings (a JSON-like mapping), validating every field.

        Lists become tuples; ``ttl``/``max_ttl`` may be ``timedelta``, a duration string (``"90d"``)
        or integer seconds; ``ttl`` may be None.  Unknown fields are refused.  Raises ``ValueError``
        whose message starts with the field name (``"allowed_domains: ..."``).
        """
        if not isinstance(fields, Mapping):
            raise ValueError(f"role: settings must be a mapping, got {type(fields).__name__}")
        known = [f.name for f in dataclasses.fields(cls) if f.init]
        kwargs: dict[str, Any] = {}
        for key, value in fields.items():
            if key not in known:
                raise ValueError(f"{key}: unknown role field; expected one of {', '.join(known)}")
            if key in ("ttl", "max_ttl"):
                value = _config_duration(key, value)
            elif key in ("allowed_domains", "allowed_ip_sans_cidr", "allowed_uri_sans"):
                value = _config_strings(key, value)
            kwargs[key] = value
        return cls(**kwargs)

    # --- Names ---------------------------------------------------------------------------------------

    def check_names(
        self,
        common_name: str | None,
        alt_names: Sequence[str] = (),
        ip_sans: Sequence[str] = (),
        uri_sans: Sequence[str] = (),
    ) -> NameDecision:
        """Decide the names of a certificate, or raise :class:`InvalidName` / :class:`PolicyViolation`.

        ``alt_names`` are DNS names; an IP literal there is an IP SAN, an email address is refused
        (not supported yet).  Every input is syntax-checked before any rule is applied, so a request
        with both a malformed and a refused name gets the 400.  Rules are then applied in request
        order: the CN, alt_names, ip_sans, uri_sans; the first refusal is raised.
        """
        alt_list = _string_list("alt_names", alt_names)
        ip_list = _string_list("ip_sans", ip_sans)
        uri_list = _string_list("uri_sans", uri_sans)
        # Counted as given and before any parsing, so an oversized request costs nothing.
        total = 0
        for field_name, items in (("alt_names", alt_list), ("ip_sans", ip_list), ("uri_sans", uri_list)):
            total += len(items)
            if total > MAX_SANS:
                raise InvalidName(
                    field_name, f"{total} names", f"a request may list at most {MAX_SANS} SANs in total"
                )

        cn_entry = self._parse_common_name(common_name)
        entries: list[_Entry] = [] if cn_entry is None else [cn_entry]
        entries += [self._parse_alt_name(raw) for raw in alt_list]
        entries += [_Entry("ip", _ip_or_invalid("ip_sans", raw), raw) for raw in ip_list]
        for raw in uri_list:
            try:
                _check_uri(raw)
            except _Unparsable as exc:
                raise InvalidName("uri_sans", raw, f"{raw!r} {exc}") from None
            entries.append(_Entry("uri", raw, raw))
        names_nothing = cn_entry is None and not alt_list and not ip_list and not uri_list
        if names_nothing and not self.require_cn:
            # RFC 5280 4.1.2.6: an empty subject needs a SAN; no role can make such a certificate valid.
            raise InvalidName("common_name", "", "the request names nothing: give a common_name or a SAN")

        if cn_entry is None and self.require_cn:
            raise PolicyViolation("require_cn", "", "a common_name is required by require_cn")
        for entry in entries:
            self._check_entry(entry)

        subject_cn: str | None = None
        if cn_entry is not None:
            subject_cn = cn_entry.value if cn_entry.kind == "dns" else cn_entry.raw
        decision = NameDecision(
            common_name=subject_cn,
            dns_names=_unique(e.value for e in entries if e.kind == "dns"),
            ip_addresses=_unique(e.value for e in entries if e.kind == "ip"),
            uris=_unique(e.value for e in entries if e.kind == "uri"),
        )
        count = len(decision.dns_names) + len(decision.ip_addresses) + len(decision.uris)
        if count > MAX_SANS:
            raise InvalidName(
                "common_name",
                common_name or "",
                f"with the common_name the certificate would carry {count} SANs; the limit is {MAX_SANS}",
            )
        return decision

    def _parse_common_name(self, common_name: str | None) -> _Entry | None:
        """Classify the CN: an IP literal, a DNS name, or (only with enforce_hostnames off) free text."""
        if common_name is None or common_name == "":
            return None
        if not isinstance(common_name, str):
            raise InvalidName("common_name", repr(common_name), "must be a string")
        if common_name.strip() == "":
            raise InvalidName("common_name", common_name, "must not be blank")
        if common_name.strip() != common_name:
            raise InvalidName(
                "common_name", common_name, f"{common_name!r} has leading or trailing whitespace"
            )
        if any(unicodedata.category(char) == "Cc" for char in common_name):
            raise InvalidName("common_name", common_name, f"{common_name!r} contains a control character")
        if "@" in common_name:
            raise InvalidName(
                "common_name",
                common_name,
                f"{common_name!r} looks like an email address; email certificates are not supported yet",
            )
        if _looks_like_ip(common_name):
            _check_cn_length(common_name, common_name)
            return _Entry("ip", _ip_or_invalid("common_name", common_name), common_name)
        try:
            name = _to_a_labels(common_name)
        except _Unparsable as exc:
            _check_cn_length(common_name, common_name)
            if self.enforce_hostnames:
                # With enforce_hostnames off this CN would be accepted as free text, so the role refuses
                # it (422) rather than the syntax (400).
                return _Entry("hostname_error", common_name, common_name, str(exc))
            # Free text ("My Service"): it cannot be a DNS name, so it is neither a SAN nor domain-checked.
            # Anything that *could* be a DNS name took the branch above and is checked like one, so a
            # free-form CN can never smuggle a hostname past allowed_domains.
            return _Entry("text", common_name, common_name)
        _check_cn_length(common_name, name)
        if _wildcard_form(name) == "partial" and not self.enforce_hostnames:
            raise InvalidName("common_name", common_name, f"{_shown(common_name, name)}: {_PARTIAL_WILDCARD}")
        return _Entry("dns", name, common_name)

    def _parse_alt_name(self, raw: str) -> _Entry:
        if raw == "":
            raise InvalidName("alt_names", raw, "an alt_names entry is empty")
        if "@" in raw:
            raise InvalidName(
                "alt_names", raw, f"{raw!r} looks like an email address; email SANs are not supported yet"
            )
        if _looks_like_ip(raw):
            # Vault puts IP literals given as alt_names into IP SANs; they then obey the IP rules.
            return _Entry("ip", _ip_or_invalid("alt_names", raw), raw)
        try:
            name = _to_a_labels(raw)
        except _Unparsable as exc:
            raise InvalidName("alt_names", raw, f"{raw!r} {exc}") from None
        if _wildcard_form(name) == "partial" and not self.enforce_hostnames:
            # No role setting can allow a partial wildcard, so with the hostname rule off it is a 400.
            raise InvalidName("alt_names", raw, f"{_shown(raw, name)}: {_PARTIAL_WILDCARD}")
        return _Entry("dns", name, raw)

    def _check_entry(self, entry: _Entry) -> None:
        if entry.kind == "hostname_error":
            raise PolicyViolation(
                "enforce_hostnames",
                entry.value,
                f"{entry.raw!r} is not a hostname ({entry.detail}), and enforce_hostnames is on",
            )
        if entry.kind == "dns":
            self._check_dns_name(entry.value, entry.raw)
        elif entry.kind == "ip":
            self._check_ip(entry.value, entry.raw)
        elif entry.kind == "uri":
            self._check_uri_allowed(entry.value)

    def _check_dns_name(self, name: str, raw: str) -> None:
        shown = _shown(raw, name)
        if self.enforce_hostnames:
            problem = _hostname_problem(name)
            if problem is not None:
                raise PolicyViolation(
                    "enforce_hostnames",
                    name,
                    f"{shown} is not a valid hostname: {problem} (enforce_hostnames)",
                )
        wildcard = _wildcard_form(name) == "valid"
        if wildcard and not self.allow_wildcard_certificates:
            raise PolicyViolation(
                "allow_wildcard_certificates",
                name,
                f"{shown} is a wildcard name, and the role has allow_wildcard_certificates off",
            )
        if self._name_allowed(name, wildcard):
            return
        raise self._domain_refusal(name, shown, wildcard)

    def _name_allowed(self, name: str, wildcard: bool) -> bool:
        """Whether allowed_domains (or allow_localhost / allow_any_name) permit a normalised name.

        A wildcard ``*.D`` is permitted exactly when every name ``x.D`` would be: by allow_subdomains
        under an allowed domain, or by a glob matching the literal text ``*.D`` (a glob '*' that covers
        the literal '*' covers any label in its place).
        """
        if self.allow_any_name:
            return True
        if self.allow_localhost:
            if not wildcard and name in LOCALHOST_NAMES:
                return True
            if self.allow_subdomains and name.endswith(".localhost"):
                return True
        for domain in self.allowed_domains:
            if "*" in domain:
                # Patterns with '*' are globs only (Vault: glob matching needs a '*' in the pattern).
                if self.allow_glob_domains and _glob_match(domain, name, min_star=1):
                    return True
                continue
            if self.allow_bare_domains and name == domain:
                return True
            if self.allow_subdomains and name.endswith("." + domain):
                return True
        return False

    def _domain_refusal(self, name: str, shown: str, wildcard: bool) -> PolicyViolation:
        """The refusal for a DNS name nothing allowed: always rule ``allowed_domains``.

        The rule stays the same whichever flag is missing, so clients can rely on one value; the message
        lists the allowed domains and the flags that are on, and says which flag would have allowed
        the name when exactly one would.
        """
        flags = [flag for flag in _DOMAIN_FLAGS if getattr(self, flag)]
        if not self.allowed_domains:
            how = "which is empty"
        elif flags:
            how = f"{list(self.allowed_domains)} with {' and '.join(flags)}"
        else:
            how = f"{list(self.allowed_domains)}, but {', '.join(_DOMAIN_FLAGS)} are all off"
        message = f"{shown} is not allowed by allowed_domains ({how})"
        hint = self._missing_flag_hint(name, wildcard)
        if hint:
            message += f"; {hint}"
        elif wildcard:
            message += "; a wildcard needs allow_subdomains under an allowed domain, or a matching glob"
        return PolicyViolation("allowed_domains", name, message)

    def _missing_flag_hint(self, name: str, wildcard: bool) -> str | None:
        plain = [d for d in self.allowed_domains if "*" not in d]
        if not self.allow_bare_domains and name in plain:
            return "it is an allowed domain itself, which needs allow_bare_domains"
        parent = next((d for d in plain if name.endswith("." + d)), None)
        if not self.allow_subdomains and parent is not None:
            kind = "a wildcard under" if wildcard else "under"
            return f"it is {kind} {parent!r}, which needs allow_subdomains"
        if not self.allow_localhost and (
            name in LOCALHOST_NAMES or (self.allow_subdomains and name.endswith(".localhost"))
        ):
            return "localhost names need allow_localhost"
        return None

    def _check_ip(self, address: str, raw: str) -> None:
        shown = _shown(raw, address)
        if not self.allow_ip_sans:
            raise PolicyViolation(
                "allow_ip_sans", address, f"IP address {shown} is refused: allow_ip_sans is off"
            )
        if self._networks:
            parsed = ipaddress.ip_address(address)
            # Membership is per version: an IPv4-mapped IPv6 address is not inside an IPv4 block, which
            # is what relying parties see too (they compare the 16-byte SAN against a 16-byte address).
            if not any(parsed in network for network in self._networks):
                raise PolicyViolation(
                    "allowed_ip_sans_cidr",
                    address,
                    f"IP address {shown} is outside allowed_ip_sans_cidr {list(self.allowed_ip_sans_cidr)}",
                )

    def _check_uri_allowed(self, uri: str) -> None:
        if not self.allowed_uri_sans:
            raise PolicyViolation(
                "allowed_uri_sans",
                uri,
                f"URI {uri!r} is refused: allowed_uri_sans is empty, so no URI SANs are allowed",
            )
        if not any(_glob_match(pattern, uri, min_star=0) for pattern in self.allowed_uri_sans):
            raise PolicyViolation(
                "allowed_uri_sans",
                uri,
                f"URI {uri!r} matches none of allowed_uri_sans {list(self.allowed_uri_sans)}",
            )

    # --- Lifetime and keys -----------------------------------------------------------------------------

    def check_ttl(self, requested: timedelta | None) -> timedelta:
        """The lifetime to issue: ``requested``, or the role's ttl (else max_ttl) when None.

        A request longer than max_ttl is refused (``PolicyViolation(rule="max_ttl")``), not shortened:
        a client that asked for 90 days must not silently get 30.  A non-positive TTL is InvalidName.
        """
        if requested is None:
            return self.ttl if self.ttl is not None else self.max_ttl
        if not isinstance(requested, timedelta):
            raise InvalidName("ttl", repr(requested), "must be a duration")
        if requested <= timedelta(0):
            raise InvalidName("ttl", str(requested), "must be positive")
        if requested > self.max_ttl:
            shown = format_duration(requested)
            raise PolicyViolation(
                "max_ttl",
                shown,
                f"ttl {shown} is longer than the role's max_ttl {format_duration(self.max_ttl)}",
            )
        return requested

    def check_key(self, key_type: str, key_bits: int) -> None:
        """Accept or refuse a CSR's public key (``("rsa", modulus bits)`` or ``("ec", curve bits)``).

        RSA role: an RSA key of at least the role's size (stronger is fine).  EC role: exactly the
        role's curve.  ``any``: RSA >= 2048 or EC P-256/P-384.  Refusals name ``key_type`` (wrong
        algorithm) or ``key_bits`` (wrong size).
        """
        if not isinstance(key_bits, int) or isinstance(key_bits, bool) or key_bits <= 0:
            raise InvalidName("key_bits", repr(key_bits), "must be a positive integer")
        shown = f"{key_type} {key_bits}"
        if key_type not in ("rsa", "ec"):
            raise PolicyViolation("key_type", shown, f"{key_type!r} keys are not supported; use RSA or EC")
        if self.key_type == "any":
            if key_type == "rsa" and key_bits < _ANY_MIN_RSA_BITS:
                raise PolicyViolation(
                    "key_bits",
                    shown,
                    f"RSA {key_bits}-bit key is below the minimum of {_ANY_MIN_RSA_BITS} bits",
                )
            if key_type == "ec" and key_bits not in _ANY_EC_BITS:
                raise PolicyViolation(
                    "key_bits", shown, f"EC {key_bits}-bit curve is refused; use P-256 or P-384"
                )
            return
        if key_type != self.key_type:
            raise PolicyViolation(
                "key_type",
                shown,
                f"{key_type.upper()} key refused: the role requires {self.key_type.upper()} keys",
            )
        wanted = self.key_bits or DEFAULT_KEY_BITS[self.key_type]
        if key_type == "rsa" and key_bits < wanted:
            raise PolicyViolation(
                "key_bits", shown, f"RSA {key_bits}-bit key refused: the role requires at least {wanted} bits"
            )
        if key_type == "ec" and key_bits != wanted:
            # Curves are not "stronger or weaker" interchangeably for clients: the role names one.
            raise PolicyViolation(
                "key_bits",
                shown,
                f"EC {key_bits}-bit curve refused: the role requires the {wanted}-bit curve",
            )

    def issued_key_shape(self) -> tuple[str, int]:
        """The key ``/issue`` generates: ``("rsa", 2048)``, ``("ec", 384)``, ...

        A role with key_type ``any`` names no single shape, so it cannot generate keys:
        ``PolicyViolation(rule="key_type")``.
        """
        if self.key_type == "any":
            raise PolicyViolation(
                "key_type",
                "any",
                "the role has key_type 'any', so it only signs CSRs and cannot generate a key",
            )
        return self.key_type, self.key_bits or DEFAULT_KEY_BITS[self.key_type]


# --- Helpers -------------------------------------------------------------------------------------------


def _config_strings(field_name: str, values: object) -> tuple[str, ...]:
    if isinstance(values, str) or not isinstance(values, Iterable):
        # A bare string would otherwise be taken character by character.
        raise ValueError(f"{field_name}: must be a list of strings, got {type(values).__name__}")
    result = tuple(values)
    for value in result:
        if not isinstance(value, str):
            raise ValueError(f"{field_name}: must contain only strings, got {value!r}")
    return result


def _config_duration(field_name: str, value: object) -> timedelta | None:
    if value is None and field_name == "ttl":
        return None
    if isinstance(value, timedelta):
        return value
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ValueError(f"{field_name}: {exc}") from None


def _loose_network(raw: str) -> IPNetwork | None:
    try:
        return ipaddress.ip_network(raw, strict=False)
    except ValueError:
        return None


def _ip_or_invalid(field_name: str, raw: str) -> str:
    try:
        return _parse_ip(raw)
    except _Unparsable as exc:
        raise InvalidName(field_name, raw, f"{raw!r} {exc}") from None


def _check_cn_length(raw: str, subject_form: str) -> None:
    if len(subject_form) > MAX_COMMON_NAME_LENGTH:
        extra = "" if raw == subject_form else " in A-label form"
        raise InvalidName(
            "common_name",
            raw,
            f"{raw!r} is {len(subject_form)} characters{extra}; "
            f"a subject CN holds at most {MAX_COMMON_NAME_LENGTH}",
        )


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))
