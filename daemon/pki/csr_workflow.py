"""The CSR approval workflow: requests made in the vault or imported, approved by a second person, then signed.

A request is either made here, its key pair generated in the HSM (sensitive, never extractable, sign-only; the
PKCS#10 request is signed by that key inside the token), or imported from PEM. It is then approved or rejected,
and an approved one is signed by a CA of the tenant into an ordinary certificate (``source: csr``).

Every status change follows ``TRANSITIONS``, the one table of what may happen: from which status, to which, with
which scope, and the actor rules (four eyes on approval, a reason on rejection). A change is a conditional UPDATE
(``WHERE status = <the transition's source>``) plus a ``csr_transitions`` row, in one transaction, so of two
requests racing on the same CSR exactly one wins and the other gets 409 naming the status it found.

No HTTP here: functions take plain values and raise ``ApiError``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
from dataclasses import dataclass
from typing import Any, Final

import peewee
from asn1crypto import x509
from cryptography import x509 as pyca_x509

from ..durations import parse_duration
from ..errors import ApiError, invalid_field, not_found
from ..paging import paginate
from ..schema.db import is_sqlite, write_transaction
from ..schema.models import Certificate, CsrRequest, CsrTransition, Tenant, new_id, utcnow
from . import extensions as ext
from .authorities import DEFAULT_KEY_SIZE, KEY_SIZES, get_ca
from .csr import CsrBuilder, CsrError, ParsedCsr, parse_csr, sign_csr
from .issuance import IssuanceContext, Issued, LeafSpec, policy_oids_for, sign_leaf
from .names import build_name, parse_rfc4514
from .profiles import DEFAULT_LEAF_EKU, max_tls_subscriber_validity, signature_algorithm_for
from .roles import ROLE_DEFAULTS

log = logging.getLogger(__name__)

STATUSES: Final = ("pending", "approved", "rejected", "signed")

#: Reading requests (list, get) needs this scope; what changes them is in TRANSITIONS.
READ_SCOPE: Final = "pki:issue"


@dataclass(frozen=True)
class Transition:
    """One allowed move of a request: ``action`` takes it from ``source`` to ``target``.

    ``source`` None: the action makes the request; ``target`` None: the action deletes it. ``four_eyes``: the
    token that requested may not take the action unless its tenant allows self-approval.
    """

    action: str
    source: str | None
    target: str | None
    scope: str
    reason_required: bool = False
    four_eyes: bool = False


#: The state machine: pending -> approved -> signed; pending -> rejected; pending and rejected may be deleted.
TRANSITIONS: Final[tuple[Transition, ...]] = (
    Transition("create", None, "pending", "pki:issue"),
    Transition("import", None, "pending", "pki:issue"),
    Transition("approve", "pending", "approved", "pki:admin", four_eyes=True),
    Transition("reject", "pending", "rejected", "pki:admin", reason_required=True),
    Transition("sign", "approved", "signed", "pki:admin"),
    Transition("delete", "pending", None, "pki:admin"),
    Transition("delete", "rejected", None, "pki:admin"),
)

ACTIONS: Final[tuple[str, ...]] = tuple(dict.fromkeys(t.action for t in TRANSITIONS))


def action_scope(action: str) -> str:
    """The scope an action needs (the same from every status it starts from)."""
    scopes = {t.scope for t in TRANSITIONS if t.action == action}
    if len(scopes) != 1:
        raise ValueError(f"unknown action {action!r}" if not scopes else f"action {action!r} has several scopes")
    return scopes.pop()


def invalid_state(action: str, status: str) -> ApiError:
    """409 for ``action`` on a request in ``status``, naming the status it is in and those it would need."""
    sources = [str(t.source) for t in TRANSITIONS if t.action == action]
    return ApiError(
        "invalid_state",
        f"cannot {action} a CSR that is {status}: {action} needs a {' or '.join(sources)} CSR",
        {"status": status, "action": action, "allowed_from": sources},
    )


def plan_transition(
    action: str,
    status: str | None,
    *,
    actor: str,
    requested_by: str | None = None,
    allow_self_approval: bool = False,
    reason: str | None = None,
) -> Transition:
    """The transition ``action`` takes from ``status``, or the ``ApiError`` refusing it.

    Pure: decides from the values given. 409 ``invalid_state`` when the action does not start from ``status``;
    400 when a reason is required and missing; 403 ``self_approval_refused`` when ``actor`` requested the CSR
    and the tenant does not allow self-approval. Raises ``ValueError`` for an action not in the table.
    """
    candidates = [t for t in TRANSITIONS if t.action == action]
    if not candidates:
        raise ValueError(f"unknown action {action!r}; expected one of {ACTIONS}")
    transition = next((t for t in candidates if t.source == status), None)
    if transition is None:
        raise invalid_state(action, str(status))
    if transition.reason_required and not reason:
        raise ApiError("missing_field", f"reason: is required to {action} a CSR", {"field": "reason"})
    if transition.four_eyes and actor == requested_by and not allow_self_approval:
        raise ApiError(
            "self_approval_refused",
            f"the token that requested this CSR may not {action} it: a second person must (four eyes); "
            "the tenant setting allow_self_approval lifts this",
            {"rule": "four_eyes", "requested_by": requested_by},
        )
    return transition


# ---------------------------------------------------------------------------------------------------------------
# Requests: subjects and names
# ---------------------------------------------------------------------------------------------------------------

# The API's subject field names (as in role settings and CA bodies) -> names.build_name's.
_NAME_FIELDS: Final = {
    "common_name": "common_name",
    "organization": "organization",
    "ou": "organizational_unit",
    "country": "country",
    "locality": "locality",
    "province": "state_or_province",
}
_API_FIELDS: Final = {name: api for api, name in _NAME_FIELDS.items()}

# Request field -> ext.subject_alt_name keyword, for the create body, and for the sign override and stored sans.
_CREATE_SAN_FIELDS: Final = {"san_dns": "dns", "san_ip": "ips", "san_email": "emails"}
_SIGN_SAN_FIELDS: Final = {"dns": "dns", "ip": "ips", "uri": "uris", "email": "emails"}

DEFAULT_VALIDITY: Final = dt.timedelta(days=365)
# The same clock-skew allowance a role gives by default.
_BACKDATE: Final = parse_duration(ROLE_DEFAULTS["not_before_duration"])
_MIN_RSA_BITS: Final = 2048


def _requested_subject(value: str | dict[str, str]) -> x509.Name:
    """The subject of a create body: an RFC 4514 string or an object of the API's subject fields."""
    try:
        fields = parse_rfc4514(value) if isinstance(value, str) else {_NAME_FIELDS[k]: v for k, v in value.items()}
        return build_name(fields)
    except ValueError as exc:
        raise invalid_field("subject", str(exc)) from None


def _check_names(body: dict[str, Any], fields: dict[str, str], prefix: str = "") -> dict[str, list[str]]:
    """The SAN entries of ``body`` by ``ext.subject_alt_name`` keyword, each list validated (400 naming it)."""
    names: dict[str, list[str]] = {}
    for field, keyword in fields.items():
        values = list(body.get(field, []))
        if values:
            try:
                ext.subject_alt_name(**{keyword: values})
            except ValueError as exc:
                raise invalid_field(f"{prefix}{field}", str(exc)) from None
        names[keyword] = values
    return names


def _subject_string(der: bytes) -> str:
    # pyca writes RFC 4514 exactly (escaping, most specific attribute first); asn1crypto has no such writer.
    return pyca_x509.load_der_x509_csr(der).subject.rfc4514_string()


def _store_request(csr_id: str, tenant_id: str, parsed: ParsedCsr, actor: str, transition: Transition,
                   hsm_key_id: str | None) -> CsrRequest:
    now = utcnow()
    with write_transaction():
        row = CsrRequest.create(
            id=csr_id,
            tenant=tenant_id,
            status=transition.target,
            csr_der=parsed.der,
            subject=_subject_string(parsed.der),
            subject_fields={_API_FIELDS[k]: v for k, v in parsed.subject_fields.items()},
            common_name=parsed.common_name,
            sans={"dns": list(parsed.dns_names), "ip": list(parsed.ip_addresses), "uri": list(parsed.uris),
                  "email": list(parsed.emails)},
            key_type=parsed.key_type,
            key_size=parsed.key_size,
            hsm_key_id=hsm_key_id,
            requested_by=actor,
            created_at=now,
            updated_at=now,
        )
        _record(row.id, transition, actor, None, now)
    return row


def create_request(hsm: Any, tenant_id: str, body: dict[str, Any], actor: str) -> CsrRequest:
    """``POST /csr``: a key pair generated in the HSM and a PKCS#10 request signed by it there; status pending.

    Everything the client sent is checked before the token is asked for a key. If anything after key
    generation fails, the new key is destroyed again, so the token holds no orphans.
    """
    transition = plan_transition("create", None, actor=actor)
    subject = _requested_subject(body["subject"])
    builder = CsrBuilder().subject_name(subject)
    names = _check_names(body, _CREATE_SAN_FIELDS)
    if any(names.values()):
        builder = builder.subject_alt_names(**names)
    elif len(subject.chosen) == 0:
        raise invalid_field("subject", "an empty subject needs at least one of san_dns, san_ip, san_email")
    key_type = body["key_type"]
    key_size = body.get("key_size", DEFAULT_KEY_SIZE[key_type])
    if key_size not in KEY_SIZES[key_type]:
        allowed = ", ".join(map(str, KEY_SIZES[key_type]))
        raise invalid_field("key_size", f"{key_size} is not valid for key_type {key_type} ({allowed})")
    algorithm = signature_algorithm_for(key_type, key_size)

    csr_id = new_id()
    key = hsm.generate_key_pair(key_type, key_size, label=f"scaivault-csr-{csr_id}")
    try:
        request = sign_csr(builder.public_key(key.public_key_info).build(algorithm), hsm.signer(key.key_id, algorithm))
        return _store_request(csr_id, tenant_id, parse_csr(request.dump()), actor, transition, key.key_id)
    except BaseException:
        hsm.destroy_key_pair(key.key_id)
        raise


def import_request(tenant_id: str, body: dict[str, Any], actor: str) -> CsrRequest:
    """``POST /csr/import``: a client's PEM request, its signature verified (400 otherwise); status pending.

    Its key must be one our CAs will certify: RSA of at least 2048 bits, or EC P-256/P-384 (422 otherwise).
    """
    transition = plan_transition("import", None, actor=actor)
    try:
        parsed = parse_csr(body["csr_pem"])
    except CsrError as exc:
        raise ApiError("invalid_csr", f"{exc.field}: {exc}", {"field": exc.field}) from None
    certifiable = parsed.key_size >= _MIN_RSA_BITS if parsed.key_type == "rsa" else parsed.key_size in KEY_SIZES["ec"]
    if not certifiable:
        raise ApiError(
            "policy_violation",
            f"a {parsed.key_type} key of {parsed.key_size} bits is not certified here; use RSA of at least "
            f"{_MIN_RSA_BITS} bits, or EC P-256 or P-384",
            {"rule": "key_size", "value": parsed.key_size},
        )
    return _store_request(new_id(), tenant_id, parsed, actor, transition, None)


# ---------------------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------------------


def get_request(tenant_id: str, csr_id: str) -> CsrRequest:
    """The tenant's request, or 404 (also for another tenant's: existence is never revealed)."""
    try:
        return CsrRequest.get((CsrRequest.id == csr_id) & (CsrRequest.tenant == tenant_id))
    except peewee.DoesNotExist:
        raise not_found("CSR") from None


def list_requests(tenant_id: str, status: str | None, limit: int, cursor: str | None) -> tuple[list[CsrRequest], str | None]:
    """One page of the tenant's requests, oldest first, optionally only those in ``status``."""
    query = CsrRequest.select().where(CsrRequest.tenant == tenant_id)
    if status is not None:
        if status not in STATUSES:
            raise invalid_field("status", f"must be one of {', '.join(STATUSES)}")
        query = query.where(CsrRequest.status == status)
    return paginate(query, CsrRequest, limit, cursor)


def transitions_of(row: CsrRequest) -> list[CsrTransition]:
    """The request's recorded history, oldest first."""
    return list(CsrTransition.select().where(CsrTransition.csr == row.id).order_by(CsrTransition.seq))


# ---------------------------------------------------------------------------------------------------------------
# Changing status
# ---------------------------------------------------------------------------------------------------------------


def _record(csr_id: str, transition: Transition, actor: str, reason: str | None, now: dt.datetime) -> None:
    last = CsrTransition.select(peewee.fn.MAX(CsrTransition.seq)).where(CsrTransition.csr == csr_id).scalar()
    CsrTransition.create(
        csr=csr_id, seq=(last or 0) + 1, from_status=transition.source, to_status=transition.target,
        actor=actor, reason=reason, created_at=now,
    )


def _lost_race(csr_id: str, action: str) -> ApiError:
    """The error for a conditional write that matched no row: the request moved on, or is gone."""
    current = CsrRequest.select(CsrRequest.status).where(CsrRequest.id == csr_id).scalar()
    return not_found("CSR") if current is None else invalid_state(action, current)


def record_transition(row: CsrRequest, transition: Transition, actor: str, *, reason: str | None = None,
                      certificate_id: str | None = None) -> None:
    """Move ``row`` along ``transition`` and record who did it; call inside ``write_transaction()``.

    The one place a request's status changes. The UPDATE only matches while the request is still in the
    transition's source status, so whoever commits second finds no row and gets 409 naming the status it is in
    now (404 if it was deleted meanwhile); nothing is written then.
    """
    now = utcnow()
    changes: dict[str, Any] = {"status": transition.target, "updated_at": now}
    if transition.action == "approve":
        changes.update(approved_by=actor, approved_at=now, reason=reason)
    elif transition.action == "reject":
        changes.update(rejected_by=actor, rejected_at=now, reason=reason)
    if certificate_id is not None:
        changes["certificate"] = certificate_id
    updated = (
        CsrRequest.update(changes)
        .where((CsrRequest.id == row.id) & (CsrRequest.status == transition.source))
        .execute()
    )
    if updated != 1:
        raise _lost_race(row.id, transition.action)
    _record(row.id, transition, actor, reason, now)


def _plan(row: CsrRequest, action: str, actor: str, reason: str | None = None) -> Transition:
    allow_self = Tenant.select(Tenant.allow_self_approval).where(Tenant.id == row.tenant_id).scalar()
    return plan_transition(action, row.status, actor=actor, requested_by=row.requested_by,
                           allow_self_approval=bool(allow_self), reason=reason)


def decide_request(tenant_id: str, csr_id: str, action: str, actor: str, reason: str | None) -> CsrRequest:
    """``approve`` or ``reject`` a request (``reason`` required to reject); returns it as it is now."""
    if action not in ("approve", "reject"):
        raise ValueError(f"decide_request takes approve or reject, not {action!r}")
    row = get_request(tenant_id, csr_id)
    transition = _plan(row, action, actor, reason)
    with write_transaction():
        record_transition(row, transition, actor, reason=reason)
    return get_request(tenant_id, csr_id)


def _with_common_name(common_name: str | None, names: dict[str, list[str]]) -> dict[str, list[str]]:
    """The names with the CN in front when it is a DNS name or an IP address missing from them.

    RFC 6125 6.4.4 and the CA/B Forum BR 7.1.4.3 want a CN repeated in the SAN; requests often carry only a CN.
    """
    if common_name is None:
        return names
    try:
        address = str(ipaddress.ip_address(common_name))
    except ValueError:
        address = None
    if address is not None:
        known = {str(ipaddress.ip_address(ip)) for ip in names["ips"]}
        return names if address in known else {**names, "ips": [address, *names["ips"]]}
    try:
        ext.validate_dns_name(common_name)
    except ValueError:
        return names  # a free-form CN ("Build Agent 7") is no name to put in a SAN
    if "." not in common_name or common_name in names["dns"]:
        return names
    return {**names, "dns": [common_name, *names["dns"]]}


def _default_validity(server_auth: bool) -> dt.timedelta:
    """365 days, cut for serverAuth certificates to the CA/B Forum maximum (BR 6.3.2) of the day.

    pkilint and the BR count validity inclusively (notAfter - notBefore + 1 s), and notBefore is backdated.
    """
    if not server_auth:
        return DEFAULT_VALIDITY
    not_before = dt.datetime.now(dt.timezone.utc) - _BACKDATE
    return min(DEFAULT_VALIDITY, max_tls_subscriber_validity(not_before) - _BACKDATE - dt.timedelta(seconds=1))


def sign_request(ctx: IssuanceContext, tenant_id: str, csr_id: str, body: dict[str, Any], actor: str) -> Issued:
    """``POST /csr/{id}/sign``: an approved request signed by one of the tenant's CAs, which must be able to issue.

    Names are the request's, or ``san`` when given (it replaces them all), with a DNS-name or IP CN added.
    Extended key usage is serverAuth + clientAuth, or clientAuth + emailProtection when there are email names
    (the CA/B Forum BR forbid emailProtection in a serverAuth certificate). Validity is ``validity_days`` or
    the default, never beyond the CA's notAfter. The certificate and the request's move to ``signed`` commit in
    one transaction; another sign that raced this one gets 409 and stores nothing.
    """
    row = get_request(tenant_id, csr_id)
    transition = _plan(row, "sign", actor)
    ca = get_ca(tenant_id, body["ca_id"])
    if "san" in body:
        names = _check_names(body["san"], _SIGN_SAN_FIELDS, prefix="san.")
    else:
        names = {keyword: row.sans[field] for field, keyword in _SIGN_SAN_FIELDS.items()}
    names = _with_common_name(row.common_name, names)
    ekus = ("client_auth", "email_protection") if names["emails"] else DEFAULT_LEAF_EKU
    server_auth = "server_auth" in ekus
    days = body.get("validity_days")
    spec = LeafSpec(
        subject=build_name({_NAME_FIELDS[k]: v for k, v in row.subject_fields.items()}),
        common_name=row.common_name,
        ttl=dt.timedelta(days=days) if days else _default_validity(server_auth),
        backdate=_BACKDATE,
        dns_names=tuple(names["dns"]),
        ip_addresses=tuple(names["ips"]),
        uris=tuple(names["uris"]),
        emails=tuple(names["emails"]),
        extended_key_usage=ekus,
        policy_oids=policy_oids_for(row.subject_fields) if server_auth else (),
    )
    # Stored requests were verified on the way in; parsing again yields the key as asn1crypto sees it.
    public_key_info = parse_csr(row.csr_der).public_key_info
    return sign_leaf(
        ctx, ca, spec, public_key_info, source="csr", requested_by=row.requested_by,
        before_commit=lambda certificate: record_transition(row, transition, actor, certificate_id=certificate.id),
    )


def _certificate_uses_key(tenant_id: str, public_key_der: bytes) -> bool:
    """Whether any certificate of the tenant certifies this public key.

    A request's PEM can be signed elsewhere (``/sign/{role}``, an external CA whose certificate is imported), so
    the request's status alone does not tell. The DER of a SubjectPublicKeyInfo appears verbatim in every
    certificate for that key, so the database searches the stored certificates for it.
    """
    if is_sqlite():
        found = peewee.fn.instr(Certificate.certificate_der, public_key_der) > 0
    else:
        # PostgreSQL spells it POSITION(needle IN haystack); peewee's fn cannot write the IN form.
        found = peewee.NodeList((peewee.SQL("POSITION("), peewee.Value(public_key_der), peewee.SQL("IN"),
                                 Certificate.certificate_der, peewee.SQL(") > 0")))
    return Certificate.select().where((Certificate.tenant == tenant_id) & found).exists()


def delete_request(hsm: Any, tenant_id: str, csr_id: str, actor: str) -> bool:
    """``DELETE /csr/{id}``: a pending or rejected request, with its HSM key unless a certificate uses that key.

    The key is destroyed inside the deleting transaction, after the conditional DELETE won: an HSM failure
    leaves the request in place (503, try again), and a request another call moved on keeps its key.
    Returns whether a key was destroyed.
    """
    row = get_request(tenant_id, csr_id)
    transition = _plan(row, "delete", actor)
    destroy = row.hsm_key_id is not None and not _certificate_uses_key(
        tenant_id, parse_csr(row.csr_der).public_key_info.dump()
    )
    with write_transaction():
        deleted = CsrRequest.delete().where((CsrRequest.id == row.id) & (CsrRequest.status == transition.source)).execute()
        if deleted != 1:
            raise _lost_race(row.id, transition.action)
        if destroy:
            hsm.destroy_key_pair(row.hsm_key_id)
    log.info("csr deleted", extra={"csr_id": row.id, "tenant_id": tenant_id, "actor": actor,
                                   "hsm_key_id": row.hsm_key_id, "key_destroyed": destroy})
    return destroy
