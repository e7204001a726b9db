"""``rfc2136``: TXT records through DNS UPDATE (RFC 2136) signed with TSIG (RFC 8945), via dnspython.

Works with any primary server that accepts signed updates (BIND, Knot, PowerDNS). Unlike some bridges, a
refusal is never reported as success: every response's rcode is checked, and a TSIG failure (unknown key,
bad signature, clock skew) raised by dnspython while verifying the response is an error too.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import socket
from collections.abc import Mapping
from typing import Any, ClassVar

import dns.exception
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.tsig
import dns.update

from scaivault_pki.plugins.api import PROPAGATION_CONFIG_PROPERTIES, DnsProvider, DnsProviderError, secret_or_string
from scaivault_pki.plugins.propagation import Nameserver, query_direct

DNS_NAME_PATTERN = r"^([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.)*[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.?$"

TSIG_ALGORITHMS = ("hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224", "hmac-sha1")

# TXT character-strings hold at most 255 octets; longer values are split, and joined again by readers.
_TXT_CHUNK = 255


def _decode_tsig_secret(secret: str) -> bytes:
    try:
        return base64.b64decode(secret, validate=True)
    except (binascii.Error, ValueError):
        raise DnsProviderError("tsig_secret is not valid base64") from None


class Rfc2136Provider(DnsProvider):
    """DNS UPDATE with TSIG against one primary server."""

    type_name: ClassVar[str] = "rfc2136"
    config_schema: ClassVar[dict[str, Any]] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "RFC 2136 dynamic update with TSIG",
        "type": "object",
        "additionalProperties": False,
        "required": ["server", "tsig_key_name", "tsig_secret"],
        "properties": {
            "server": {
                "description": "IP address or host name of the primary server that accepts updates",
                "type": "string", "minLength": 1, "maxLength": 253,
            },
            "port": {"type": "integer", "minimum": 1, "maximum": 65535, "default": 53},
            "zone": {
                "description": "the zone to update; found by an SOA lookup against the server when left out",
                "type": "string", "maxLength": 253, "pattern": DNS_NAME_PATTERN,
            },
            "tsig_key_name": {"type": "string", "maxLength": 253, "pattern": DNS_NAME_PATTERN},
            "tsig_secret": secret_or_string(pattern=r"^[A-Za-z0-9+/]+={0,2}$", maxLength=1024),
            "tsig_algorithm": {"enum": list(TSIG_ALGORITHMS), "default": "hmac-sha256"},
            "transport": {"enum": ["tcp", "udp"], "default": "tcp"},
            "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 60, "default": 10},
            **PROPAGATION_CONFIG_PROPERTIES,
        },
    }
    secret_fields: ClassVar[tuple[str, ...]] = ("tsig_secret",)
    # A primary with its secondaries usually converges within seconds (NOTIFY); poll often.
    propagation_timeout: ClassVar[float] = 120.0
    propagation_interval: ClassVar[float] = 2.0

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.port = int(config.get("port", 53))
        self.timeout = float(config.get("timeout", 10))
        self.transport = config.get("transport", "tcp")
        self.key = dns.tsig.Key(
            dns.name.from_text(config["tsig_key_name"]),
            _decode_tsig_secret(config["tsig_secret"]),
            dns.name.from_text(config.get("tsig_algorithm", "hmac-sha256")),
        )
        self._address: str | None = None

    def __repr__(self) -> str:
        # Never the TSIG secret.
        return f"<Rfc2136Provider server={self.config['server']!r} port={self.port} key={self.config['tsig_key_name']!r}>"

    @property
    def server(self) -> Nameserver:
        """The primary's address (a host name is resolved once, at first use)."""
        if self._address is None:
            host = self.config["server"]
            try:
                self._address = str(ipaddress.ip_address(host))
            except ValueError:
                try:
                    self._address = socket.getaddrinfo(host, self.port, proto=socket.IPPROTO_TCP)[0][4][0]
                except OSError as exc:
                    raise DnsProviderError(f"cannot resolve the rfc2136 server {host!r}: {exc.strerror or exc}") from exc
        return Nameserver(self._address, self.port)

    # -- zone ------------------------------------------------------------------------------------------

    def find_zone(self, fqdn: str) -> str:
        """The configured ``zone``, else the owner of the SOA the server returns for ``fqdn`` (or a parent)."""
        if self.config.get("zone"):
            return self.config["zone"].rstrip(".").lower()
        name = dns.name.from_text(fqdn)
        while True:
            try:
                response = query_direct(name.to_text(), "SOA", self.server, self.timeout)
            except (dns.exception.DNSException, OSError) as exc:
                raise DnsProviderError(f"SOA lookup of {name} at {self.server} failed: {type(exc).__name__}") from exc
            rcode = response.rcode()
            if rcode in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
                # The SOA is in the answer at the apex, and in the authority section below it.
                for rrset in (*response.answer, *response.authority):
                    if rrset.rdtype == dns.rdatatype.SOA and name.is_subdomain(rrset.name):
                        return rrset.name.to_text(omit_final_dot=True).lower()
            elif rcode != dns.rcode.REFUSED:
                raise DnsProviderError(f"SOA lookup of {name} at {self.server}: {dns.rcode.to_text(rcode)}")
            # REFUSED or no SOA: the server does not serve this name; try the parent.
            if len(name) <= 2:
                raise DnsProviderError(f"the rfc2136 server {self.server} is not authoritative for any zone holding {fqdn}")
            name = name.parent()

    # -- changes ---------------------------------------------------------------------------------------

    def present(self, zone: str | None, fqdn: str, value: str, ttl: int) -> None:
        """Add the TXT value (an UPDATE "add" of one rdata: other values stay; adding it twice is a no-op)."""
        update = self._update(zone, fqdn)
        update.add(dns.name.from_text(fqdn), ttl, _txt(value))
        self._send(update, "add", fqdn)

    def cleanup(self, zone: str | None, fqdn: str, value: str) -> None:
        """Delete exactly that TXT value (an UPDATE "delete rdata": a missing value is a no-op)."""
        update = self._update(zone, fqdn)
        update.delete(dns.name.from_text(fqdn), _txt(value))
        self._send(update, "delete", fqdn)

    def _update(self, zone: str | None, fqdn: str) -> dns.update.UpdateMessage:
        zone_name = dns.name.from_text(zone or self.find_zone(fqdn))
        if not dns.name.from_text(fqdn).is_subdomain(zone_name):
            raise DnsProviderError(f"{fqdn} is not inside the zone {zone_name.to_text(omit_final_dot=True)}")
        return dns.update.UpdateMessage(zone_name, keyring=self.key)

    def _send(self, update: dns.update.UpdateMessage, action: str, fqdn: str) -> None:
        zone = update.zone[0].name.to_text(omit_final_dot=True)
        server = self.server
        send = dns.query.tcp if self.transport == "tcp" else dns.query.udp
        try:
            # dnspython verifies the response's TSIG with the same key, raising on BADKEY/BADSIG/BADTIME.
            response = send(update, server.address, timeout=self.timeout, port=server.port)
        except dns.tsig.PeerError as exc:
            raise DnsProviderError(f"UPDATE ({action} TXT {fqdn}) refused by {server}: TSIG {type(exc).__name__}") from exc
        except (dns.exception.DNSException, OSError) as exc:
            raise DnsProviderError(f"UPDATE ({action} TXT {fqdn}) to {server} failed: {type(exc).__name__}") from exc
        rcode = response.rcode()
        if rcode != dns.rcode.NOERROR:
            raise DnsProviderError(
                f"UPDATE ({action} TXT {fqdn}) in zone {zone} refused by {server}: {dns.rcode.to_text(rcode)}"
            )


def _txt(value: str) -> dns.rdtypes.ANY.TXT.TXT:
    raw = value.encode("utf-8")
    chunks = [raw[i : i + _TXT_CHUNK] for i in range(0, len(raw), _TXT_CHUNK)] or [b""]
    return dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, chunks)
