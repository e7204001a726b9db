"""Issuance and certificates over HTTP: thin translation to ``pki.issuance`` and ``pki.certificates``."""

from __future__ import annotations

from typing import Any

import falcon

from ..pki import certificates, issuance
from ..pki.authorities import certificate_pem
from ..schema.models import Certificate
from ..services import Services
from .http import read_json, read_optional_json, rfc3339, send_pem
from .validation import parse_limit


def certificate_view(row: Certificate, *, with_pem: bool = False) -> dict[str, Any]:
    view = {
        "id": row.id,
        "serial_number": row.serial_number,
        "ca_id": row.ca_id,
        "role": row.role_name,
        "source": row.source,
        "common_name": row.common_name,
        "sans": row.sans,
        "key_type": row.key_type,
        "key_size": row.key_size,
        "not_before": rfc3339(row.not_before),
        "not_after": rfc3339(row.not_after),
        "status": certificates.certificate_status(row),
        "revoked_at": rfc3339(row.revoked_at),
        "revocation_reason": row.revocation_reason,
        "tags": row.tags,
        "description": row.description,
        "private_key_stored": row.private_key_ciphertext is not None,
        "renewed_from": row.renewed_from_id,
        "fingerprint_sha256": row.fingerprint_sha256,
        "created_at": rfc3339(row.created_at),
    }
    if with_pem:
        view["certificate"] = certificate_pem(row.certificate_der)
    return view


def issued_view(issued: issuance.Issued) -> dict[str, Any]:
    """The answer of issue/sign/renew: the certificate, its chain, and the private key when we made it."""
    row = issued.certificate
    body = {
        "id": row.id,
        "certificate": certificate_pem(row.certificate_der),
        "ca_chain": [certificate_pem(ca.certificate_der) for ca in issued.chain],
        "serial_number": row.serial_number,
        "not_before": rfc3339(row.not_before),
        "not_after": rfc3339(row.not_after),
        "common_name": row.common_name,
        "sans": row.sans,
        "role": row.role_name,
        "private_key_stored": row.private_key_ciphertext is not None,
    }
    if issued.private_key_pem is not None:
        body["private_key"] = issued.private_key_pem
        body["private_key_type"] = row.key_type
    return body


def send_issued(resp: falcon.Response, issued: issuance.Issued, **extra: Any) -> None:
    """201 with the new certificate's location and the issue/sign/renew answer."""
    resp.status = falcon.HTTP_201
    resp.location = f"/v1/pki/certificates/{issued.certificate.id}"
    resp.media = {**issued_view(issued), **extra}


class IssuingResource:
    """A resource that issues: gives its responders the issuance context of this process."""

    def __init__(self, services: Services):
        self.services = services

    def context(self) -> issuance.IssuanceContext:
        return issuance.IssuanceContext(self.services.hsm, self.services.envelope, self.services.config.public_base_url,
                                        self.services.plugins)


class Issue(IssuingResource):
    scopes = {"POST": ("pki:issue",)}

    def on_post(self, req: falcon.Request, resp: falcon.Response, role: str) -> None:
        body = read_json(req, "issue", self.services.config.max_body_bytes)
        principal = req.context.principal
        issued = issuance.issue_certificate(self.context(), principal.tenant_id, role, body, principal.token_id)
        send_issued(resp, issued)


class Sign(IssuingResource):
    scopes = {"POST": ("pki:issue",)}

    def on_post(self, req: falcon.Request, resp: falcon.Response, role: str) -> None:
        body = read_json(req, "sign", self.services.config.max_body_bytes)
        principal = req.context.principal
        issued = issuance.sign_request(self.context(), principal.tenant_id, role, body, principal.token_id)
        send_issued(resp, issued)


class CertificateCollection:
    scopes = {"GET": ("pki:read",)}

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        flt = certificates.CertificateFilter.from_params(req.params)
        rows, cursor = certificates.list_certificates(
            req.context.principal.tenant_id, flt, parse_limit(req.get_param("limit")), req.get_param("cursor")
        )
        resp.media = {"items": [certificate_view(r) for r in rows], "next_cursor": cursor}


class CertificateItem:
    scopes = {"GET": ("pki:read",), "PATCH": ("pki:admin",)}

    def __init__(self, services: Services):
        self.services = services

    def on_get(self, req: falcon.Request, resp: falcon.Response, certificate_id: str) -> None:
        row = certificates.get_certificate(req.context.principal.tenant_id, certificate_id)
        resp.media = certificate_view(row, with_pem=True)

    def on_patch(self, req: falcon.Request, resp: falcon.Response, certificate_id: str) -> None:
        body = read_json(req, "update_certificate", self.services.config.max_body_bytes)
        row = certificates.update_certificate(req.context.principal.tenant_id, certificate_id, body)
        resp.media = certificate_view(row, with_pem=True)


class CertificatePem:
    scopes = {"GET": ("pki:read",)}

    def on_get(self, req: falcon.Request, resp: falcon.Response, certificate_id: str) -> None:
        row = certificates.get_certificate(req.context.principal.tenant_id, certificate_id)
        send_pem(resp, certificate_pem(row.certificate_der))


class CertificateRenew(IssuingResource):
    scopes = {"POST": ("pki:issue",)}

    def on_post(self, req: falcon.Request, resp: falcon.Response, certificate_id: str) -> None:
        body = read_optional_json(req, "renew_certificate", self.services.config.max_body_bytes)
        principal = req.context.principal
        row = certificates.get_certificate(principal.tenant_id, certificate_id)
        issued = issuance.renew_certificate(self.context(), principal.tenant_id, row, body, principal.token_id)
        send_issued(resp, issued)


class CertificatePrivateKey:
    """POST, not GET: a key is handed out by an explicit act, never by a cacheable or logged URL fetch."""

    scopes = {"POST": ("pki:issue",)}

    def __init__(self, services: Services):
        self.services = services

    def on_post(self, req: falcon.Request, resp: falcon.Response, certificate_id: str) -> None:
        pem = certificates.stored_private_key(self.services.envelope, req.context.principal.tenant_id, certificate_id)
        resp.set_header("Cache-Control", "no-store")
        resp.media = {"id": certificate_id, "private_key": pem}
