"""The CSR approval workflow over HTTP: thin translation to ``pki.csr_workflow``.

Each resource's scopes come from the workflow's transition table, so what the API demands and what the state
machine says cannot drift apart.
"""

from __future__ import annotations

from typing import Any

import falcon

from ..pki import csr_workflow as workflow
from ..pki.csr import csr_pem
from ..schema.models import CsrRequest
from ..services import Services
from .certificates import IssuingResource, send_issued
from .http import read_json, read_optional_json, rfc3339
from .validation import parse_limit


def csr_view(row: CsrRequest, *, detail: bool = False) -> dict[str, Any]:
    """A request as the API shows it; ``detail`` adds the PEM and the recorded transitions (GET of one)."""
    view: dict[str, Any] = {
        "id": row.id,
        "status": row.status,
        "subject": row.subject,
        "subject_fields": row.subject_fields,
        "common_name": row.common_name,
        "san_dns": row.sans["dns"],
        "san_ip": row.sans["ip"],
        "san_uri": row.sans["uri"],
        "san_email": row.sans["email"],
        "key_type": row.key_type,
        "key_size": row.key_size,
        "key_in_vault": row.hsm_key_id is not None,
        "requested_by": row.requested_by,
        "approved_by": row.approved_by,
        "approved_at": rfc3339(row.approved_at),
        "rejected_by": row.rejected_by,
        "rejected_at": rfc3339(row.rejected_at),
        "reason": row.reason,
        "certificate_id": row.certificate_id,
        "created_at": rfc3339(row.created_at),
        "updated_at": rfc3339(row.updated_at),
    }
    if detail:
        view["csr_pem"] = csr_pem(row.csr_der)
        view["transitions"] = [
            {"from": t.from_status, "to": t.to_status, "actor": t.actor, "at": rfc3339(t.created_at), "reason": t.reason}
            for t in workflow.transitions_of(row)
        ]
    return view


def _scopes(method: str, action: str) -> dict[str, tuple[str, ...]]:
    return {method: (workflow.action_scope(action),)}


def _created(resp: falcon.Response, row: CsrRequest) -> None:
    resp.status = falcon.HTTP_201
    resp.location = f"/v1/pki/csr/{row.id}"
    resp.media = csr_view(row, detail=True)


class CsrCollection:
    scopes = {"GET": (workflow.READ_SCOPE,), **_scopes("POST", "create")}

    def __init__(self, services: Services):
        self.services = services

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        rows, cursor = workflow.list_requests(
            req.context.principal.tenant_id, req.get_param("status"), parse_limit(req.get_param("limit")),
            req.get_param("cursor"),
        )
        resp.media = {"items": [csr_view(r) for r in rows], "next_cursor": cursor}

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_json(req, "create_csr", self.services.config.max_body_bytes)
        principal = req.context.principal
        _created(resp, workflow.create_request(self.services.hsm, principal.tenant_id, body, principal.token_id))


class CsrImport:
    scopes = _scopes("POST", "import")

    def __init__(self, services: Services):
        self.services = services

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_json(req, "import_csr", self.services.config.max_body_bytes)
        principal = req.context.principal
        _created(resp, workflow.import_request(principal.tenant_id, body, principal.token_id))


class CsrItem:
    scopes = {"GET": (workflow.READ_SCOPE,), **_scopes("DELETE", "delete")}

    def __init__(self, services: Services):
        self.services = services

    def on_get(self, req: falcon.Request, resp: falcon.Response, csr_id: str) -> None:
        resp.media = csr_view(workflow.get_request(req.context.principal.tenant_id, csr_id), detail=True)

    def on_delete(self, req: falcon.Request, resp: falcon.Response, csr_id: str) -> None:
        principal = req.context.principal
        workflow.delete_request(self.services.hsm, principal.tenant_id, csr_id, principal.token_id)
        resp.status = falcon.HTTP_204


class CsrDecision:
    """``approve`` (optional ``reason``) or ``reject`` (``reason`` required); answers the request as it is now."""

    def __init__(self, services: Services, action: str, schema_name: str):
        self.services = services
        self.action = action
        self.schema_name = schema_name
        self.scopes = _scopes("POST", action)

    def on_post(self, req: falcon.Request, resp: falcon.Response, csr_id: str) -> None:
        body = read_optional_json(req, self.schema_name, self.services.config.max_body_bytes)
        principal = req.context.principal
        row = workflow.decide_request(principal.tenant_id, csr_id, self.action, principal.token_id, body.get("reason"))
        resp.media = csr_view(row, detail=True)


class CsrSign(IssuingResource):
    """Signs like ``/issue`` and ``/sign`` do, through the same issuance context (so plugins hear of it too)."""

    scopes = _scopes("POST", "sign")

    def on_post(self, req: falcon.Request, resp: falcon.Response, csr_id: str) -> None:
        body = read_json(req, "sign_csr", self.services.config.max_body_bytes)
        principal = req.context.principal
        issued = workflow.sign_request(self.context(), principal.tenant_id, csr_id, body, principal.token_id)
        send_issued(resp, issued, csr_id=csr_id)


def routes(services: Services) -> list[tuple[str, object]]:
    """The CSR workflow's routes (``/v1/pki/csr/import`` is a literal segment, matched before ``{csr_id}``)."""
    return [
        ("/v1/pki/csr", CsrCollection(services)),
        ("/v1/pki/csr/import", CsrImport(services)),
        ("/v1/pki/csr/{csr_id}", CsrItem(services)),
        ("/v1/pki/csr/{csr_id}/approve", CsrDecision(services, "approve", "approve_csr")),
        ("/v1/pki/csr/{csr_id}/reject", CsrDecision(services, "reject", "reject_csr")),
        ("/v1/pki/csr/{csr_id}/sign", CsrSign(services)),
    ]
