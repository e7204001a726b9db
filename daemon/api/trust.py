"""Trust anchors, certificate import and chain validation over HTTP: thin translation to ``pki.trust``."""

from __future__ import annotations

import datetime as dt
from typing import Any

import falcon

from ..pki import trust
from ..pki.authorities import certificate_pem
from ..pki.serials import serial_to_hex
from ..pki.validation import PathCertificate, ValidationResult
from ..schema.models import TrustAnchor, TrustAnchorCrl
from ..services import Services
from .certificates import certificate_view
from .http import read_json, rfc3339
from .validation import parse_limit


def crl_view(row: TrustAnchorCrl) -> dict[str, Any]:
    return {
        "id": row.id,
        "issuer": row.issuer,
        "crl_number": row.crl_number,
        "this_update": rfc3339(row.this_update),
        "next_update": rfc3339(row.next_update),
        "updated_at": rfc3339(row.updated_at),
    }


def anchor_view(row: TrustAnchor, *, with_crls: bool = False) -> dict[str, Any]:
    view = {
        "id": row.id,
        "name": row.name,
        "subject": row.subject,
        "fingerprint_sha256": row.fingerprint_sha256,
        "not_before": rfc3339(row.not_before),
        "not_after": rfc3339(row.not_after),
        "certificate_pem": certificate_pem(row.certificate_der),
        "created_at": rfc3339(row.created_at),
    }
    if with_crls:
        view["crls"] = [crl_view(crl) for crl in trust.anchor_crls(row)]
    return view


def _path_entry(cert: PathCertificate) -> dict[str, Any]:
    return {
        "subject": cert.subject,
        "issuer": cert.pyca.issuer.rfc4514_string(),
        "serial_number": serial_to_hex(cert.serial_number),
        "fingerprint_sha256": cert.fingerprint,
        "not_before": rfc3339(cert.not_before),
        "not_after": rfc3339(cert.not_after),
    }


def validation_view(result: ValidationResult, at: dt.datetime) -> dict[str, Any]:
    """The reference's fields (valid, chain_valid, not_expired, not_revoked, trusted_anchor, errors, warnings)
    and, as extras, the path found (target first, anchor last) and the time validated at."""
    anchor = None
    if result.anchor is not None:
        anchor = {
            "type": result.anchor.kind,
            "id": result.anchor.id,
            "name": result.anchor.name,
            "subject": result.anchor.certificate.subject,
        }
    return {
        "valid": result.valid,
        "chain_valid": result.chain_valid,
        "not_expired": result.not_expired,
        "not_revoked": result.not_revoked,
        "trusted_anchor": anchor,
        "errors": [e.as_dict() for e in result.errors],
        "warnings": [w.as_dict() for w in result.warnings],
        "path": [_path_entry(c) for c in result.path],
        "validation_time": rfc3339(at),
        "revocation_checked": result.revocation_checked,
    }


class TrustAnchorCollection:
    scopes = {"GET": ("pki:read",), "POST": ("pki:admin",)}

    def __init__(self, services: Services):
        self.services = services

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        rows, cursor = trust.list_trust_anchors(
            req.context.principal.tenant_id, parse_limit(req.get_param("limit")), req.get_param("cursor")
        )
        resp.media = {"items": [anchor_view(r) for r in rows], "next_cursor": cursor}

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_json(req, "create_trust_anchor", self.services.config.max_body_bytes)
        row = trust.create_trust_anchor(req.context.principal.tenant_id, body)
        resp.status = falcon.HTTP_201
        resp.location = f"/v1/pki/trust-anchors/{row.id}"
        resp.media = anchor_view(row, with_crls=True)


class TrustAnchorItem:
    scopes = {"GET": ("pki:read",), "DELETE": ("pki:admin",)}

    def on_get(self, req: falcon.Request, resp: falcon.Response, anchor_id: str) -> None:
        resp.media = anchor_view(trust.get_trust_anchor(req.context.principal.tenant_id, anchor_id), with_crls=True)

    def on_delete(self, req: falcon.Request, resp: falcon.Response, anchor_id: str) -> None:
        trust.delete_trust_anchor(req.context.principal.tenant_id, anchor_id)
        resp.status = falcon.HTTP_204


class TrustAnchorCrlUpload:
    """A CRL of an outside CA (the anchor, or a CA under it) that validation uses for revocation."""

    scopes = {"POST": ("pki:admin",)}

    def __init__(self, services: Services):
        self.services = services

    def on_post(self, req: falcon.Request, resp: falcon.Response, anchor_id: str) -> None:
        body = read_json(req, "add_trust_anchor_crl", self.services.config.max_body_bytes)
        stored = trust.store_anchor_crl(req.context.principal.tenant_id, anchor_id, body)
        resp.status = falcon.HTTP_201 if stored.created else falcon.HTTP_200
        resp.media = crl_view(stored.row)


class CertificateImport:
    scopes = {"POST": ("pki:admin",)}

    def __init__(self, services: Services):
        self.services = services

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_json(req, "import_certificate", self.services.config.max_body_bytes)
        principal = req.context.principal
        imported = trust.import_certificate(self.services.envelope, principal.tenant_id, body, principal.token_id)
        resp.status = falcon.HTTP_201
        resp.location = f"/v1/pki/certificates/{imported.certificate.id}"
        resp.media = {
            **certificate_view(imported.certificate, with_pem=True),
            "chain": [certificate_pem(c.der) for c in imported.chain],
        }


class CertificateValidate:
    scopes = {"POST": ("pki:read",)}

    def __init__(self, services: Services):
        self.services = services

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_json(req, "validate_certificate", self.services.config.max_body_bytes)
        result, at = trust.validate_certificate(req.context.principal.tenant_id, body)
        resp.media = validation_view(result, at)


def routes(services: Services) -> list[tuple[str, object]]:
    """The routes of this module (see ``app.ROUTE_MODULES``)."""
    return [
        ("/v1/pki/trust-anchors", TrustAnchorCollection(services)),
        ("/v1/pki/trust-anchors/{anchor_id}", TrustAnchorItem()),
        ("/v1/pki/trust-anchors/{anchor_id}/crl", TrustAnchorCrlUpload(services)),
        ("/v1/pki/certificates/import", CertificateImport(services)),
        ("/v1/pki/certificates/validate", CertificateValidate(services)),
    ]
