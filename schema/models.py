"""Storage models. The tables themselves are made by the numbered migrations in ``schema/migrations``.

Portable by construction: string UUID keys, naive-UTC timestamps, JSON kept as text, bytes as BLOB/BYTEA, so
the same models run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import peewee

from .db import database


def new_id() -> str:
    return str(uuid.uuid4())


def utcnow() -> dt.datetime:
    """Now in UTC, naive (the database stores naive UTC), second precision like X.509 times."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)


class JSONField(peewee.TextField):
    """JSON kept as text, so it behaves the same on SQLite and PostgreSQL."""

    def db_value(self, value: Any) -> str | None:
        return None if value is None else json.dumps(value, separators=(",", ":"), sort_keys=True)

    def python_value(self, value: str | None) -> Any:
        return None if value is None else json.loads(value)


class BytesField(peewee.BlobField):
    """A blob that always reads back as ``bytes`` (SQLite hands out bytes, psycopg2 a memoryview)."""

    def python_value(self, value: Any) -> bytes | None:
        return None if value is None else bytes(value)


class BaseModel(peewee.Model):
    id = peewee.CharField(primary_key=True, max_length=36, default=new_id)

    class Meta:
        database = database
        legacy_table_names = False


class Tenant(BaseModel):
    name = peewee.CharField(max_length=128, unique=True)
    allow_self_approval = peewee.BooleanField(default=False)
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "tenants"


class ApiToken(BaseModel):
    """A bearer token. Only the SHA-256 of the secret is kept (see ``auth.hash_token``)."""

    tenant = peewee.ForeignKeyField(Tenant, backref="tokens", on_delete="CASCADE")
    token_hash = peewee.CharField(max_length=64, unique=True)
    scopes = peewee.TextField()  # space-separated, as in OAuth
    description = peewee.TextField(default="")
    created_at = peewee.DateTimeField(default=utcnow)
    revoked_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "api_tokens"

    @property
    def scope_set(self) -> frozenset[str]:
        return frozenset(self.scopes.split())


class CertificateAuthority(BaseModel):
    tenant = peewee.ForeignKeyField(Tenant, backref="cas", on_delete="CASCADE")
    name = peewee.CharField(max_length=128)
    common_name = peewee.CharField(max_length=64)
    ca_type = peewee.CharField(max_length=16)  # root | intermediate
    parent = peewee.ForeignKeyField("self", null=True, backref="children", on_delete="RESTRICT")
    key_type = peewee.CharField(max_length=8)  # rsa | ec
    key_size = peewee.IntegerField()
    hsm_key_id = peewee.CharField(max_length=64, unique=True)
    signature_algorithm = peewee.CharField(max_length=32)
    serial_number = peewee.CharField(max_length=40)
    subject_key_id = peewee.CharField(max_length=64)
    certificate_der = BytesField()
    path_len = peewee.IntegerField(null=True)
    not_before = peewee.DateTimeField()
    not_after = peewee.DateTimeField()
    status = peewee.CharField(max_length=16, default="active")  # active | revoked
    revoked_at = peewee.DateTimeField(null=True)
    revocation_reason = peewee.CharField(max_length=32, null=True)
    crl_number = peewee.BigIntegerField(default=0)
    crl_dirty = peewee.BooleanField(default=False)  # a revocation since its last CRL (see pki.crl_publication)
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "certificate_authorities"
        indexes = ((("tenant", "name"), True),)


class Certificate(BaseModel):
    """Every certificate a CA of ours signed (CA certificates too, ``source='ca'``), and imported ones.

    The unique (ca, serial_number) index is what makes serials unique per CA.
    """

    tenant = peewee.ForeignKeyField(Tenant, backref="certificates", on_delete="CASCADE")
    ca = peewee.ForeignKeyField(CertificateAuthority, null=True, backref="certificates", on_delete="RESTRICT")
    serial_number = peewee.CharField(max_length=40)
    source = peewee.CharField(max_length=16)  # ca | issued | signed | csr | imported | acme
    role_name = peewee.CharField(max_length=128, null=True)
    common_name = peewee.CharField(max_length=255, null=True)
    sans = JSONField(default=dict)
    key_type = peewee.CharField(max_length=8, null=True)
    key_size = peewee.IntegerField(null=True)
    not_before = peewee.DateTimeField()
    not_after = peewee.DateTimeField()
    certificate_der = BytesField()
    fingerprint_sha256 = peewee.CharField(max_length=64)
    status = peewee.CharField(max_length=16, default="valid")  # valid | revoked
    revoked_at = peewee.DateTimeField(null=True)
    revocation_reason = peewee.CharField(max_length=32, null=True)
    tags = JSONField(default=dict)
    description = peewee.TextField(default="")
    private_key_ciphertext = BytesField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    renewed_from = peewee.ForeignKeyField("self", null=True, backref="renewals", on_delete="SET NULL")
    requested_by = peewee.CharField(max_length=36, null=True)  # the API token's id

    class Meta:
        table_name = "certificates"
        indexes = (
            (("ca", "serial_number"), True),
            (("tenant", "fingerprint_sha256"), True),
            (("tenant", "created_at", "id"), False),
            (("tenant", "not_after"), False),
            (("tenant", "ca"), False),
        )


class Role(BaseModel):
    """An issuance policy. ``config`` holds the role's settings as the API shows them (see pki.roles)."""

    tenant = peewee.ForeignKeyField(Tenant, backref="roles", on_delete="CASCADE")
    name = peewee.CharField(max_length=128)
    ca = peewee.ForeignKeyField(CertificateAuthority, backref="roles", on_delete="RESTRICT")
    config = JSONField()
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "roles"
        indexes = ((("tenant", "name"), True),)


ALL_MODELS: tuple[type[BaseModel], ...] = (Tenant, ApiToken, CertificateAuthority, Certificate, Role)


class CsrRequest(BaseModel):
    """A certificate signing request in the approval workflow (see ``pki.csr_workflow``).

    ``hsm_key_id`` is set when the key pair was generated in the HSM for this request (the key never leaves it);
    imported requests have none. ``status`` changes only through ``csr_workflow.record_transition``.
    """

    tenant = peewee.ForeignKeyField(Tenant, backref="csr_requests", on_delete="CASCADE")
    status = peewee.CharField(max_length=16)  # pending | approved | rejected | signed
    csr_der = BytesField()
    subject = peewee.TextField()  # RFC 4514
    subject_fields = JSONField()  # the API's subject object: common_name, organization, ou, ...
    common_name = peewee.CharField(max_length=64, null=True)
    sans = JSONField()  # {"dns": [...], "ip": [...], "uri": [...], "email": [...]}
    key_type = peewee.CharField(max_length=8)
    key_size = peewee.IntegerField()
    hsm_key_id = peewee.CharField(max_length=64, null=True, unique=True)
    requested_by = peewee.CharField(max_length=36)  # API token ids, here and below
    approved_by = peewee.CharField(max_length=36, null=True)
    approved_at = peewee.DateTimeField(null=True)
    rejected_by = peewee.CharField(max_length=36, null=True)
    rejected_at = peewee.DateTimeField(null=True)
    reason = peewee.TextField(null=True)
    certificate = peewee.ForeignKeyField(Certificate, null=True, backref="csr_requests", on_delete="SET NULL")
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "csr_requests"
        indexes = (
            (("tenant", "created_at", "id"), False),
            (("tenant", "status", "created_at", "id"), False),
        )


class CsrTransition(BaseModel):
    """One recorded status change of a CSR request: who (token id), when, from, to and why."""

    csr = peewee.ForeignKeyField(CsrRequest, backref="transitions", on_delete="CASCADE")
    seq = peewee.IntegerField()
    from_status = peewee.CharField(max_length=16, null=True)  # None: the request was made
    to_status = peewee.CharField(max_length=16)
    actor = peewee.CharField(max_length=36)
    reason = peewee.TextField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "csr_transitions"
        indexes = ((("csr", "seq"), True),)


ALL_MODELS += (CsrRequest, CsrTransition)


class CertificateRevocationList(BaseModel):
    """A full or delta CRL we published; every worker serves the stored bytes. Numbers are unique per CA."""

    ca = peewee.ForeignKeyField(CertificateAuthority, backref="crls", on_delete="CASCADE")
    number = peewee.BigIntegerField()
    kind = peewee.CharField(max_length=8)  # full | delta
    base_number = peewee.BigIntegerField(null=True)  # delta CRLs: the full CRL they extend
    this_update = peewee.DateTimeField()
    next_update = peewee.DateTimeField()
    der = BytesField()
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "crls"
        indexes = (
            (("ca", "number"), True),
            (("ca", "kind", "number"), False),
        )


class JobLease(BaseModel):
    """Who runs a background job: the holder of an unexpired lease (see scaivault_pki.jobs)."""

    id = None
    name = peewee.CharField(max_length=64, primary_key=True)
    holder = peewee.CharField(max_length=128)
    expires_at = peewee.DateTimeField()

    class Meta:
        table_name = "job_leases"


ALL_MODELS += (CertificateRevocationList, JobLease)


class Secret(BaseModel):
    """A tenant's secret at a path; ``ciphertext`` is the envelope over its JSON data (see ``secret_store``)."""

    tenant = peewee.ForeignKeyField(Tenant, backref="secrets", on_delete="CASCADE")
    path = peewee.CharField(max_length=255)
    ciphertext = BytesField()
    version = peewee.IntegerField()
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "secrets"
        indexes = ((("tenant", "path"), True), (("tenant", "created_at", "id"), False))


class DnsProviderConfig(BaseModel):
    """A configured DNS provider: a plugin type and its config, secrets as references only."""

    tenant = peewee.ForeignKeyField(Tenant, backref="dns_providers", on_delete="CASCADE")
    name = peewee.CharField(max_length=128)
    type = peewee.CharField(max_length=64)
    config = JSONField()
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "dns_providers"
        indexes = ((("tenant", "name"), True), (("tenant", "created_at", "id"), False))


ALL_MODELS += (Secret, DnsProviderConfig)


class TrustAnchor(BaseModel):
    """A CA certificate a tenant trusts for ``/certificates/validate`` (see ``pki.trust``)."""

    tenant = peewee.ForeignKeyField(Tenant, backref="trust_anchors", on_delete="CASCADE")
    name = peewee.CharField(max_length=128)
    subject = peewee.TextField()  # RFC 4514, for display
    certificate_der = BytesField()
    fingerprint_sha256 = peewee.CharField(max_length=64)
    not_before = peewee.DateTimeField()
    not_after = peewee.DateTimeField()
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "trust_anchors"
        indexes = (
            (("tenant", "name"), True),
            (("tenant", "fingerprint_sha256"), True),
            (("tenant", "created_at", "id"), False),
        )


class TrustAnchorCrl(BaseModel):
    """The current CRL of one outside CA key (the anchor or a CA under it), used by validation."""

    tenant = peewee.ForeignKeyField(Tenant, backref="trust_anchor_crls", on_delete="CASCADE")
    trust_anchor = peewee.ForeignKeyField(TrustAnchor, backref="crls", on_delete="CASCADE")
    issuer_key = peewee.CharField(max_length=64)  # SHA-256 over the issuer's normalised name and public key
    issuer = peewee.TextField()  # RFC 4514, for display
    crl_der = BytesField()
    crl_number = peewee.CharField(max_length=50, null=True)  # decimal; up to 20 octets
    this_update = peewee.DateTimeField()
    next_update = peewee.DateTimeField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "trust_anchor_crls"
        indexes = ((("trust_anchor", "issuer_key"), True), (("tenant",), False))


class CertificateChain(BaseModel):
    """The chain (issuer first, PEM) that came with an imported certificate."""

    certificate = peewee.ForeignKeyField(Certificate, backref="imported_chain", on_delete="CASCADE", unique=True)
    chain_pem = peewee.TextField()
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "certificate_chains"


ALL_MODELS += (TrustAnchor, TrustAnchorCrl, CertificateChain)


class AcmeAccount(BaseModel):
    """An account at an ACME CA (see ``pki.acme_accounts``). The private key is sealed; the EAB key is never kept."""

    tenant = peewee.ForeignKeyField(Tenant, backref="acme_accounts", on_delete="CASCADE")
    name = peewee.CharField(max_length=128)
    provider = peewee.CharField(max_length=64)  # an AcmeCaBackend type_name
    environment = peewee.CharField(max_length=16)  # production | staging
    directory_url = peewee.CharField(max_length=2048)
    email = peewee.CharField(max_length=255)
    account_url = peewee.CharField(max_length=2048)  # the account's URL at the CA (its "kid")
    eab_kid = peewee.CharField(max_length=256, null=True)
    ca_bundle_pem = peewee.TextField(null=True)
    key_ciphertext = BytesField()
    status = peewee.CharField(max_length=16)  # valid | deactivated
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)
    deactivated_at = peewee.DateTimeField(null=True)
    # Key rollover in flight: the new key (sealed like key_ciphertext) until the CA is known to have it.
    next_key_ciphertext = BytesField(null=True)
    next_key_at = peewee.DateTimeField(null=True)  # when that rollover began
    key_rolled_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "acme_accounts"
        indexes = ((("tenant", "name"), True), (("tenant", "created_at", "id"), False))


ALL_MODELS += (AcmeAccount,)


class AcmeOrder(BaseModel):
    """An ACME order and where the background driver is with it (see ``pki.acme_orders``)."""

    tenant = peewee.ForeignKeyField(Tenant, backref="acme_orders", on_delete="CASCADE")
    account = peewee.ForeignKeyField(AcmeAccount, backref="orders", on_delete="RESTRICT")
    status = peewee.CharField(max_length=16)  # pending | processing | valid | invalid
    domains = JSONField()
    challenge_type = peewee.CharField(max_length=16)
    key_type = peewee.CharField(max_length=8)
    auto_renew = peewee.BooleanField()
    order_url = peewee.CharField(max_length=2048)
    finalize_url = peewee.CharField(max_length=2048)
    csr_pem = peewee.TextField()
    key_ciphertext = BytesField()  # the certificate's private key (PKCS#8 PEM), sealed to acme-order:{id}
    certificate = peewee.ForeignKeyField(Certificate, null=True, backref="acme_orders", on_delete="SET NULL")
    error = peewee.TextField(null=True)
    attempts = peewee.IntegerField(default=0)
    next_attempt_at = peewee.DateTimeField(default=utcnow)
    requested_by = peewee.CharField(max_length=36, null=True)
    renewal_of = peewee.ForeignKeyField("self", null=True, backref="renewals", on_delete="SET NULL", column_name="renewal_of")
    renew_after = peewee.DateTimeField(null=True)  # when the renewal job renews this order's certificate
    renewal_failures = peewee.IntegerField(default=0)
    renewal_error = peewee.TextField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)
    dns_provider_id = peewee.CharField(max_length=36, null=True)  # dns-01: the tenant's DNS provider (no FK: may go)
    # RFC 9773 renewal information, when the CA offers it: the certificate's ARI identifier, the suggested
    # window, when to ask again; and the ARI identifier of the certificate this (renewal) order replaces.
    ari_cert_id = peewee.CharField(max_length=255, null=True)
    renewal_window_start = peewee.DateTimeField(null=True)
    renewal_window_end = peewee.DateTimeField(null=True)
    ari_next_check = peewee.DateTimeField(null=True)
    replaces = peewee.CharField(max_length=255, null=True)

    class Meta:
        table_name = "acme_orders"
        indexes = ((("tenant", "created_at", "id"), False), (("status", "next_attempt_at"), False),
                   (("renew_after",), False), (("ari_next_check",), False))


class AcmeChallenge(BaseModel):
    """One challenge of an order; ``active`` ones are served (http-01) until the order ends."""

    order = peewee.ForeignKeyField(AcmeOrder, backref="challenges", on_delete="CASCADE")
    domain = peewee.CharField(max_length=255)
    type = peewee.CharField(max_length=16)
    token = peewee.CharField(max_length=255)
    key_authorization = peewee.CharField(max_length=512)
    url = peewee.CharField(max_length=2048)
    authorization_url = peewee.CharField(max_length=2048)
    status = peewee.CharField(max_length=16)
    answered_at = peewee.DateTimeField(null=True)
    active = peewee.BooleanField()
    created_at = peewee.DateTimeField(default=utcnow)
    presented_at = peewee.DateTimeField(null=True)  # dns-01: TXT record put up (null: not up, or cleaned up)
    propagation_deadline = peewee.DateTimeField(null=True)  # dns-01: give up waiting for propagation then
    # dns-01: a removal the provider refused is tried again at cleanup_next_at (backoff), the last refusal kept.
    cleanup_attempts = peewee.IntegerField(default=0)
    cleanup_next_at = peewee.DateTimeField(null=True)
    cleanup_error = peewee.TextField(null=True)

    class Meta:
        table_name = "acme_challenges"
        indexes = ((("order",), False), (("token",), False), (("presented_at",), False), (("domain", "type"), False))


ALL_MODELS += (AcmeOrder, AcmeChallenge)
