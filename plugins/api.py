"""The abstract base classes plugins implement (public plugin API).

Hooks in :mod:`scaivault_pki.plugins.spec` register *classes*; the behaviour lives here. The host owns the
workflow (validating configs, resolving secret references, waiting for propagation, answering challenges);
a DNS provider only fills in :meth:`DnsProvider.present` and :meth:`DnsProvider.cleanup`, the way certbot's
``dns_common`` plugins fill in ``_perform``/``_cleanup``.

Names passed to providers are absolute DNS names in presentation form, lower case, *without* the trailing dot
(``_acme-challenge.www.example.com``, zone ``example.com``). Providers that need the dot add it.
"""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = [
    "AcmeCaBackend",
    "CertificateEvent",
    "DnsProvider",
    "DnsProviderError",
    "PropagationTimeout",
    "SECRET_KEY_PATTERN",
    "SECRET_PATH_PATTERN",
    "SECRET_REFERENCE_SCHEMA",
    "longest_zone_match",
    "secret_or_string",
]


class DnsProviderError(Exception):
    """The provider refused a change or could not be reached.

    The message is shown to API users and written to logs, so it must never contain a secret (API token,
    TSIG key, password): say *what* failed (``"UPDATE refused by 127.0.0.1:5353: NOTAUTH"``), not with which
    credential.
    """


class PropagationTimeout(DnsProviderError):
    """The TXT value did not appear on every authoritative server before the provider's timeout."""


#: A secret's path in the tenant's secret store: ``/``-separated segments of ``[A-Za-z0-9._-]``.
SECRET_PATH_PATTERN = r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*"
#: A key inside a secret's data.
SECRET_KEY_PATTERN = r"[A-Za-z0-9._-]{1,128}"

#: JSON Schema of a secret reference: ``{"secret": "dns/cloudflare#api_token"}`` (path in the tenant's secret
#: store, ``#``, the key inside that secret's data).
SECRET_REFERENCE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "secret": {"type": "string", "pattern": f"^{SECRET_PATH_PATTERN}#{SECRET_KEY_PATTERN}$", "maxLength": 384}
    },
    "required": ["secret"],
    "additionalProperties": False,
}


#: JSON Schema of the optional ``propagation_nameservers`` config field: the servers the host checks a new TXT
#: value against instead of the zone's NS records (``"192.0.2.1"``, ``"192.0.2.1:5353"``, ``"[2001:db8::1]:53"``).
#: For hidden primaries, split horizons and test servers. Put it in a type's ``config_schema`` to offer it.
PROPAGATION_NAMESERVERS_SCHEMA: dict[str, Any] = {
    "description": "IP or IP:port of each server to check propagation against, instead of the zone's NS records",
    "type": "array", "minItems": 1, "maxItems": 16,
    "items": {"type": "string", "minLength": 2, "maxLength": 64,
              "pattern": r"^(\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?|[0-9A-Fa-f:.]+)$"},
}


#: The propagation settings every built-in DNS provider type offers in its config (merge into ``properties``):
#: ``propagation_timeout`` and ``propagation_interval`` (seconds; override the type's class defaults, applied by
#: :meth:`DnsProvider.__init__`) and ``propagation_nameservers`` (see above).
PROPAGATION_CONFIG_PROPERTIES: dict[str, Any] = {
    "propagation_timeout": {"description": "seconds to wait for every authoritative server to serve a new value",
                            "type": "number", "exclusiveMinimum": 0, "maximum": 3600},
    "propagation_interval": {"description": "seconds between two propagation checks",
                             "type": "number", "exclusiveMinimum": 0, "maximum": 600},
    "propagation_nameservers": PROPAGATION_NAMESERVERS_SCHEMA,
}


def secret_or_string(**string_schema: Any) -> dict[str, Any]:
    """JSON Schema for a secret-bearing config field: a literal string or a secret reference.

    Keyword arguments constrain the literal string (``minLength=1``, ``pattern=...``). List the field in the
    provider's ``secret_fields`` too, so the host resolves references before the provider sees the config.
    """
    literal: dict[str, Any] = {"type": "string", "minLength": 1, **string_schema}
    return {"oneOf": [literal, SECRET_REFERENCE_SCHEMA]}


def longest_zone_match(fqdn: str, zones: Iterable[str]) -> str | None:
    """The longest zone in ``zones`` that contains ``fqdn`` (or equals it), or ``None``.

    For providers whose API lists the account's zones: compares whole labels, case-insensitively, ignoring a
    trailing dot, so ``ample.com`` never matches ``www.example.com``.
    """
    name = fqdn.rstrip(".").lower()
    best: str | None = None
    for zone in zones:
        candidate = zone.rstrip(".").lower()
        if name == candidate or name.endswith("." + candidate):
            if best is None or len(candidate) > len(best):
                best = candidate
    return best


class DnsProvider(abc.ABC):
    """A DNS provider type: creates and removes ``_acme-challenge`` TXT records.

    Subclasses set the class attributes and implement :meth:`present` and :meth:`cleanup`. The host validates
    the stored config against :attr:`config_schema`, resolves the fields named in :attr:`secret_fields` from
    the tenant's secret store, and only then constructs the provider, so ``__init__`` receives plain strings.

    .. versionadded:: 0.1
    """

    #: The ``type`` users put in ``POST /v1/pki/dns-providers`` (``"rfc2136"``, ``"cloudflare"``). Lower case,
    #: ``[a-z0-9_]``, unique among installed plugins.
    type_name: ClassVar[str]
    #: JSON Schema (draft 2020-12) of the config. Secret-bearing fields accept a string or a secret
    #: reference; build them with :func:`secret_or_string`.
    config_schema: ClassVar[dict[str, Any]]
    #: Config fields that may hold secret references (resolved by the host before ``__init__``).
    secret_fields: ClassVar[tuple[str, ...]] = ()
    #: Seconds the host waits for every authoritative server to serve a new value before giving up.
    propagation_timeout: ClassVar[float] = 120.0
    #: Seconds between two propagation polls.
    propagation_interval: ClassVar[float] = 5.0

    def __init__(self, config: Mapping[str, Any]) -> None:
        """Keep the (already validated, secret-resolved) config; do no network I/O here.

        ``propagation_timeout`` and ``propagation_interval`` in the config (see
        :data:`PROPAGATION_CONFIG_PROPERTIES`) override the class defaults for this instance.
        """
        self.config: Mapping[str, Any] = config
        if "propagation_timeout" in config:
            self.propagation_timeout = float(config["propagation_timeout"])
        if "propagation_interval" in config:
            self.propagation_interval = float(config["propagation_interval"])

    @abc.abstractmethod
    def present(self, zone: str | None, fqdn: str, value: str, ttl: int) -> None:
        """Add the TXT record ``fqdn`` = ``value`` with ``ttl`` seconds.

        ``zone`` is the zone to change, or ``None`` to let the provider find it (call :meth:`find_zone`).
        Adds one value: other TXT values already at ``fqdn`` stay (an ACME order for ``example.com`` and
        ``*.example.com`` needs two at once). Idempotent: presenting a value already there succeeds.
        Raises :class:`DnsProviderError` when the provider refuses or cannot be reached; never returns
        normally unless the change was accepted.
        """

    @abc.abstractmethod
    def cleanup(self, zone: str | None, fqdn: str, value: str) -> None:
        """Remove exactly the TXT value ``value`` at ``fqdn``, leaving other values alone.

        Idempotent and safe to repeat: a record already gone is success. Raises :class:`DnsProviderError`
        only when the provider refuses or cannot be reached.
        """

    def find_zone(self, fqdn: str) -> str:
        """The zone (apex, without trailing dot) that holds ``fqdn``.

        The default walks up the name asking the system resolver for an SOA record. Providers with an API
        that lists zones should override this (see :func:`longest_zone_match`); ``rfc2136`` asks its own
        server. Raises :class:`DnsProviderError` when no zone is found.
        """
        import dns.exception
        import dns.resolver

        try:
            zone = dns.resolver.zone_for_name(fqdn.rstrip(".") + ".")
        except (dns.exception.DNSException, OSError) as exc:
            raise DnsProviderError(f"no zone found for {fqdn}: {type(exc).__name__}") from exc
        return zone.to_text(omit_final_dot=True).lower()


@dataclass(frozen=True, slots=True)
class CertificateEvent:
    """What event hooks learn about a certificate (never its private key).

    .. versionadded:: 0.1
    """

    tenant_id: str
    certificate_id: str
    #: Lower-case hex, no colons.
    serial: str
    #: The issuing CA of ours, or ``None`` for a certificate from a public CA through ACME.
    ca_id: str | None
    #: The role it was issued under, or ``None`` (e.g. signed outside a role).
    role: str | None
    common_name: str | None
    dns_names: tuple[str, ...]
    not_before: dt.datetime
    not_after: dt.datetime
    certificate_pem: str


class AcmeCaBackend(abc.ABC):
    """An ACME CA backend type (registered through ``scaivault_pki_acme_ca_backends``).

    The host validates an account's settings against :attr:`config_schema` (``environment``, and for a CA
    without fixed directories ``directory_url``), resolves secret references, and asks :attr:`directory_url`
    where to register and order. Subclasses usually only set class attributes.

    .. versionadded:: 0.1
    """

    #: The backend's ``type`` (``"letsencrypt"``, ``"pebble"``); lower case, unique among installed plugins.
    type_name: ClassVar[str]
    #: JSON Schema (draft 2020-12) of the backend's config.
    config_schema: ClassVar[dict[str, Any]]
    #: Config fields that may hold secret references (e.g. an EAB HMAC key).
    secret_fields: ClassVar[tuple[str, ...]] = ()
    #: The CA's directory URL per environment (``{"production": ..., "staging": ...}``); empty when the
    #: account gives its own ``directory_url``.
    directory_urls: ClassVar[Mapping[str, str]] = {}
    #: Whether the CA only registers accounts with External Account Binding (``eab_kid``, ``eab_hmac_key``).
    eab_required: ClassVar[bool] = False

    def __init__(self, config: Mapping[str, Any]) -> None:
        """Keep the (already validated, secret-resolved) config; do no network I/O here."""
        self.config: Mapping[str, Any] = config

    @property
    def directory_url(self) -> str:
        """The ACME directory URL of this CA: the config's ``directory_url``, else that of its ``environment``."""
        if self.config.get("directory_url"):
            return str(self.config["directory_url"])
        return self.directory_urls[self.config.get("environment", "production")]
