"""Publishing CRLs: numbering, storing, choosing delta bases, and deciding which CAs need a new CRL.

Every publication makes a pair in one write transaction: a full CRL numbered N and a delta CRL numbered N+1
(full and delta CRLs share one numbering sequence, RFC 5280 5.2.3). The numbers are taken with
``UPDATE ... SET crl_number = crl_number + 2`` as the transaction's first statement, which also locks the CA
row (PostgreSQL) or the database (SQLite, ``BEGIN IMMEDIATE``). So two workers or nodes publishing at once get
distinct, increasing numbers, and the entries are read after the lock: a revocation under the CA commits either
before (and is listed) or after (and marks the CA dirty again, so the next pair lists it). A higher-numbered
CRL therefore never lists less than a lower-numbered one, except for entries dropped after their grace period.

The delta CRL's base is the oldest full CRL of the CA that is still valid (nextUpdate not passed): a relying
party holding any current full CRL can combine it with the newest delta (RFC 5280 5.2.4: base number <= its
full CRL's number < the delta's number). The delta lists every entry of the new full CRL that the base lacks.

Entries: every revoked certificate the CA issued (CA certificates included), until ``crl_expired_grace`` after
the later of its notAfter and its revocation (so a certificate revoked after it expired, as code-signing users
do, still appears for the grace period). A root's own certificate is never listed on its own CRL.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from dataclasses import dataclass
from typing import Any, Final

import peewee
from asn1crypto import crl as asn1_crl

from ..config import Config
from ..durations import parse_duration
from ..schema.db import write_transaction
from ..schema.models import Certificate, CertificateAuthority, CertificateRevocationList
from ..times import as_naive_utc, utc_now
from .authorities import ca_material, issuer_info
from .crl import CrlBuilder, RevokedEntry, known_reason, sign_crl

log = logging.getLogger("scaivault_pki.crl")

FULL: Final = "full"
DELTA: Final = "delta"
#: Superseded CRLs are kept this long after their nextUpdate (for audits), then pruned.
CRL_HISTORY: Final = dt.timedelta(days=7)


@dataclass(frozen=True)
class Published:
    """The full and delta CRL one publication stored."""

    full: CertificateRevocationList
    delta: CertificateRevocationList


def crl_lifetime(config: Config, ca: CertificateAuthority) -> dt.timedelta:
    """thisUpdate to nextUpdate: ``root_crl_lifetime`` for roots, ``crl_lifetime`` for intermediates."""
    return parse_duration(config.root_crl_lifetime if ca.parent_id is None else config.crl_lifetime)


def delta_crl_url(config: Config, ca: CertificateAuthority) -> str:
    """Where the CA's delta CRLs are served: next to the full CRL that certificates point at."""
    return issuer_info(ca, config.public_base_url).crl_urls[0] + "/delta"


def _aware(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.timezone.utc)


def revoked_entries(ca: CertificateAuthority, now: dt.datetime, grace: dt.timedelta) -> list[RevokedEntry]:
    """What the CA's CRL lists at ``now`` (see the module docstring)."""
    cutoff = as_naive_utc(now - grace)
    condition = (
        (Certificate.ca == ca.id)
        & (Certificate.status == "revoked")
        & ((Certificate.not_after >= cutoff) | (Certificate.revoked_at >= cutoff))
    )
    if ca.parent_id is None:
        # A root's own certificate row sits under the root itself; a self-signed revocation means nothing.
        condition &= ~((Certificate.source == "ca") & (Certificate.serial_number == ca.serial_number))
    query = (
        Certificate.select(Certificate.serial_number, Certificate.revoked_at, Certificate.revocation_reason)
        .where(condition)
        .order_by(Certificate.revoked_at, Certificate.serial_number)
        .tuples()
    )
    return [RevokedEntry(int(serial, 16), _aware(revoked_at), known_reason(reason)) for serial, revoked_at, reason in query]


@functools.lru_cache(maxsize=16)
def _serials_in(der: bytes) -> frozenset[int]:
    # Remembered: the same base CRL serves every delta of its CA until it expires.
    listed = asn1_crl.CertificateList.load(der)["tbs_cert_list"]["revoked_certificates"]
    return frozenset(entry["user_certificate"].native for entry in listed or [])


def publish_crls(hsm: Any, config: Config, ca: CertificateAuthority) -> Published:
    """Build, sign (with the CA key in the HSM) and store a new full and delta CRL for ``ca``; clears its dirty flag."""
    signer = hsm.signer(ca.hsm_key_id, ca.signature_algorithm)
    material = ca_material(ca)
    lifetime = crl_lifetime(config, ca)
    grace = parse_duration(config.crl_expired_grace)
    freshest = delta_crl_url(config, ca)
    with write_transaction():
        # First statement: take two numbers (and the lock, see the module docstring).
        CertificateAuthority.update(
            crl_number=CertificateAuthority.crl_number + 2, crl_dirty=False
        ).where(CertificateAuthority.id == ca.id).execute()
        delta_number = CertificateAuthority.select(CertificateAuthority.crl_number).where(
            CertificateAuthority.id == ca.id
        ).scalar()
        full_number = delta_number - 1
        now = utc_now()
        entries = revoked_entries(ca, now, grace)
        base = (
            CertificateRevocationList.select(CertificateRevocationList.number, CertificateRevocationList.der)
            .where(
                (CertificateRevocationList.ca == ca.id)
                & (CertificateRevocationList.kind == FULL)
                & (CertificateRevocationList.next_update > as_naive_utc(now))
            )
            .order_by(CertificateRevocationList.number)
            .first()
        )
        base_number, base_serials = (
            (base.number, _serials_in(base.der)) if base is not None else (full_number, {e.serial for e in entries})
        )

        def builder(number: int, listed: list[RevokedEntry]) -> CrlBuilder:
            return (
                CrlBuilder()
                .issuer_name(material.subject)
                .authority_key_identifier(material.key_identifier)
                .this_update(now)
                .next_update(now + lifetime)
                .crl_number(number)
                .revoked_certificates(listed)
            )

        full = sign_crl(builder(full_number, entries).freshest_crl([freshest]).build(signer.algorithm), signer)
        delta_entries = [entry for entry in entries if entry.serial not in base_serials]
        delta = sign_crl(builder(delta_number, delta_entries).delta_of(base_number).build(signer.algorithm), signer)
        stored = {}
        pair = ((FULL, full_number, None, full), (DELTA, delta_number, base_number, delta))
        for kind, number, base_of, document in pair:
            stored[kind] = CertificateRevocationList.create(
                ca=ca.id,
                number=number,
                kind=kind,
                base_number=base_of,
                this_update=as_naive_utc(now),
                next_update=as_naive_utc(now + lifetime),
                der=document.dump(),
            )
    log.info(
        "crl published",
        extra={"ca_id": ca.id, "crl_number": full_number, "entries": len(entries),
               "delta_crl_number": delta_number, "delta_base": base_number, "delta_entries": len(delta_entries)},
    )
    return Published(stored[FULL], stored[DELTA])


def latest_crl(ca_id: str, kind: str) -> CertificateRevocationList | None:
    """The highest-numbered stored CRL of ``kind`` for the CA, if any."""
    return (
        CertificateRevocationList.select()
        .where((CertificateRevocationList.ca == ca_id) & (CertificateRevocationList.kind == kind))
        .order_by(CertificateRevocationList.number.desc())
        .first()
    )


def current_crl(hsm: Any, config: Config, ca: CertificateAuthority, kind: str) -> CertificateRevocationList:
    """The CRL to serve: the latest one, or a new one when there is none yet or the latest has expired."""
    row = latest_crl(ca.id, kind)
    if row is None or row.next_update <= as_naive_utc(utc_now()):
        published = publish_crls(hsm, config, ca)
        row = published.full if kind == FULL else published.delta
    return row


def same_second_predecessor(row: CertificateRevocationList) -> bool:
    """Whether an earlier CRL of the same kind has the same thisUpdate (so thisUpdate alone cannot tell them apart)."""
    return (
        CertificateRevocationList.select()
        .where(
            (CertificateRevocationList.ca == row.ca_id)
            & (CertificateRevocationList.kind == row.kind)
            & (CertificateRevocationList.this_update == row.this_update)
            & (CertificateRevocationList.number < row.number)
        )
        .exists()
    )


def ocsp_next_update(config: Config, ca: CertificateAuthority, now: dt.datetime) -> dt.datetime:
    """nextUpdate of an OCSP answer: the current full CRL's, or now plus the CRL lifetime without one."""
    latest = (
        CertificateRevocationList.select(CertificateRevocationList.next_update)
        .where((CertificateRevocationList.ca == ca.id) & (CertificateRevocationList.kind == FULL))
        .order_by(CertificateRevocationList.number.desc())
        .first()
    )
    if latest is not None and _aware(latest.next_update) > now:
        return _aware(latest.next_update)
    return now + crl_lifetime(config, ca)


def dirty_cas() -> list[CertificateAuthority]:
    """CAs with a revocation their latest CRL does not show yet."""
    return list(CertificateAuthority.select().where(CertificateAuthority.crl_dirty == True))  # noqa: E712


def stale_cas(config: Config, now: dt.datetime) -> list[CertificateAuthority]:
    """Unexpired CAs without a CRL, or whose latest full CRL has less than half its lifetime left."""
    newest = peewee.fn.MAX(CertificateRevocationList.next_update)
    query = (
        CertificateAuthority.select(CertificateAuthority, newest.alias("newest_next_update"))
        .join(
            CertificateRevocationList,
            peewee.JOIN.LEFT_OUTER,
            on=(CertificateRevocationList.ca == CertificateAuthority.id) & (CertificateRevocationList.kind == FULL),
        )
        .where(CertificateAuthority.not_after > as_naive_utc(now))
        .group_by(CertificateAuthority)
    )
    stale = []
    for ca in query:
        newest_next_update = ca.newest_next_update
        if isinstance(newest_next_update, str):  # SQLite hands aggregates back as text
            newest_next_update = dt.datetime.fromisoformat(newest_next_update)
        if newest_next_update is None or _aware(newest_next_update) - now < crl_lifetime(config, ca) / 2:
            stale.append(ca)
    return stale


def prune_crls(now: dt.datetime) -> int:
    """Delete superseded CRLs whose nextUpdate passed more than ``CRL_HISTORY`` ago; the latest pair always stays."""
    # Each publication takes two numbers, so the CA's latest pair is (crl_number - 1, crl_number).
    expired = [
        row.id
        for row in CertificateRevocationList.select(CertificateRevocationList.id)
        .join(CertificateAuthority, on=CertificateRevocationList.ca == CertificateAuthority.id)
        .where(
            (CertificateRevocationList.next_update < as_naive_utc(now - CRL_HISTORY))
            & (CertificateRevocationList.number < CertificateAuthority.crl_number - 1)
        )
    ]
    if not expired:
        return 0
    with write_transaction():
        return CertificateRevocationList.delete().where(CertificateRevocationList.id.in_(expired)).execute()
