"""Waiting until a TXT value is served by every authoritative server of its zone.

An ACME CA looks the ``_acme-challenge`` record up through the zone's authoritative servers (directly or via a
resolver with an empty cache), so a dns-01 challenge may only be answered once *every* one of them serves the
value; asking a recursive resolver would both lie (its cache) and hide a lagging secondary. So: find the zone,
its NS names, their addresses, and query each address directly, without recursion, until all agree or the
provider's timeout passes. A timeout is a :class:`~scaivault_pki.plugins.api.PropagationTimeout` naming the
servers that lag, never a hang: every query has its own deadline inside the overall one.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver

from .api import DnsProvider, DnsProviderError, PropagationTimeout

log = logging.getLogger("scaivault_pki.plugins.propagation")

#: Upper bound of one query, so a silent server costs at most this per poll.
QUERY_TIMEOUT = 3.0


@dataclass(frozen=True)
class Nameserver:
    """One authoritative server address to poll; ``name`` is its NS name when known (for messages)."""

    address: str
    port: int = 53
    name: str | None = None

    def __str__(self) -> str:
        where = f"[{self.address}]:{self.port}" if ":" in self.address else f"{self.address}:{self.port}"
        return f"{self.name} ({where})" if self.name else where

    @classmethod
    def parse(cls, text: str) -> Nameserver:
        """``"192.0.2.1"``, ``"192.0.2.1:5353"``, ``"[2001:db8::1]:5353"`` or ``"2001:db8::1"``."""
        text = text.strip()
        host, port = text, 53
        if text.startswith("["):
            host, _, rest = text[1:].partition("]")
            if rest:
                port = int(rest.removeprefix(":"))
        elif text.count(":") == 1:
            host, port_text = text.split(":")
            port = int(port_text)
        ipaddress.ip_address(host)  # an address, not a name: nothing is resolved for an override
        if not 0 < port < 65536:
            raise ValueError(f"port out of range in {text!r}")
        return cls(host, port)


def query_direct(qname: str, rdtype: str, server: Nameserver, timeout: float) -> dns.message.Message:
    """Ask ``server`` itself (no recursion) for ``qname``/``rdtype``; UDP, retried over TCP when truncated.

    Raises ``dns.exception.DNSException`` or ``OSError`` when the server does not answer in ``timeout``.
    """
    query = dns.message.make_query(qname, rdtype)
    query.flags &= ~dns.flags.RD
    response = dns.query.udp(query, server.address, timeout=timeout, port=server.port)
    if response.flags & dns.flags.TC:
        response = dns.query.tcp(query, server.address, timeout=timeout, port=server.port)
    return response


def txt_values(response: dns.message.Message, qname: str) -> set[str]:
    """The TXT values (strings of a record joined, as ACME means them) at ``qname`` in an answer."""
    name = dns.name.from_text(qname)
    values: set[str] = set()
    for rrset in response.answer:
        if rrset.name == name and rrset.rdtype == dns.rdatatype.TXT:
            values |= {b"".join(rdata.strings).decode("utf-8", "replace") for rdata in rrset}
    return values


def authoritative_servers(zone: str, resolver: dns.resolver.Resolver, port: int = 53) -> list[Nameserver]:
    """Addresses of the zone's NS names (IPv4 and IPv6), looked up through ``resolver``.

    Raises :class:`DnsProviderError` when the zone has no NS records or none of them resolves.
    """
    try:
        ns_answer = resolver.resolve(zone.rstrip(".") + ".", "NS")
    except (dns.exception.DNSException, OSError) as exc:
        raise DnsProviderError(f"cannot find the name servers of {zone}: {type(exc).__name__}") from exc
    servers: list[Nameserver] = []
    for ns in sorted(rdata.target.to_text() for rdata in ns_answer):
        for rdtype in ("A", "AAAA"):
            try:
                servers += [Nameserver(r.address, port, ns.rstrip(".")) for r in resolver.resolve(ns, rdtype)]
            except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
                continue
            except (dns.exception.DNSException, OSError) as exc:
                log.warning("name server address lookup failed", extra={"nameserver": ns, "error": type(exc).__name__})
    if not servers:
        raise DnsProviderError(f"none of the name servers of {zone} has an address")
    return servers


def _txt_problem(fqdn: str, value: str, server: Nameserver, timeout: float) -> str | None:
    """Why ``server`` does not serve ``value`` at ``fqdn`` yet, or None when it does."""
    try:
        response = query_direct(fqdn, "TXT", server, timeout)
    except (dns.exception.DNSException, OSError) as exc:
        return f"no answer ({type(exc).__name__})"
    if response.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        return dns.rcode.to_text(response.rcode())
    return None if value in txt_values(response, fqdn) else "value not served yet"


def check_txt_once(fqdn: str, value: str, servers: Sequence[Nameserver]) -> dict[Nameserver, str]:
    """One poll round, for callers that must not block (the ACME order job checks once per step).

    Asks every server once (each query bounded by :data:`QUERY_TIMEOUT`); returns the servers that do not
    serve ``value`` yet, with why. Empty: propagated everywhere.
    """
    if not servers:
        raise DnsProviderError(f"no authoritative servers to check {fqdn} against")
    lagging = {}
    for server in servers:
        problem = _txt_problem(fqdn, value, server, QUERY_TIMEOUT)
        if problem is not None:
            lagging[server] = problem
    return lagging


def propagation_servers(
    provider: DnsProvider,
    fqdn: str,
    *,
    zone: str | None = None,
    resolver: dns.resolver.Resolver | None = None,
    port: int = 53,
) -> list[Nameserver]:
    """The servers to check ``fqdn`` against: the provider's ``propagation_nameservers`` config when set
    (``IP`` or ``IP:port`` each; no discovery: a hidden primary, a split horizon, a test server), else the
    addresses of the zone's NS names looked up through ``resolver`` (the system's by default), on ``port``.
    """
    override = provider.config.get("propagation_nameservers")
    if override:
        try:
            return [Nameserver.parse(text) for text in override]
        except ValueError as exc:
            raise DnsProviderError(f"propagation_nameservers: {exc}") from None
    zone = zone or provider.find_zone(fqdn)
    return authoritative_servers(zone, resolver or dns.resolver.Resolver(), port)


def wait_for_txt(
    fqdn: str,
    value: str,
    servers: Sequence[Nameserver],
    *,
    timeout: float,
    interval: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Poll every server in ``servers`` until each serves ``value`` at ``fqdn``.

    A server that has the value is not asked again. Raises :class:`PropagationTimeout` naming the servers
    still without it once ``timeout`` seconds have passed (the last poll never runs past the deadline).
    """
    if not servers:
        raise DnsProviderError(f"no authoritative servers to check {fqdn} against")
    deadline = clock() + timeout
    pending = list(servers)
    last_problem: dict[Nameserver, str] = {}
    while True:
        for server in list(pending):
            remaining = deadline - clock()
            if remaining <= 0:
                break
            problem = _txt_problem(fqdn, value, server, min(QUERY_TIMEOUT, remaining))
            if problem is None:
                pending.remove(server)
            else:
                last_problem[server] = problem
        if not pending:
            return
        remaining = deadline - clock()
        if remaining <= 0:
            lagging = "; ".join(f"{s}: {last_problem.get(s, 'not asked')}" for s in pending)
            raise PropagationTimeout(f"TXT value at {fqdn} not served by every authoritative server after {timeout:g}s: {lagging}")
        sleep(min(interval, remaining))


def wait_for_propagation(
    provider: DnsProvider,
    fqdn: str,
    value: str,
    *,
    zone: str | None = None,
    nameservers: Sequence[Nameserver] | None = None,
    resolver: dns.resolver.Resolver | None = None,
    port: int = 53,
) -> None:
    """Wait, with ``provider``'s timeout and interval, until ``value`` at ``fqdn`` is served everywhere.

    Call it after :meth:`DnsProvider.present` and before answering the dns-01 challenge. ``nameservers``
    overrides discovery (a fixed list of ``IP:port``, e.g. a hidden primary or a test server); otherwise
    :func:`propagation_servers` decides (the provider's ``propagation_nameservers``, else the zone's NS).
    """
    timeout = float(provider.propagation_timeout)
    interval = float(provider.propagation_interval)
    if nameservers is None:
        nameservers = propagation_servers(provider, fqdn, zone=zone, resolver=resolver, port=port)
    wait_for_txt(fqdn, value, nameservers, timeout=timeout, interval=interval)
