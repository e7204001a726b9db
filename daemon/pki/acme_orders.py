"""ACME orders: placed at once by the API, driven to a certificate by a background job, state in the database.

``create_order`` makes a fresh key and CSR, places the order and records its challenges (202: nothing waits for
validation). ``drive_due_orders`` (the ``acme.orders`` job) takes each unfinished order whose next attempt is due
and moves it one step: answer challenges, poll authorizations, finalize, poll, download. Every step reads its
state from the database, so an order survives a restart of the worker: whichever worker holds the job next
resumes it. Polls follow the CA's Retry-After, else back off exponentially (1 s doubling up to 60 s).
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
from ..schema.db import write_transaction
from ..schema.models import AcmeAccount, AcmeChallenge, AcmeOrder, Certificate, CertificateChain, new_id, utcnow
from ..times import as_naive_utc
from . import acme_accounts, acme_client
from .crl import asn1_reason
from .extensions import validate_dns_name
from .issuance import generate_leaf_key, private_key_context
from .serials import serial_to_hex
from .trust import _common_name, _names, public_key_shape, read_certificates

log = logging.getLogger("scaivault_pki.acme")

ACTIVE_STATUSES = ("pending", "processing")
#: The longest pause between two polls of one order (without a longer Retry-After from the CA).
MAX_BACKOFF_SECONDS = 60
#: An order whose CA keeps failing (network, 5xx) is given up after this many attempts in a row.
MAX_FAILED_ATTEMPTS = 30
KEY_TYPES = {"ec": 256, "rsa": 2048}
_UPSTREAM_ERRORS = (messages.Error, acme_errors.Error, requests.RequestException, acme_client.AcmeUpstreamError)


def order_context(order_id: str) -> bytes:
    return f"acme-order:{order_id}".encode()


def _domains(values: list[str]) -> list[str]:
    """The order's names, lower-cased, without trailing dots or repeats; 400 naming the first bad one."""
    seen: list[str] = []
    for index, raw in enumerate(values):
        name = raw.rstrip(".").lower()
        if name.startswith("*."):
            raise ApiError("policy_violation", f"domains[{index}]: wildcard names need dns-01, which is not yet available",
                           {"rule": "challenge_type", "field": f"domains[{index}]"})
        try:
            validate_dns_name(name, allow_wildcard=False)
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


def create_order(envelope: Any, tenant_id: str, body: dict[str, Any], requested_by: str | None) -> AcmeOrder:
    """Place an order at the account's CA and record it with its challenges; the job does the rest."""
    if body.get("challenge_type", "http-01") != "http-01":
        raise ApiError("policy_violation", f"challenge_type {body['challenge_type']}: not yet available (only http-01)",
                       {"rule": "challenge_type", "field": "challenge_type"})
    domains = _domains(body["domains"])
    account = acme_accounts.get_account(tenant_id, body["account_id"])
    if account.status != "valid":
        raise ApiError("invalid_state", "the ACME account is deactivated", {"status": account.status, "field": "account_id"})
    return _place_order(envelope, account, domains, body.get("key_type", "ec"), body.get("auto_renew", True), requested_by)


def _place_order(envelope: Any, account: AcmeAccount, domains: list[str], key_type: str, auto_renew: bool,
                 requested_by: str | None, renewal_of: AcmeOrder | None = None) -> AcmeOrder:
    _, key_pem = generate_leaf_key(key_type, KEY_TYPES[key_type])
    csr_pem = crypto_util.make_csr(key_pem.encode(), domains)
    conn = acme_accounts.connect_account(envelope, account)
    try:
        orderr = conn.client.new_order(csr_pem)
    except _UPSTREAM_ERRORS as exc:
        raise ApiError("acme_upstream_error", f"the ACME CA refused the order: {acme_client.describe(exc)}") from exc
    order_id = new_id()
    challenges = []
    for authzr in orderr.authorizations:
        challb = next((c for c in authzr.body.challenges if c.chall.typ == "http-01"), None)
        if challb is None:
            raise ApiError("acme_upstream_error", f"the ACME CA offers no http-01 challenge for {authzr.body.identifier.value}")
        challenges.append(dict(
            order=order_id, domain=authzr.body.identifier.value, type="http-01", token=challb.chall.encode("token"),
            key_authorization=challb.chall.validation(conn.key), url=challb.uri, authorization_url=authzr.uri,
            status=authzr.body.status.name, active=authzr.body.status.name == "pending",
        ))
    sealed = envelope.seal(key_pem.encode(), order_context(order_id))
    with write_transaction():
        order = AcmeOrder.create(
            id=order_id, tenant=account.tenant_id, account=account.id, status="pending", domains=domains,
            challenge_type="http-01", key_type=key_type, auto_renew=auto_renew, order_url=orderr.uri,
            finalize_url=orderr.body.finalize, csr_pem=csr_pem.decode(), key_ciphertext=sealed, requested_by=requested_by,
            renewal_of=renewal_of.id if renewal_of is not None else None,
        )
        for row in challenges:
            AcmeChallenge.create(**row)
    log.info("acme order placed", extra={"tenant_id": account.tenant_id, "order_id": order_id, "domains": domains,
                                         "renewal_of": renewal_of.id if renewal_of is not None else None})
    return order


def drive_due_orders(envelope: Any, now: dt.datetime | None = None) -> int:
    """One step for every unfinished order whose next attempt is due (the ``acme.orders`` job); returns how many."""
    now_naive = as_naive_utc(now) if now else utcnow()
    due = list(AcmeOrder.select().where(AcmeOrder.status.in_(ACTIVE_STATUSES) & (AcmeOrder.next_attempt_at <= now_naive)))
    for order in due:
        try:
            step_order(envelope, order)
        except (HsmError, peewee.OperationalError, peewee.InterfaceError):
            raise  # the environment's failure: the job runner logs it and tries again next interval
        except Exception as exc:  # noqa: BLE001 - our bug with one order must neither stop the others nor spin
            log.exception("acme order step crashed", extra={"order_id": order.id})
            _schedule(order, None, error=f"internal error: {type(exc).__name__}", failed=True)
    return len(due)


def step_order(envelope: Any, order: AcmeOrder) -> None:
    """Move ``order`` one step; an upstream failure is recorded on the order and retried later, never raised."""
    try:
        conn = acme_accounts.connect_account(envelope, order.account)
        if order.status == "pending":
            retry_after = _step_authorizations(conn, order)
        else:
            retry_after = _step_finalization(envelope, conn, order)
    except (ApiError, *_UPSTREAM_ERRORS) as exc:
        message = exc.message if isinstance(exc, ApiError) else acme_client.describe(exc)
        _schedule(order, None, error=message, failed=True)
        return
    if order.status in ACTIVE_STATUSES:
        _schedule(order, retry_after)


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


def _step_authorizations(conn: acme_client.Connection, order: AcmeOrder) -> dt.datetime | None:
    """Answer unanswered challenges and poll authorizations; finalize once all are valid."""
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
            conn.client.answer_challenge(challb, challb.chall.response(conn.key))
            with write_transaction():
                AcmeChallenge.update(answered_at=utcnow(), status="processing").where(AcmeChallenge.id == row.id).execute()
        if status != "valid":
            all_valid = False
            retry_after = _later(retry_after, _retry_after_header(response))
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


def _step_finalization(envelope: Any, conn: acme_client.Connection, order: AcmeOrder) -> dt.datetime | None:
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
        return _retry_after_header(response)
    chain = conn.client.net.post(body.certificate, None, new_nonce_url=conn.client.directory["newNonce"]).text
    _store_certificate(envelope, order, chain)
    return None


def _retry_after_header(response: requests.Response) -> dt.datetime | None:
    # RFC 8555 8.2 / RFC 9110: seconds or an HTTP date; acme's helper parses both (into local naive time).
    if "Retry-After" not in response.headers:
        return None
    local = acme_client.acme_client.ClientV2.retry_after(response, 1)
    return local.astimezone(dt.timezone.utc).replace(tzinfo=None)


def _later(a: dt.datetime | None, b: dt.datetime | None) -> dt.datetime | None:
    return max(x for x in (a, b) if x is not None) if (a or b) else None


class _AlreadyStored(Exception):
    """Another worker stored this order's certificate first (a refresh racing the job)."""


def _store_certificate(envelope: Any, order: AcmeOrder, chain_pem: str) -> None:
    certs = read_certificates(chain_pem, "certificate")
    leaf, issuers = certs[0], certs[1:]
    key_pem = envelope.open(order.key_ciphertext, order_context(order.id))
    cert_id = new_id()
    sealed = envelope.seal(key_pem, private_key_context(cert_id))
    key_type, key_size = public_key_shape(leaf)
    now = utcnow()
    try:
        with write_transaction():
            Certificate.create(
                id=cert_id, tenant=order.tenant_id, ca=None, serial_number=serial_to_hex(leaf.serial_number),
                source="acme", common_name=_common_name(leaf), sans=_names(leaf), key_type=key_type, key_size=key_size,
                not_before=as_naive_utc(leaf.not_before), not_after=as_naive_utc(leaf.not_after),
                certificate_der=leaf.der, fingerprint_sha256=leaf.fingerprint, tags={"acme_order_id": order.id},
                private_key_ciphertext=sealed, requested_by=order.requested_by,
                renewed_from=order.renewal_of.certificate_id if order.renewal_of_id else None,
            )
            if issuers:
                CertificateChain.create(certificate=cert_id, chain_pem="".join(
                    asn1_pem.armor("CERTIFICATE", c.der).decode("ascii") for c in issuers))
            # Conditional: of two workers downloading at once, exactly one records its copy.
            renew_after = renewal_time(as_naive_utc(leaf.not_before), as_naive_utc(leaf.not_after)) if order.auto_renew else None
            claimed = (AcmeOrder.update(certificate=cert_id, status="valid", error=None, updated_at=now, renew_after=renew_after)
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


def refresh_order(envelope: Any, tenant_id: str, order_id: str) -> AcmeOrder:
    """``POST /orders/{id}/refresh``: re-poll the CA now instead of at the next scheduled attempt."""
    order = get_order(tenant_id, order_id)
    if order.status in ACTIVE_STATUSES:
        step_order(envelope, order)
    return get_order(tenant_id, order_id)


def http01_key_authorization(token: str) -> str | None:
    """What to answer at ``/.well-known/acme-challenge/{token}``, while its order is unfinished; else None."""
    row = (AcmeChallenge.select(AcmeChallenge.key_authorization)
           .where((AcmeChallenge.token == token) & (AcmeChallenge.type == "http-01") & AcmeChallenge.active)
           .first())
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

    A revoked certificate or a deactivated account is not renewed (and not looked at again); a CA that refuses the
    new order backs the renewal off (``renewal_failures``, ``renewal_error`` on the order). Returns the number of
    renewal orders placed.
    """
    now_naive = as_naive_utc(now) if now else utcnow()
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
                         renewal_of=order)
        except ApiError as exc:
            with write_transaction():
                _renewal_failed(order, exc.message)
            continue
        placed += 1
    return placed
