"""The secret store over HTTP: ``/v1/secrets/{path}`` and the list of paths. Thin translation to ``secret_store``."""

from __future__ import annotations

from typing import Any

import falcon

from .. import secret_store
from ..schema.models import Secret
from ..services import Services
from .http import read_json, rfc3339
from .validation import parse_limit


def secret_metadata(row: Secret) -> dict[str, Any]:
    """What lists and writes show: never the data."""
    return {
        "path": row.path,
        "version": row.version,
        "created_at": rfc3339(row.created_at),
        "updated_at": rfc3339(row.updated_at),
    }


class SecretCollection:
    """``GET /v1/secrets?prefix=dns/``: paths and versions only."""

    scopes = {"GET": ("secrets:read",)}

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        rows, cursor = secret_store.list_secrets(
            req.context.principal.tenant_id, req.get_param("prefix") or "", parse_limit(req.get_param("limit")),
            req.get_param("cursor"),
        )
        resp.media = {"items": [secret_metadata(r) for r in rows], "next_cursor": cursor}


class SecretItem:
    scopes = {"GET": ("secrets:read",), "PUT": ("secrets:write",), "DELETE": ("secrets:write",)}

    def __init__(self, services: Services):
        self.services = services

    def on_get(self, req: falcon.Request, resp: falcon.Response, path: str) -> None:
        row, data = secret_store.read_secret(self.services.envelope, req.context.principal.tenant_id, path)
        resp.media = {**secret_metadata(row), "data": data}

    def on_put(self, req: falcon.Request, resp: falcon.Response, path: str) -> None:
        body = read_json(req, "put_secret", self.services.config.max_body_bytes)
        row, created = secret_store.put_secret(self.services.envelope, req.context.principal.tenant_id, path, body["data"])
        resp.status = falcon.HTTP_201 if created else falcon.HTTP_200
        resp.media = secret_metadata(row)

    def on_delete(self, req: falcon.Request, resp: falcon.Response, path: str) -> None:
        secret_store.delete_secret(req.context.principal.tenant_id, path)
        resp.status = falcon.HTTP_204


def routes(services: Services) -> list[tuple[str, object]]:
    return [
        ("/v1/secrets", SecretCollection()),
        ("/v1/secrets/{path:path}", SecretItem(services)),
    ]
