"""ACME orders: placed at once by the API, driven to a certificate by a background job, state in the database.

``create_order`` makes a fresh key and CSR, places the order and records its challenges (202: nothing waits for
validation). ``drive_due_orders`` (the ``acme.orders`` job) takes each unfinished order whose next attempt is due
and moves it one step: answer challenges, poll authorizations, finalize, poll, download. Every step reads its
state from the database, so an order survives a restart of the worker: whichever worker holds the job next
resumes it. Polls follow the CA's Retry-After, else back off exponentially (1 s doubling up to 60 s).

dns-01: the step that would answer a challenge first puts the TXT record up through the order's DNS provider,
then checks propagation one query round per step (never blocking the job thread) until every authoritative
server serves the value, or the challenge's ``propagation_deadline`` (presentation + the provider's
``propagation_timeout``) passes, which fails the order. Records come down when the order ends, either way; a
removal the provider refuses is tried again later with backoff (``cleanup_next_at``). Manual dns-01
(``dns_manual``) leaves the TXT records to the operator, who answers with ``POST /challenges/{id}/complete``.

tls-alpn-01: the challenge listener process (``scaivault_pki.challenge_listener``) serves the RFC 8737
certificate for each active challenge's domain; the job answers as for http-01.

Renewal: at a third of the lifetime left, or inside the CA's RFC 9773 renewal window when its directory offers
``renewalInfo`` (then the renewal order says which certificate it ``replaces``).
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from typing import Any

import peewee
import requests
from acme import crypto_util, messages
from acme import errors as acme_errors
from asn1crypto import pem as asn1_pem
from asn1crypto.crl import CRLReason
from cryptography import x509

from ..errors import ApiError, invalid_field, not_found
from ..hsm import HsmError
from ..paging import paginate
from ..plugins.api import DnsProvider, DnsProviderError, PropagationTimeout
from ..plugins.manager import PluginHost
from ..plugins.propagation import check_txt_once, propagation_servers
from ..schema.db import write_transaction
from ..schema.models import AcmeAccount, AcmeChallenge, AcmeOrder, Certificate, CertificateChain, new_id, utcnow
from ..times import as_naive_utc
from . import acme_accounts, acme_client, dns_providers, events
from .crl import asn1_reason
from .extensions import validate_dns_name
from .issuance import generate_leaf_key, private_key_context
from .serials import serial_to_hex
from .trust import public_key_shape, read_certificates, stored_sans, subject_common_name

log = logging.getLogger("scaivault_pki.acme")

ACTIVE_STATUSES = ("pending", "processing")
#: The longest pause between two polls of one order (without a longer Retry-After from the CA).
MAX_BACKOFF_SECONDS = 60
#: An order whose CA keeps failing (network, 5xx) is given up after this many attempts in a row.
MAX_FAILED_ATTEMPTS = 30
KEY_TYPES = {"ec": 256, "rsa": 2048}
CHALLENGE_TYPES = ("http-01", "dns-01", "tls-alpn-01")
#: TTL of the dns-01 TXT records: short, as they live for one validation.
DNS01_TTL = 60
#: Manual dns-01: how often an order waiting for its operator re-polls the CA (to notice an expired authorization).
MANUAL_DNS01_POLL = dt.timedelta(minutes=5)
#: A refused dns-01 record removal is tried again after a minute, doubling up to 6 hours, at most this many times.
CLEANUP_RETRY_FIRST = dt.timedelta(minutes=1)
CLEANUP_RETRY_MAX = dt.timedelta(hours=6)
MAX_CLEANUP_ATTEMPTS = 20
_UPSTREAM_ERRORS = (messages.Error, acme_errors.Error, requests.RequestException, acme_client.AcmeUpstreamError)


def order_context(order_id: str) -> bytes:
    return f"acme-order:{order_id}".encode()


def _domains(values: list[str], challenge_type: str) -> list[str]:
    """The order's names, lower-cased, without trailing dots or repeats; 400 naming the first bad one."""
    seen: list[str] = []
    for index, raw in enumerate(values):
        name = raw.rstrip(".").lower()
        if name.startswith("*.") and challenge_type != "dns-01":
            raise ApiError("policy_violation", f"domains[{index}]: wildcard names need challenge_type dns-01",
                           {"rule": "challenge_type", "field": f"domains[{index}]"})
        try:
            validate_dns_name(name, allow_wildcard=challenge_type == "dns-01")
        except ValueError as exc:
            raise invalid_field(f"domains[{index}]", str(exc)) from None
        if "." not in name:
            raise invalid_field(f"domains[{index}]", f"{raw!r} is not a fully qualified name")
        if name not in seen:
            seen.append(name)
    return seen


def get_order(tenant_id: str, order_id: str) -> AcmeOrder:
    try:
        return AcmeOrder.get((AcmeOrder.tenant == tenant_id) & (AcmeOrder.id == order_id))
    except peewee.DoesNotExist:
        raise not_found("ACME order") from None


def list_orders(tenant_id: str, status: str | None, account_id: str | None, limit: int, cursor: str | None) -> tuple[list[AcmeOrder], str | None]:
    query = AcmeOrder.select().where(AcmeOrder.tenant == tenant_id)
    if status:
        query = query.where(AcmeOrder.status == status)
    if account_id:
        query = query.where(AcmeOrder.account == account_id)
    return paginate(query, AcmeOrder, limit, cursor)


def order_challenges(order: AcmeOrder) -> list[AcmeChallenge]:
    return list(AcmeChallenge.select().where(AcmeChallenge.order == order.id).order_by(AcmeChallenge.domain))


def page_details(orders: list[AcmeOrder]) -> tuple[dict[str, list[AcmeChallenge]], dict[str, str]]:
    """For a page of orders, in two queries: their challenges (by order id) and chains (by certificate id)."""
    challenges: dict[str, list[AcmeChallenge]] = {order.id: [] for order in orders}
    if orders:
        for row in (AcmeChallenge.select().where(AcmeChallenge.order.in_(list(challenges)))
                    .order_by(AcmeChallenge.domain)):
            challenges[row.order_id].append(row)
    certificate_ids = [order.certificate_id for order in orders if order.certificate_id]
    chains = {row.certificate_id: row.chain_pem for row in
              CertificateChain.select().where(CertificateChain.certificate.in_(certificate_ids))} if certificate_ids else {}
    return challenges, chains


def dns01_txt_name(domain: str) -> str:
    """Where a dns-01 answer for ``domain`` goes (RFC 8555 8.4; a wildcard's authorization is for its base name)."""
    return "_acme-challenge." + domain.removeprefix("*.")


def create_order(envelope: Any, tenant_id: str, body: dict[str, Any], requested_by: str | None, *,
                 plugins: PluginHost) -> AcmeOrder:
    """Place an order at the account's CA and record it with its challenges; the job does the rest.

    dns-01 needs ``dns_provider_id``, a DNS provider of the tenant (400 without, 404 unknown), resolved (secrets
    included) here already, so a provider that cannot work fails the request, not the order later; or
    ``dns_manual: true``: the operator publishes the TXT values and answers each challenge with ``complete``. A
    manual order is not renewed automatically (nobody would publish the renewal's values): ``auto_renew`` is
    false for it, and asking for it is refused.
    """
    challenge_type = body.get("challenge_type", "http-01")
    if challenge_type not in CHALLENGE_TYPES:
        raise invalid_field("challenge_type", f"one of {', '.join(CHALLENGE_TYPES)}")
    provider_id = body.get("dns_provider_id")
    manual = bool(body.get("dns_manual", False))
    if challenge_type == "dns-01" and not provider_id and not manual:
        raise invalid_field("dns_provider_id", "required with challenge_type dns-01 (or dns_manual: true)")
    if provider_id and manual:
        raise invalid_field("dns_manual", "either dns_provider_id or dns_manual, not both")
    if challenge_type != "dns-01" and (provider_id or manual):
        raise invalid_field("dns_provider_id" if provider_id else "dns_manual", "only with challenge_type dns-01")
    auto_renew = body.get("auto_renew", not manual)
    if manual and auto_renew:
        raise ApiError("policy_violation", "auto_renew: a manual dns-01 order cannot be renewed automatically",
                       {"rule": "dns_manual", "field": "auto_renew"})
    domains = _domains(body["domains"], challenge_type)
    account = acme_accounts.get_account(tenant_id, body["account_id"])
    if account.status != "valid":
        raise ApiError("invalid_state", "the ACME account is deactivated", {"status": account.status, "field": "account_id"})
    if provider_id:
        dns_providers.resolve_provider(tenant_id, provider_id, plugins=plugins, envelope=envelope)
    return _place_order(envelope, account, domains, body.get("key_type", "ec"), auto_renew, requested_by,
                        challenge_type=challenge_type, dns_provider_id=provider_id)


def _place_order(envelope: Any, account: AcmeAccount, domains: list[str], key_type: str, auto_renew: bool,
                 requested_by: str | None, renewal_of: AcmeOrder | None = None, *, challenge_type: str = "http-01",
                 dns_provider_id: str | None = None) -> AcmeOrder:
    _, key_pem = generate_leaf_key(key_type, KEY_TYPES[key_type])
    csr_pem = crypto_util.make_csr(key_pem.encode(), domains)
    conn = acme_accounts.connect_account(envelope, account)
    # RFC 9773 5: a renewal says which certificate it replaces, when the CA knows renewal information.
    replaces = renewal_of.ari_cert_id if renewal_of is not None and acme_client.renewal_info_url(conn) else None
    try:
        orderr = acme_client.new_order(conn, csr_pem, replaces)
    except _UPSTREAM_ERRORS as exc:
        raise ApiError("acme_upstream_error", f"the ACME CA refused the order: {acme_client.describe(exc)}") from exc
    order_id = new_id()
    challenges = []
    for authzr in orderr.authorizations:
        challb = next((c for c in authzr.body.challenges if c.chall.typ == challenge_type), None)
        if challb is None:
            raise ApiError("acme_upstream_error",
                           f"the ACME CA offers no {challenge_type} challenge for {authzr.body.identifier.value}")
        # validation(): http-01's key authorization, dns-01's TXT value (its SHA-256 digest, base64url).
        challenges.append(dict(
            order=order_id, domain=authzr.body.identifier.value, type=challenge_type, token=challb.chall.encode("token"),
            key_authorization=challb.chall.validation(conn.key), url=challb.uri, authorization_url=authzr.uri,
            status=authzr.body.status.name, active=authzr.body.status.name == "pending",
        ))
    sealed = envelope.seal(key_pem.encode(), order_context(order_id))
    with write_transaction():
        order = AcmeOrder.create(
            id=order_id, tenant=account.tenant_id, account=account.id, status="pending", domains=domains,
            challenge_type=challenge_type, dns_provider_id=dns_provider_id, key_type=key_type, auto_renew=auto_renew, order_url=orderr.uri,
            finalize_url=orderr.body.finalize, csr_pem=csr_pem.decode(), key_ciphertext=sealed, requested_by=requested_by,
            renewal_of=renewal_of.id if renewal_of is not None else None, replaces=replaces,
        )
        for row in challenges:
            AcmeChallenge.create(**row)
    log.info("acme order placed", extra={"tenant_id": account.tenant_id, "order_id": order_id, "domains": domains,
                                         "renewal_of": renewal_of.id if renewal_of is not None else None,
                                         "replaces": replaces})
    return order


def drive_due_orders(envelope: Any, now: dt.datetime | None = None, *, plugins: PluginHost) -> int:
    """One step for every unfinished order whose next attempt is due (the ``acme.orders`` job); returns how many."""
    now_naive = as_naive_utc(now) if now else utcnow()
    due = list(AcmeOrder.select().where(AcmeOrder.status.in_(ACTIVE_STATUSES) & (AcmeOrder.next_attempt_at <= now_naive)))
    for order in due:
        try:
            step_order(envelope, order, plugins=plugins)
        except (HsmError, peewee.OperationalError, peewee.InterfaceError):
            raise  # the environment's failure: the job runner logs it and tries again next interval
        except Exception as exc:  # noqa: BLE001 - our bug with one order must neither stop the others nor spin
            log.exception("acme order step crashed", extra={"order_id": order.id})
            _schedule(order, None, error=f"internal error: {type(exc).__name__}", failed=True)
            _cleanup_if_ended(envelope, plugins, order)
    retry_cleanups(envelope, now_naive, plugins=plugins)
    return len(due)


class _Dns01:
    """The order's DNS provider and propagation servers, resolved at first use within one step."""

    def __init__(self, envelope: Any, plugins: PluginHost, order: AcmeOrder) -> None:
        self.envelope, self.plugins, self.order = envelope, plugins, order
        self._provider: DnsProvider | None = None

    @property
    def provider(self) -> DnsProvider:
        if self._provider is None:
            if not self.order.dns_provider_id:
                raise DnsProviderError("the order has no DNS provider")
            self._provider = dns_providers.resolve_provider(self.order.tenant_id, self.order.dns_provider_id,
                                                            plugins=self.plugins, envelope=self.envelope)
        return self._provider

    def present(self, row: AcmeChallenge) -> None:
        """Put the challenge's TXT value up (idempotent) and start its propagation deadline."""
        provider = self.provider
        provider.present(None, dns01_txt_name(row.domain), row.key_authorization, DNS01_TTL)
        now = utcnow()
        deadline = now + dt.timedelta(seconds=float(provider.propagation_timeout))
        with write_transaction():
            AcmeChallenge.update(presented_at=now, propagation_deadline=deadline).where(AcmeChallenge.id == row.id).execute()
        row.presented_at, row.propagation_deadline = now, deadline

    def propagated(self, row: AcmeChallenge) -> bool:
        """One query round against every authoritative server; PropagationTimeout once the deadline passed."""
        fqdn = dns01_txt_name(row.domain)
        lagging = check_txt_once(fqdn, row.key_authorization, propagation_servers(self.provider, fqdn))
        if not lagging:
            return True
        if utcnow() >= row.propagation_deadline:
            raise PropagationTimeout(f"TXT value at {fqdn} not served by every authoritative server after "
                                     f"{float(self.provider.propagation_timeout):g}s: "
                                     + "; ".join(f"{server}: {why}" for server, why in lagging.items()))
        return False

    def next_poll(self) -> dt.datetime:
        return utcnow() + dt.timedelta(seconds=float(self.provider.propagation_interval))


def step_order(envelope: Any, order: AcmeOrder, *, plugins: PluginHost) -> None:
    """Move ``order`` one step; an upstream failure is recorded on the order and retried later, never raised."""
    try:
        conn = acme_accounts.connect_account(envelope, order.account)
        if order.status == "pending":
            retry_after = _step_authorizations(conn, order, _Dns01(envelope, plugins, order))
        else:
            retry_after = _step_finalization(envelope, conn, order, plugins)
    except PropagationTimeout as exc:
        _finish(order, "invalid", str(exc))
    except (ApiError, DnsProviderError, *_UPSTREAM_ERRORS) as exc:
        if isinstance(exc, ApiError):
            message = exc.message
        elif isinstance(exc, DnsProviderError):
            message = f"DNS provider: {exc}"
        else:
            message = acme_client.describe(exc)
        _schedule(order, None, error=message, failed=True)
    else:
        if order.status in ACTIVE_STATUSES:
            _schedule(order, retry_after)
    _cleanup_if_ended(envelope, plugins, order)


def _cleanup_if_ended(envelope: Any, plugins: PluginHost, order: AcmeOrder,
                      rows: list[AcmeChallenge] | None = None) -> None:
    """Take an ended order's dns-01 TXT records (``rows``, default: all still up) down, valid or not.

    Idempotent: providers delete exactly the value, a missing one is success. A removal the provider refuses
    keeps ``presented_at``, records the refusal on the challenge and is tried again by :func:`retry_cleanups`
    after a backoff; after ``MAX_CLEANUP_ATTEMPTS`` it is left for the operator (still shown on the order).
    """
    if order.status in ACTIVE_STATUSES or order.challenge_type != "dns-01":
        return
    if rows is None:
        rows = list(AcmeChallenge.select().where((AcmeChallenge.order == order.id) & AcmeChallenge.presented_at.is_null(False)))
    if not rows:
        return
    dns01 = _Dns01(envelope, plugins, order)
    for row in rows:
        try:
            dns01.provider.cleanup(None, dns01_txt_name(row.domain), row.key_authorization)
        except (ApiError, DnsProviderError) as exc:
            _cleanup_failed(order, row, exc.message if isinstance(exc, ApiError) else str(exc))
            continue
        with write_transaction():
            AcmeChallenge.update(presented_at=None, cleanup_next_at=None, cleanup_error=None).where(
                AcmeChallenge.id == row.id).execute()


def _cleanup_failed(order: AcmeOrder, row: AcmeChallenge, error: str) -> None:
    attempts = row.cleanup_attempts + 1
    delay = min(CLEANUP_RETRY_MAX, CLEANUP_RETRY_FIRST * 2 ** min(attempts - 1, 16))
    next_at = utcnow() + delay if attempts < MAX_CLEANUP_ATTEMPTS else None
    with write_transaction():
        AcmeChallenge.update(cleanup_attempts=attempts, cleanup_next_at=next_at, cleanup_error=error).where(
            AcmeChallenge.id == row.id).execute()
    extra = {"order_id": order.id, "challenge_id": row.id, "error": error, "attempts": attempts}
    if next_at is None:
        log.error("acme dns-01 cleanup given up: remove the TXT record by hand", extra=extra)
    else:
        log.warning("acme dns-01 cleanup failed", extra={**extra, "retry_in_seconds": int(delay.total_seconds())})


def retry_cleanups(envelope: Any, now: dt.datetime | None = None, *, plugins: PluginHost) -> int:
    """Try again every refused dns-01 record removal whose backoff ran out (part of the ``acme.orders`` job)."""
    now_naive = as_naive_utc(now) if now else utcnow()
    due = list(AcmeChallenge.select().join(AcmeOrder).where(
        AcmeChallenge.presented_at.is_null(False) & (AcmeChallenge.cleanup_next_at <= now_naive)
        & AcmeOrder.status.not_in(ACTIVE_STATUSES)))
    by_order: dict[str, list[AcmeChallenge]] = {}
    for row in due:
        by_order.setdefault(row.order_id, []).append(row)
    for rows in by_order.values():
        _cleanup_if_ended(envelope, plugins, rows[0].order, rows)
    return len(due)


def _schedule(order: AcmeOrder, retry_after: dt.datetime | None, *, error: str | None = None, failed: bool = False) -> None:
    attempts = order.attempts + 1
    now = utcnow()
    if failed and attempts >= MAX_FAILED_ATTEMPTS:
        _finish(order, "invalid", f"given up after {attempts} failed attempts; last: {error}")
        return
    backoff = now + dt.timedelta(seconds=min(MAX_BACKOFF_SECONDS, 2 ** min(attempts - 1, 6)))
    next_at = max(backoff, as_naive_utc(retry_after)) if retry_after and not failed else backoff
    if failed:
        log.warning("acme order step failed", extra={"order_id": order.id, "error": error, "attempts": attempts})
    with write_transaction():
        AcmeOrder.update(attempts=attempts, next_attempt_at=next_at, updated_at=now,
                         error=error).where(AcmeOrder.id == order.id).execute()


def _step_authorizations(conn: acme_client.Connection, order: AcmeOrder, dns01: _Dns01) -> dt.datetime | None:
    """Answer unanswered challenges and poll authorizations; finalize once all are valid.

    A dns-01 challenge is answered only once its TXT value is served by every authoritative server.
    """
    retry_after = None
    all_valid = True
    for row in order_challenges(order):
        if row.status == "valid":
            continue
        authzr, response = conn.client.poll(messages.AuthorizationResource(uri=row.authorization_url, body=messages.Authorization()))
        status = authzr.body.status.name
        challb = next((c for c in authzr.body.challenges if c.uri == row.url), None)
        if status == "invalid" or status in ("deactivated", "expired", "revoked"):
            problem = challb.error if challb is not None and challb.error is not None else None
            _finish(order, "invalid", f"{row.domain}: authorization {status}"
                    + (f": {acme_client.describe(problem)}" if problem else ""))
            return None
        if status == "pending" and row.answered_at is None and challb is not None:
            if row.type == "dns-01" and order.dns_provider_id is None:
                # Manual: the operator publishes the value and answers with complete; until then, look rarely.
                all_valid = False
                retry_after = _later(retry_after, utcnow() + MANUAL_DNS01_POLL)
                continue
            if row.type == "dns-01":
                if row.presented_at is None:
                    dns01.present(row)
                if not dns01.propagated(row):
                    all_valid = False
                    retry_after = _later(retry_after, dns01.next_poll())
                    continue
            _answer(conn, row, challb)
        if status != "valid":
            all_valid = False
            retry_after = _later(retry_after, acme_client.retry_after_utc(response))
        else:
            with write_transaction():
                AcmeChallenge.update(status="valid").where(AcmeChallenge.id == row.id).execute()
    if not all_valid:
        return retry_after
    response = conn.client.net.post(order.order_url, None, new_nonce_url=conn.client.directory["newNonce"])
    body = messages.Order.from_json(response.json())
    if body.status.name == "ready":
        orderr = messages.OrderResource(body=body, uri=order.order_url, csr_pem=order.csr_pem.encode())
        conn.client.begin_finalization(orderr)
    with write_transaction():
        AcmeOrder.update(status="processing", attempts=0, updated_at=utcnow()).where(AcmeOrder.id == order.id).execute()
    order.status, order.attempts = "processing", 0
    return None


def _step_finalization(envelope: Any, conn: acme_client.Connection, order: AcmeOrder,
                       plugins: PluginHost | None) -> dt.datetime | None:
    """Poll a finalized order; store the certificate once the CA issued it."""
    response = conn.client.net.post(order.order_url, None, new_nonce_url=conn.client.directory["newNonce"])
    body = messages.Order.from_json(response.json())
    status = body.status.name
    if status == "invalid":
        _finish(order, "invalid", acme_client.describe(body.error) if body.error else "the CA declared the order invalid")
        return None
    if status == "ready":  # a finalize request that was lost (crash between placing and recording it)
        conn.client.begin_finalization(messages.OrderResource(body=body, uri=order.order_url, csr_pem=order.csr_pem.encode()))
        return None
    if status != "valid" or body.certificate is None:
        return acme_client.retry_after_utc(response)
    chain = conn.client.net.post(body.certificate, None, new_nonce_url=conn.client.directory["newNonce"]).text
    _store_certificate(envelope, conn, order, chain, plugins)
    return None


def _answer(conn: acme_client.Connection, row: AcmeChallenge, challb: messages.ChallengeBody) -> None:
    conn.client.answer_challenge(challb, challb.chall.response(conn.key))
    with write_transaction():
        AcmeChallenge.update(answered_at=utcnow(), status="processing").where(AcmeChallenge.id == row.id).execute()
    row.answered_at = utcnow()


def _later(a: dt.datetime | None, b: dt.datetime | None) -> dt.datetime | None:
    return max(x for x in (a, b) if x is not None) if (a or b) else None


class _AlreadyStored(Exception):
    """Another worker stored this order's certificate first (a refresh racing the job)."""


def _store_certificate(envelope: Any, conn: acme_client.Connection, order: AcmeOrder, chain_pem: str,
                       plugins: PluginHost | None) -> None:
    certs = read_certificates(chain_pem, "certificate")
    leaf, issuers = certs[0], certs[1:]
    ari_cert_id = acme_client.ari_cert_id(leaf.asn1)
    renew_after = window = next_check = None
    if order.auto_renew:
        renew_after = renewal_time(as_naive_utc(leaf.not_before), as_naive_utc(leaf.not_after))
        if ari_cert_id is not None:
            window, next_check = _renewal_info(conn, order, ari_cert_id)
            if window is not None:
                renew_after = pick_renewal_time(window)
    key_pem = envelope.open(order.key_ciphertext, order_context(order.id))
    cert_id = new_id()
    sealed = envelope.seal(key_pem, private_key_context(cert_id))
    key_type, key_size = public_key_shape(leaf)
    now = utcnow()
    try:
        with write_transaction():
            Certificate.create(
                id=cert_id, tenant=order.tenant_id, ca=None, serial_number=serial_to_hex(leaf.serial_number),
                source="acme", common_name=subject_common_name(leaf), sans=stored_sans(leaf), key_type=key_type, key_size=key_size,
                not_before=as_naive_utc(leaf.not_before), not_after=as_naive_utc(leaf.not_after),
                certificate_der=leaf.der, fingerprint_sha256=leaf.fingerprint, tags={"acme_order_id": order.id},
                private_key_ciphertext=sealed, requested_by=order.requested_by,
                renewed_from=order.renewal_of.certificate_id if order.renewal_of_id else None,
            )
            if issuers:
                CertificateChain.create(certificate=cert_id, chain_pem="".join(
                    asn1_pem.armor("CERTIFICATE", c.der).decode("ascii") for c in issuers))
            # Conditional: of two workers downloading at once, exactly one records its copy.
            claimed = (AcmeOrder.update(certificate=cert_id, status="valid", error=None, updated_at=now, renew_after=renew_after,
                                        ari_cert_id=ari_cert_id, ari_next_check=next_check,
                                        renewal_window_start=window.start if window else None,
                                        renewal_window_end=window.end if window else None)
                       .where((AcmeOrder.id == order.id) & (AcmeOrder.status == "processing")).execute())
            if claimed != 1:
                raise _AlreadyStored
            AcmeChallenge.update(active=False).where(AcmeChallenge.order == order.id).execute()
            if order.renewal_of_id:
                # Renewed: the old order's certificate is replaced, and it is not renewed again.
                AcmeOrder.update(renewal_failures=0, renewal_error=None, renew_after=None, updated_at=now).where(
                    AcmeOrder.id == order.renewal_of_id).execute()
    except (_AlreadyStored, peewee.IntegrityError):
        order.status = AcmeOrder.get_by_id(order.id).status
        return
    order.status, order.error = "valid", None
    log.info("acme certificate issued", extra={"order_id": order.id, "certificate_id": cert_id})
    stored = Certificate.get_by_id(cert_id)
    if order.renewal_of_id and order.renewal_of.certificate_id:
        events.notify_renewed(plugins, stored, order.renewal_of.certificate_id)
    else:
        events.notify_issued(plugins, stored)


def _finish(order: AcmeOrder, status: str, error: str | None) -> None:
    """End the order: record the outcome and stop serving its challenges (on failure too)."""
    with write_transaction():
        AcmeOrder.update(status=status, error=error, updated_at=utcnow()).where(
            (AcmeOrder.id == order.id) & AcmeOrder.status.in_(ACTIVE_STATUSES)).execute()
        AcmeChallenge.update(active=False).where(AcmeChallenge.order == order.id).execute()
        if status == "invalid" and order.renewal_of_id:
            _renewal_failed(order.renewal_of, f"renewal order {order.id} failed: {error}")
    order.status, order.error = status, error
    if status == "invalid":
        log.warning("acme order failed", extra={"order_id": order.id, "error": error})


def refresh_order(envelope: Any, tenant_id: str, order_id: str, *, plugins: PluginHost) -> AcmeOrder:
    """``POST /orders/{id}/refresh``: re-poll the CA now instead of at the next scheduled attempt."""
    order = get_order(tenant_id, order_id)
    if order.status in ACTIVE_STATUSES:
        step_order(envelope, order, plugins=plugins)
    return get_order(tenant_id, order_id)


def complete_challenge(envelope: Any, tenant_id: str, challenge_id: str, *, plugins: PluginHost) -> AcmeOrder:
    """``POST /challenges/{id}/complete``: answer the challenge at the CA now; returns its order.

    For dns-01 this skips the propagation check (the TXT record is put up first if the job has not yet): for an
    operator who knows the record is served. Manual dns-01 orders are answered only this way: publish the
    challenge's ``dns01_txt_value`` at its ``dns01_txt_name``, then complete it. 404 for a challenge of another
    tenant, 409 once its order ended or its authorization is no longer pending; a challenge already answered is
    left as it is (200).
    """
    row = (AcmeChallenge.select().join(AcmeOrder)
           .where((AcmeChallenge.id == challenge_id) & (AcmeOrder.tenant == tenant_id)).first())
    if row is None:
        raise not_found("ACME challenge")
    order = row.order
    if order.status not in ACTIVE_STATUSES:
        raise ApiError("invalid_state", f"the challenge's order is {order.status}", {"status": order.status})
    if row.answered_at is not None:
        return order
    conn = acme_accounts.connect_account(envelope, order.account)
    try:
        authzr, _ = conn.client.poll(messages.AuthorizationResource(uri=row.authorization_url, body=messages.Authorization()))
        challb = next((c for c in authzr.body.challenges if c.uri == row.url), None)
        if authzr.body.status.name != "pending" or challb is None:
            raise ApiError("invalid_state", f"the authorization of {row.domain} is {authzr.body.status.name}",
                           {"status": authzr.body.status.name})
        if row.type == "dns-01" and row.presented_at is None and order.dns_provider_id is not None:
            _Dns01(envelope, plugins, order).present(row)
        _answer(conn, row, challb)
        with write_transaction():  # look at the CA's verdict soon, not at the manual order's slow pace
            AcmeOrder.update(next_attempt_at=utcnow(), attempts=0).where(AcmeOrder.id == order.id).execute()
    except DnsProviderError as exc:
        raise ApiError("dns_provider_error", f"DNS provider: {exc}") from exc
    except _UPSTREAM_ERRORS as exc:
        raise ApiError("acme_upstream_error", f"the ACME CA refused the answer: {acme_client.describe(exc)}") from exc
    log.info("acme challenge completed", extra={"order_id": order.id, "challenge_id": row.id})
    return get_order(tenant_id, order.id)


def http01_key_authorization(token: str) -> str | None:
    """What to answer at ``/.well-known/acme-challenge/{token}``, while its order is unfinished; else None."""
    row = (AcmeChallenge.select(AcmeChallenge.key_authorization)
           .where((AcmeChallenge.token == token) & (AcmeChallenge.type == "http-01") & AcmeChallenge.active)
           .first())
    return row.key_authorization if row is not None else None


def tls_alpn01_key_authorization(domain: str) -> str | None:
    """The key authorization to answer a tls-alpn-01 handshake for ``domain`` with, while its order is unfinished.

    RFC 8737: the validator names the domain in SNI (lower-cased, no trailing dot). Several unfinished orders for
    one name would each have their own value; the newest challenge wins (the older orders' validations fail).
    """
    name = domain.rstrip(".").lower()
    row = (AcmeChallenge.select(AcmeChallenge.key_authorization)
           .where((AcmeChallenge.domain == name) & (AcmeChallenge.type == "tls-alpn-01") & AcmeChallenge.active)
           .order_by(AcmeChallenge.created_at.desc(), AcmeChallenge.id.desc()).first())
    return row.key_authorization if row is not None else None


def order_chain_pem(order: AcmeOrder) -> str | None:
    """The issuer chain (PEM, issuer first) delivered with the order's certificate, or None."""
    if order.certificate_id is None:
        return None
    row = CertificateChain.get_or_none(CertificateChain.certificate == order.certificate_id)
    return row.chain_pem if row is not None else None


def revoke_upstream(envelope: Any, certificate: Certificate, reason: str) -> None:
    """Revoke an ACME-issued certificate at its CA (RFC 8555 7.6), signed by the account that ordered it.

    ``reason`` is an RFC 5280 reason name as the API takes it. 422 for a certificate that did not come from an
    ACME order of ours, 409 when that account is deactivated, 502 when the CA refuses.
    """
    order = AcmeOrder.get_or_none((AcmeOrder.tenant == certificate.tenant_id) & (AcmeOrder.certificate == certificate.id))
    if certificate.source != "acme" or order is None:
        raise ApiError("policy_violation", "use_acme: only certificates obtained through an ACME order can be revoked "
                       "through ACME", {"rule": "use_acme", "field": "use_acme"})
    if order.account.status != "valid":
        raise ApiError("invalid_state", "use_acme: the ACME account that ordered this certificate is deactivated",
                       {"status": order.account.status, "account_id": order.account_id})
    conn = acme_accounts.connect_account(envelope, order.account)
    code = int.from_bytes(CRLReason(asn1_reason(reason)).contents, "big")
    try:
        conn.client.revoke(x509.load_der_x509_certificate(certificate.certificate_der), code)
    except _UPSTREAM_ERRORS as exc:
        if isinstance(exc, messages.Error) and exc.code == "alreadyRevoked":
            return  # a repeated request: the CA's state is what was asked for
        raise ApiError("acme_upstream_error", f"the ACME CA refused the revocation: {acme_client.describe(exc)}") from exc
    log.info("acme certificate revoked upstream", extra={"certificate_id": certificate.id, "order_id": order.id,
                                                           "reason": reason})


# -- renewal ---------------------------------------------------------------------------------------------------

#: A renewal that failed is tried again after 5 minutes, doubling up to a day: never a tight loop against the
#: CA's rate limits, and still well inside the last third of a 90-day (or even a 6-day) certificate.
RENEWAL_RETRY_FIRST = dt.timedelta(minutes=5)
RENEWAL_RETRY_MAX = dt.timedelta(days=1)


def renewal_time(not_before: dt.datetime, not_after: dt.datetime) -> dt.datetime:
    """When to renew: once a third of the lifetime is left, minus a random jitter of up to 1/30 of it.

    The jitter spreads the renewals of certificates issued together (a fleet, a restart) over time.
    """
    lifetime = not_after - not_before
    jitter = lifetime * (secrets.randbelow(1000) / 1000 / 30)
    return (not_before + lifetime * 2 / 3 - jitter).replace(microsecond=0)


def pick_renewal_time(window: acme_client.RenewalWindow) -> dt.datetime:
    """A uniformly random second inside the CA's suggested window (RFC 9773 4.2); a past time means now."""
    span = int((window.end - window.start).total_seconds())
    return window.start + dt.timedelta(seconds=secrets.randbelow(span + 1))


#: When renewal information could not be read: try again in an hour (the third-of-lifetime time still holds).
ARI_ERROR_RETRY = dt.timedelta(hours=1)


def _renewal_info(conn: acme_client.Connection, order: AcmeOrder,
                  cert_id: str) -> tuple[acme_client.RenewalWindow | None, dt.datetime | None]:
    """The CA's window for the order's certificate and when to ask again; (None, None) when it offers none."""
    try:
        window = acme_client.fetch_renewal_info(conn, cert_id)
    except acme_client.AcmeUpstreamError as exc:
        log.warning("acme renewal information unavailable", extra={"order_id": order.id, "error": str(exc)})
        return None, utcnow() + ARI_ERROR_RETRY
    return window, window.next_check if window is not None else None


def refresh_renewal_info(envelope: Any, now: dt.datetime | None = None) -> int:
    """Ask the CA again for the renewal window of every certificate whose ``ari_next_check`` came (RFC 9773 4.3).

    A window that moved (earlier, say, ahead of a mass revocation) gets a new random renewal time in it; an
    unchanged one keeps its time. Returns how many were checked.
    """
    now_naive = as_naive_utc(now) if now else utcnow()
    due = list(AcmeOrder.select().where((AcmeOrder.status == "valid") & AcmeOrder.auto_renew
                                        & AcmeOrder.renew_after.is_null(False) & AcmeOrder.ari_cert_id.is_null(False)
                                        & (AcmeOrder.ari_next_check <= now_naive)))
    for order in due:
        try:
            conn = acme_accounts.connect_account(envelope, order.account)
        except (ApiError, *_UPSTREAM_ERRORS) as exc:
            log.warning("acme renewal information unavailable", extra={"order_id": order.id, "error": str(exc)})
            window, next_check = None, utcnow() + ARI_ERROR_RETRY
        else:
            window, next_check = _renewal_info(conn, order, order.ari_cert_id)
        changes: dict[str, Any] = {"ari_next_check": next_check, "updated_at": utcnow()}
        if window is not None and (window.start, window.end) != (order.renewal_window_start, order.renewal_window_end):
            changes.update(renewal_window_start=window.start, renewal_window_end=window.end,
                           renew_after=pick_renewal_time(window))
            log.info("acme renewal window", extra={"order_id": order.id, "start": window.start.isoformat(),
                                                   "end": window.end.isoformat(), "explanation_url": window.explanation_url})
        with write_transaction():  # conditional: a renewal placed meanwhile (renew_after cleared) stays placed
            AcmeOrder.update(**changes).where((AcmeOrder.id == order.id) & AcmeOrder.renew_after.is_null(False)).execute()
    return len(due)


def _renewal_failed(order: AcmeOrder, error: str) -> None:
    """Inside a write transaction: back the renewal of ``order`` off and record why on it."""
    failures = order.renewal_failures + 1
    delay = min(RENEWAL_RETRY_MAX, RENEWAL_RETRY_FIRST * 2 ** min(failures - 1, 16))
    AcmeOrder.update(renewal_failures=failures, renewal_error=error, renew_after=utcnow() + delay,
                     updated_at=utcnow()).where(AcmeOrder.id == order.id).execute()
    log.warning("acme renewal failed", extra={"order_id": order.id, "error": error, "failures": failures,
                                              "retry_in_seconds": int(delay.total_seconds())})


def renew_due_orders(envelope: Any, now: dt.datetime | None = None) -> int:
    """Place a renewal order for every valid auto-renewing order whose renewal time came (the ``acme.renewals`` job).

    Renewal information due for a check is refreshed first, so a window the CA moved earlier counts at once.

    A revoked certificate or a deactivated account is not renewed (and not looked at again); a CA that refuses the
    new order backs the renewal off (``renewal_failures``, ``renewal_error`` on the order). Returns the number of
    renewal orders placed.
    """
    now_naive = as_naive_utc(now) if now else utcnow()
    refresh_renewal_info(envelope, now_naive)
    due = list(AcmeOrder.select().where((AcmeOrder.status == "valid") & AcmeOrder.auto_renew
                                        & (AcmeOrder.renew_after <= now_naive)))
    placed = 0
    for order in due:
        certificate = order.certificate
        if certificate is None or certificate.status == "revoked" or order.account.status != "valid":
            with write_transaction():
                AcmeOrder.update(renew_after=None).where(AcmeOrder.id == order.id).execute()
            continue
        # Claim it first (conditional), so a second runner after a lease hand-over does not place a second order.
        with write_transaction():
            claimed = AcmeOrder.update(renew_after=None, updated_at=utcnow()).where(
                (AcmeOrder.id == order.id) & (AcmeOrder.renew_after == order.renew_after)).execute()
        if claimed != 1:
            continue
        try:
            _place_order(envelope, order.account, list(order.domains), order.key_type, True, order.requested_by,
                         renewal_of=order, challenge_type=order.challenge_type, dns_provider_id=order.dns_provider_id)
        except ApiError as exc:
            with write_transaction():
                _renewal_failed(order, exc.message)
            continue
        placed += 1
    return placed
