"""Telling plugins what happened to certificates: issued, renewed, revoked, nearing expiry.

Called by the service code *after* its transaction committed. A failing plugin is logged by
``PluginHost.fire`` and never turns a done operation into an error. ``plugins`` may be ``None`` (a context
without plugins, e.g. a CLI tool): then nothing is fired.
"""

from __future__ import annotations

import datetime as dt

from ..plugins.api import CertificateEvent
from ..plugins.manager import PluginHost
from ..schema.models import Certificate
from ..times import as_naive_utc, utc_now
from .authorities import certificate_pem

EXPIRY_BATCH = 500


def certificate_event(row: Certificate) -> CertificateEvent:
    """What plugins learn about ``row`` (never its private key)."""
    sans = row.sans or {}
    return CertificateEvent(
        tenant_id=row.tenant_id,
        certificate_id=row.id,
        serial=row.serial_number,
        ca_id=row.ca_id,
        role=row.role_name,
        common_name=row.common_name,
        dns_names=tuple(sans.get("dns", ())),
        not_before=row.not_before.replace(tzinfo=dt.timezone.utc),
        not_after=row.not_after.replace(tzinfo=dt.timezone.utc),
        certificate_pem=certificate_pem(row.certificate_der),
    )


def notify_issued(plugins: PluginHost | None, row: Certificate) -> None:
    """Fire ``scaivault_pki_certificate_issued`` for a newly stored certificate."""
    if plugins is not None:
        plugins.fire("scaivault_pki_certificate_issued", event=certificate_event(row))


def notify_renewed(plugins: PluginHost | None, row: Certificate, previous_certificate_id: str) -> None:
    """Fire ``scaivault_pki_certificate_renewed`` for ``row``, the renewal of ``previous_certificate_id``."""
    if plugins is not None:
        plugins.fire("scaivault_pki_certificate_renewed", event=certificate_event(row),
                      previous_certificate_id=previous_certificate_id)


def notify_revoked(plugins: PluginHost | None, row: Certificate, reason: str) -> None:
    """Fire ``scaivault_pki_certificate_revoked`` once the revocation of ``row`` is committed.

    ``reason`` is the RFC 5280 CRLReason name as stored (``"keyCompromise"``, ``"unspecified"``...).
    """
    if plugins is not None:
        plugins.fire("scaivault_pki_certificate_revoked", event=certificate_event(row), reason=reason)


def notify_expiring(plugins: PluginHost | None, within: dt.timedelta, now: dt.datetime | None = None) -> int:
    """Fire ``scaivault_pki_certificate_expiring`` for every valid certificate (all tenants) that expires
    after ``now`` and at most ``within`` from it; returns how many. The body of the near-expiry job.

    Reads in batches (keyset on ``(not_after, id)``) so a large table is never loaded at once.
    """
    if plugins is None:
        return 0
    now = as_naive_utc(now or utc_now())
    horizon = now + within
    fired = 0
    after: tuple[dt.datetime, str] | None = None
    while True:
        query = Certificate.select().where(
            (Certificate.status == "valid") & (Certificate.not_after > now) & (Certificate.not_after <= horizon)
        )
        if after is not None:
            query = query.where(
                (Certificate.not_after > after[0]) | ((Certificate.not_after == after[0]) & (Certificate.id > after[1]))
            )
        rows = list(query.order_by(Certificate.not_after, Certificate.id).limit(EXPIRY_BATCH))
        for row in rows:
            left = int((row.not_after - now).total_seconds())
            plugins.fire("scaivault_pki_certificate_expiring", event=certificate_event(row), expires_in_seconds=left)
            fired += 1
        if len(rows) < EXPIRY_BATCH:
            return fired
        after = (rows[-1].not_after, rows[-1].id)
