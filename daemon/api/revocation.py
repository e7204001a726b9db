"""Revocation over HTTP: revoke certificates and CAs, serve CRLs and answer OCSP.

Thin translation to ``pki.revocation``, ``pki.crl_publication`` and ``pki.ocsp``. CRLs and OCSP are public:
relying parties have no token.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import falcon
from asn1crypto import pem

from ..errors import ApiError
from ..pki import authorities, certificates, crl_publication, ocsp, revocation
from ..schema.models import Certificate, CertificateRevocationList
from ..services import Services
from .cas import ca_view
from .http import PEM_MEDIA_TYPE, PUBLIC, read_json, read_optional_json, rfc3339

CRL_MEDIA_TYPE = "application/pkix-crl"
OCSP_REQUEST_MEDIA_TYPE = "application/ocsp-request"
OCSP_RESPONSE_MEDIA_TYPE = "application/ocsp-response"
# An OCSP request for 100 certificates is about 8 KiB; anything near this is not a real client.
OCSP_MAX_BODY_BYTES = 64 * 1024


def revocation_view(row: Certificate) -> dict[str, Any]:
    """The answer of ``POST /v1/pki/revoke``: the certificate and its (first) revocation."""
    return {
        "id": row.id,
        "serial_number": row.serial_number,
        "ca_id": row.ca_id,
        "status": certificates.certificate_status(row),
        "revoked_at": rfc3339(row.revoked_at),
        "reason": row.revocation_reason,
    }


class Revoke:
    scopes = {"POST": ("pki:admin",)}

    def __init__(self, services: Services):
        self.services = services

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_json(req, "revoke", self.services.config.max_body_bytes)
        row = revocation.revoke_certificate(req.context.principal.tenant_id, body, self.services.plugins,
                                         self.services.envelope)
        resp.media = revocation_view(row)


class CaRevoke:
    scopes = {"POST": ("pki:admin",)}

    def __init__(self, services: Services):
        self.services = services

    def on_post(self, req: falcon.Request, resp: falcon.Response, ca_id: str) -> None:
        body = read_optional_json(req, "revoke_ca", self.services.config.max_body_bytes)
        resp.media = ca_view(revocation.revoke_ca(req.context.principal.tenant_id, ca_id, body))


def _if_modified_since(req: falcon.Request) -> datetime | None:
    try:
        return req.if_modified_since
    except falcon.HTTPBadRequest:
        return None  # RFC 9110 13.1.3: an invalid date is ignored


def _send_crl(req: falcon.Request, resp: falcon.Response, row: CertificateRevocationList) -> None:
    """The CRL as DER (default) or PEM, with a strong ETag per representation, honouring conditional GETs."""
    as_pem = req.client_prefers([CRL_MEDIA_TYPE, PEM_MEDIA_TYPE]) == PEM_MEDIA_TYPE
    tag = hashlib.sha256(row.der).hexdigest()[:40] + ("-pem" if as_pem else "")
    resp.set_header("ETag", f'"{tag}"')
    resp.last_modified = row.this_update
    resp.vary = ("Accept",)
    # Caches may keep it but must revalidate: a revocation publishes a new CRL long before nextUpdate.
    resp.cache_control = ("public", "no-cache")
    requested_tags = req.if_none_match
    if requested_tags is not None:
        not_modified = any(t == "*" or t == tag for t in requested_tags)
    else:
        since = _if_modified_since(req)
        not_modified = (
            since is not None
            and row.this_update <= since.replace(tzinfo=None)
            # Two CRLs issued within one second share thisUpdate: the date alone cannot tell which one the client has.
            and not crl_publication.same_second_predecessor(row)
        )
    if not_modified:
        resp.status = falcon.HTTP_304
        return
    if as_pem:
        resp.content_type = PEM_MEDIA_TYPE
        resp.data = pem.armor("X509 CRL", row.der)
    else:
        resp.content_type = CRL_MEDIA_TYPE
        resp.data = row.der


class CaCrl:
    """GET: the CA's current full CRL (public). POST: publish a new one now (admin)."""

    scopes = {"GET": PUBLIC, "POST": ("pki:admin",)}

    def __init__(self, services: Services):
        self.services = services

    def on_get(self, req: falcon.Request, resp: falcon.Response, ca_id: str) -> None:
        ca = authorities.get_ca_public(ca_id)
        row = crl_publication.current_crl(self.services.hsm, self.services.config, ca, crl_publication.FULL)
        _send_crl(req, resp, row)

    def on_post(self, req: falcon.Request, resp: falcon.Response, ca_id: str) -> None:
        ca = authorities.get_ca(req.context.principal.tenant_id, ca_id)
        published = crl_publication.publish_crls(self.services.hsm, self.services.config, ca)
        resp.media = {
            "crl_pem": pem.armor("X509 CRL", published.full.der).decode("ascii"),
            "crl_number": published.full.number,
            "this_update": rfc3339(published.full.this_update),
            "next_update": rfc3339(published.full.next_update),
            "delta_crl_number": published.delta.number,
        }


class CaDeltaCrl:
    """The CA's current delta CRL (public), the target of the full CRL's Freshest CRL extension."""

    scopes = {"GET": PUBLIC}

    def __init__(self, services: Services):
        self.services = services

    def on_get(self, req: falcon.Request, resp: falcon.Response, ca_id: str) -> None:
        ca = authorities.get_ca_public(ca_id)
        row = crl_publication.current_crl(self.services.hsm, self.services.config, ca, crl_publication.DELTA)
        _send_crl(req, resp, row)


def _send_ocsp(resp: falcon.Response, der: bytes) -> None:
    resp.content_type = OCSP_RESPONSE_MEDIA_TYPE
    resp.data = der


class Ocsp:
    """RFC 6960 A.1 POST. OCSP-level problems get OCSP error responses; HTTP-level ones (media type, size) 415/413."""

    scopes = {"POST": PUBLIC}

    def __init__(self, services: Services):
        self.services = services

    def on_post(self, req: falcon.Request, resp: falcon.Response, ca_id: str) -> None:
        content_type = (req.content_type or "").split(";", 1)[0].strip().lower()
        if content_type != OCSP_REQUEST_MEDIA_TYPE:
            raise ApiError("unsupported_media_type", f"send the OCSP request as {OCSP_REQUEST_MEDIA_TYPE}")
        body = req.bounded_stream.read(OCSP_MAX_BODY_BYTES + 1)
        if len(body) > OCSP_MAX_BODY_BYTES:
            raise ApiError("payload_too_large", f"an OCSP request larger than {OCSP_MAX_BODY_BYTES} bytes is refused")
        _send_ocsp(resp, ocsp.respond(self.services.hsm, self.services.config, ca_id, body))


class OcspGet:
    """RFC 6960 A.1 GET: ``.../ocsp/{url-encoded base64 DER request}``."""

    scopes = {"GET": PUBLIC}

    def __init__(self, services: Services):
        self.services = services

    def on_get(self, req: falcon.Request, resp: falcon.Response, ca_id: str, request: str) -> None:
        # Read the raw path: the router strips a trailing '/', which is a valid last base64 character.
        path = req.env.get("PATH_INFO") or ""
        marker = f"/ca/{ca_id}/ocsp/"
        encoded = path.split(marker, 1)[1] if marker in path else request
        try:
            der = ocsp.decode_get_request(encoded)
        except ocsp.OcspRequestError:
            _send_ocsp(resp, ocsp.error_response("malformed_request"))
            return
        _send_ocsp(resp, ocsp.respond(self.services.hsm, self.services.config, ca_id, der))


def routes(services: Services) -> list[tuple[str, object]]:
    """The revocation routes (see ``app.ROUTE_MODULES``)."""
    return [
        ("/v1/pki/revoke", Revoke(services)),
        ("/v1/pki/ca/{ca_id}/revoke", CaRevoke(services)),
        ("/v1/pki/ca/{ca_id}/crl", CaCrl(services)),
        ("/v1/pki/ca/{ca_id}/crl/delta", CaDeltaCrl(services)),
        ("/v1/pki/ca/{ca_id}/ocsp", Ocsp(services)),
        ("/v1/pki/ca/{ca_id}/ocsp/{request:path}", OcspGet(services)),
    ]
