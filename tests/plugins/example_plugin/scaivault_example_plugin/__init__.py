"""An example third-party ScaiVault PKI plugin.

It registers one DNS provider type, ``example_memory``, whose "zone" lives in this process's memory, and
records the certificates it is told about through ``scaivault_pki_certificate_issued``. The plugin author
guide (docs/plugins.md) walks through it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, ClassVar

from scaivault_pki.plugins import hookimpl
from scaivault_pki.plugins.api import (
    CertificateEvent,
    DnsProvider,
    DnsProviderError,
    longest_zone_match,
    secret_or_string,
)

#: The in-memory "DNS": TXT values by (zone, name).
RECORDS: dict[tuple[str, str], set[str]] = {}
#: Ids of the certificates the daemon reported as issued.
ISSUED: list[str] = []
_LOCK = threading.Lock()


class ExampleMemoryProvider(DnsProvider):
    """Keeps TXT records in memory (an example for plugin authors, not for production)."""

    type_name: ClassVar[str] = "example_memory"
    config_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["zones", "api_token"],
        "properties": {
            "zones": {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1},
            "api_token": secret_or_string(minLength=8),
        },
    }
    secret_fields: ClassVar[tuple[str, ...]] = ("api_token",)
    propagation_timeout: ClassVar[float] = 5.0
    propagation_interval: ClassVar[float] = 0.5

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.zones = [zone.rstrip(".").lower() for zone in config["zones"]]

    def find_zone(self, fqdn: str) -> str:
        zone = longest_zone_match(fqdn, self.zones)
        if zone is None:
            raise DnsProviderError(f"no configured zone holds {fqdn}")
        return zone

    def present(self, zone: str | None, fqdn: str, value: str, ttl: int) -> None:
        with _LOCK:
            RECORDS.setdefault((zone or self.find_zone(fqdn), fqdn), set()).add(value)

    def cleanup(self, zone: str | None, fqdn: str, value: str) -> None:
        with _LOCK:
            RECORDS.get((zone or self.find_zone(fqdn), fqdn), set()).discard(value)


@hookimpl
def scaivault_pki_dns_provider_types() -> list[type[DnsProvider]]:
    return [ExampleMemoryProvider]


@hookimpl
def scaivault_pki_certificate_issued(event: CertificateEvent) -> None:
    with _LOCK:
        ISSUED.append(event.certificate_id)
