"""Certificate authorities over HTTP: thin translation to ``pki.authorities``."""

from __future__ import annotations

from typing import Any

import falcon

from ..paging import paginate
from ..pki import authorities
from ..schema.models import CertificateAuthority
from ..services import Services
from .http import PUBLIC, read_json, rfc3339, send_pem
from .validation import parse_limit


def ca_view(ca: CertificateAuthority) -> dict[str, Any]:
    material = authorities.ca_material(ca)
    return {
        "id": ca.id,
        "name": ca.name,
        "common_name": ca.common_name,
        "subject": material.subject.human_friendly,
        "ca_type": ca.ca_type,
        "parent_ca_id": ca.parent_id,
        "key_type": ca.key_type,
        "key_size": ca.key_size,
        "signature_algorithm": ca.signature_algorithm,
        "serial_number": ca.serial_number,
        "subject_key_id": ca.subject_key_id,
        "max_path_length": ca.path_len,
        "not_before": rfc3339(ca.not_before),
        "not_after": rfc3339(ca.not_after),
        "status": ca.status,
        "revoked_at": rfc3339(ca.revoked_at),
        "revocation_reason": ca.revocation_reason,
        "certificate": authorities.certificate_pem(ca.certificate_der),
        "created_at": rfc3339(ca.created_at),
    }


class CaCollection:
    scopes = {"GET": ("pki:admin", "pki:read"), "POST": ("pki:admin",)}

    def __init__(self, services: Services):
        self.services = services

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        query = CertificateAuthority.select().where(CertificateAuthority.tenant == req.context.principal.tenant_id)
        rows, cursor = paginate(query, CertificateAuthority, parse_limit(req.get_param("limit")), req.get_param("cursor"))
        resp.media = {"items": [ca_view(ca) for ca in rows], "next_cursor": cursor}

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_json(req, "create_ca", self.services.config.max_body_bytes)
        spec = authorities.CaSpec.from_body(body)
        ca = authorities.create_ca(
            self.services.hsm, req.context.principal.tenant_id, spec, self.services.config.public_base_url
        )
        resp.status = falcon.HTTP_201
        resp.location = f"/v1/pki/ca/{ca.id}"
        resp.media = ca_view(ca)


class CaItem:
    scopes = {"GET": ("pki:admin", "pki:issue", "pki:read")}

    def on_get(self, req: falcon.Request, resp: falcon.Response, ca_id: str) -> None:
        resp.media = ca_view(authorities.get_ca(req.context.principal.tenant_id, ca_id))


class CaCertificatePem:
    """The CA certificate in PEM, for people and tools; unauthenticated because relying parties need it."""

    scopes = {"GET": PUBLIC}

    def on_get(self, req: falcon.Request, resp: falcon.Response, ca_id: str) -> None:
        send_pem(resp, authorities.certificate_pem(authorities.get_ca_public(ca_id).certificate_der))


class CaCertificateDer:
    """The CA certificate in DER: what the AIA caIssuers URL points at (RFC 5280 4.2.2.1)."""

    scopes = {"GET": PUBLIC}

    def on_get(self, req: falcon.Request, resp: falcon.Response, ca_id: str) -> None:
        resp.content_type = "application/pkix-cert"
        resp.data = authorities.get_ca_public(ca_id).certificate_der
