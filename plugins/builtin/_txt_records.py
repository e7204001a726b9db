"""The two shapes of cloud DNS APIs, so each built-in provider only translates calls.

* **One record per value** (Cloudflare, DigitalOcean, Hetzner): every TXT value at a name is its own record
  with its own id. :class:`PerValueTxtProvider`: present creates a record unless one with the value exists;
  cleanup deletes every record holding the value.
* **One record set per name** (Route53, Google Cloud DNS, Azure DNS): all TXT values at a name live in one
  set that is replaced as a whole. :class:`TxtRecordSetProvider`: read the set, add or remove the value, write
  the set back (or delete it when it became empty). Where the API can make the write conditional (Azure's
  ETag, Google's deletion of the exact old set) a lost race is retried instead of dropping a value another
  order just added.

Both find zones the same way: walk up the name asking the API whether each suffix is a zone in the account
(the way certbot's ``dns_common`` guesses base domains), so the deepest delegated zone wins and nothing is
downloaded from outside (no public suffix list).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from scaivault_pki.plugins.api import DnsProvider, DnsProviderError

__all__ = [
    "CloudDnsProvider",
    "PerValueTxtProvider",
    "RecordSetConflict",
    "TxtRecordSet",
    "TxtRecordSetProvider",
    "quote_txt",
    "relative_name",
    "txt_chunks",
    "unquote_txt",
    "zone_candidates",
]

#: RFC 1035 caps one character-string at 255 octets; longer TXT values are split into several.
_MAX_CHARACTER_STRING = 255


def txt_chunks(value: str) -> list[str]:
    """``value`` cut into RFC 1035 character-strings (255 characters each; ACME values are ASCII)."""
    return [value[i : i + _MAX_CHARACTER_STRING] for i in range(0, len(value), _MAX_CHARACTER_STRING)] or [""]


def quote_txt(value: str) -> str:
    """TXT rdata in presentation form: ``abc`` -> ``"abc"`` (longer values as several strings, quotes escaped)."""
    return " ".join('"' + chunk.replace("\\", "\\\\").replace('"', '\\"') + '"' for chunk in txt_chunks(value))


def unquote_txt(rdata: str) -> str:
    """The value of TXT rdata in presentation form: ``"ab" "c"`` -> ``abc``; unquoted text comes back as is.

    APIs disagree on whether they return TXT content quoted (Route53 and Google always do, Cloudflare and
    Hetzner sometimes), so values are always compared unquoted.
    """
    text = rdata.strip()
    if not text.startswith('"'):
        return text
    parts: list[str] = []
    current: list[str] | None = None
    escaped = False
    for char in text:
        if current is None:
            if char == '"':
                current = []
            continue  # whitespace between character-strings
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            parts.append("".join(current))
            current = None
        else:
            current.append(char)
    if current is not None:  # unbalanced quote: not presentation form after all
        return text
    return "".join(parts)


def zone_candidates(fqdn: str) -> list[str]:
    """``fqdn`` and each of its parent names, deepest first (``a.b.example.com``, ``b.example.com``, ...)."""
    labels = fqdn.rstrip(".").lower().split(".")
    return [".".join(labels[i:]) for i in range(len(labels))]


def relative_name(fqdn: str, zone: str) -> str:
    """``fqdn`` relative to ``zone`` (``_acme-challenge.www``), or ``@`` for the apex."""
    name = fqdn.rstrip(".").lower()
    apex = zone.rstrip(".").lower()
    if name == apex:
        return "@"
    if not name.endswith("." + apex):
        raise DnsProviderError(f"{fqdn} is not inside the zone {zone}")
    return name[: -len(apex) - 1]


class CloudDnsProvider(DnsProvider):
    """A provider whose API knows the account's zones by some id.

    Subclasses implement :meth:`lookup_zone`; this class caches ids and walks up names to find zones.
    """

    #: The smallest TTL the provider accepts; smaller requests are raised to it rather than refused.
    min_ttl: ClassVar[int] = 1

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self._zone_ids: dict[str, Any] = {}
        self._zone_of: dict[str, str] = {}  # fqdn -> zone found for it, so cleanup does not walk again

    @abc.abstractmethod
    def lookup_zone(self, name: str) -> Any | None:
        """The API's id of the zone called ``name`` in this account, or ``None`` when there is none."""

    def zone_id(self, zone: str) -> Any:
        """The id of ``zone`` (cached); :class:`DnsProviderError` when the account has no such zone."""
        zone = zone.rstrip(".").lower()
        if zone not in self._zone_ids:
            zone_id = self.lookup_zone(zone)
            if zone_id is None:
                raise DnsProviderError(f"{self.type_name}: the account has no zone {zone}")
            self._zone_ids[zone] = zone_id
        return self._zone_ids[zone]

    def find_zone(self, fqdn: str) -> str:
        """The deepest zone in the account that holds ``fqdn``."""
        name = fqdn.rstrip(".").lower()
        if name in self._zone_of:
            return self._zone_of[name]
        for candidate in zone_candidates(name):
            zone_id = self._zone_ids.get(candidate)
            if zone_id is None:
                zone_id = self.lookup_zone(candidate)
            if zone_id is not None:
                self._zone_ids[candidate] = zone_id
                self._zone_of[name] = candidate
                return candidate
        raise DnsProviderError(f"{self.type_name}: no zone in the account holds {fqdn}")

    def zone_for(self, zone: str | None, fqdn: str) -> str:
        """The zone the caller named, or the one :meth:`find_zone` finds for ``fqdn``."""
        return zone.rstrip(".").lower() if zone else self.find_zone(fqdn)


class PerValueTxtProvider(CloudDnsProvider):
    """An API that keeps one record per TXT value (see the module docstring)."""

    @abc.abstractmethod
    def record_ids(self, zone: str, fqdn: str, value: str) -> list[Any]:
        """Ids of the TXT records at ``fqdn`` whose value is ``value`` (compare with :func:`unquote_txt`)."""

    @abc.abstractmethod
    def create_record(self, zone: str, fqdn: str, value: str, ttl: int) -> None:
        """Create one TXT record ``fqdn`` = ``value``."""

    @abc.abstractmethod
    def delete_record(self, zone: str, record_id: Any) -> None:
        """Delete the record ``record_id``; a record already gone is success."""

    def present(self, zone: str | None, fqdn: str, value: str, ttl: int) -> None:
        """Create the record unless one with this value is already there."""
        zone = self.zone_for(zone, fqdn)
        if not self.record_ids(zone, fqdn, value):
            self.create_record(zone, fqdn, value, max(ttl, self.min_ttl))

    def cleanup(self, zone: str | None, fqdn: str, value: str) -> None:
        """Delete every record holding this value (normally one; more if someone created duplicates)."""
        zone = self.zone_for(zone, fqdn)
        for record_id in self.record_ids(zone, fqdn, value):
            self.delete_record(zone, record_id)


@dataclass(frozen=True)
class TxtRecordSet:
    """The TXT record set at a name: unquoted values, TTL, and whatever the API needs to write conditionally."""

    values: tuple[str, ...]
    ttl: int
    version: Any = None


class RecordSetConflict(Exception):
    """A conditional write found the set changed since it was read; read it again and retry."""


class TxtRecordSetProvider(CloudDnsProvider):
    """An API that keeps all TXT values of a name in one record set (see the module docstring)."""

    #: Read-modify-write rounds before giving up on a set that keeps changing under us.
    max_attempts: ClassVar[int] = 4

    @abc.abstractmethod
    def read_set(self, zone: str, fqdn: str) -> TxtRecordSet | None:
        """The TXT set at ``fqdn``, or ``None`` when there is none."""

    @abc.abstractmethod
    def write_set(self, zone: str, fqdn: str, values: tuple[str, ...], ttl: int, old: TxtRecordSet | None) -> None:
        """Replace the set ``old`` (``None``: there was none) by one holding exactly ``values``.

        Raise :class:`RecordSetConflict` when the API reports that ``old`` is no longer current.
        """

    @abc.abstractmethod
    def delete_set(self, zone: str, fqdn: str, old: TxtRecordSet) -> None:
        """Delete the set ``old``; gone already is success, changed meanwhile is :class:`RecordSetConflict`."""

    def present(self, zone: str | None, fqdn: str, value: str, ttl: int) -> None:
        """Add ``value`` to the set at ``fqdn`` (creating the set), keeping the values already there."""
        zone = self.zone_for(zone, fqdn)
        for _ in range(self.max_attempts):
            old = self.read_set(zone, fqdn)
            if old is not None and value in old.values:
                return
            values = (*(old.values if old else ()), value)
            try:
                self.write_set(zone, fqdn, values, max(ttl, self.min_ttl), old)
                return
            except RecordSetConflict:
                continue
        raise self._gave_up(fqdn)

    def cleanup(self, zone: str | None, fqdn: str, value: str) -> None:
        """Remove ``value`` from the set at ``fqdn``; delete the set when nothing else is left."""
        zone = self.zone_for(zone, fqdn)
        for _ in range(self.max_attempts):
            old = self.read_set(zone, fqdn)
            if old is None or value not in old.values:
                return
            remaining = tuple(v for v in old.values if v != value)
            try:
                if remaining:
                    self.write_set(zone, fqdn, remaining, old.ttl, old)
                else:
                    self.delete_set(zone, fqdn, old)
                return
            except RecordSetConflict:
                continue
        raise self._gave_up(fqdn)

    def _gave_up(self, fqdn: str) -> DnsProviderError:
        return DnsProviderError(
            f"{self.type_name}: the TXT set at {fqdn} kept changing during the update; "
            f"gave up after {self.max_attempts} attempts"
        )
