"""Roles over HTTP: thin translation to ``pki.roles``."""

from __future__ import annotations

from typing import Any

import falcon

from ..paging import paginate
from ..pki import roles
from ..schema.models import Role
from ..services import Services
from .http import read_json, rfc3339
from .validation import parse_limit


def role_view(role: Role) -> dict[str, Any]:
    return {
        "id": role.id,
        "name": role.name,
        "ca_id": role.ca_id,
        **role.config,
        "created_at": rfc3339(role.created_at),
        "updated_at": rfc3339(role.updated_at),
    }


class RoleCollection:
    scopes = {"GET": ("pki:read",), "POST": ("pki:admin",)}

    def __init__(self, services: Services):
        self.services = services

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        query = Role.select().where(Role.tenant == req.context.principal.tenant_id)
        rows, cursor = paginate(query, Role, parse_limit(req.get_param("limit")), req.get_param("cursor"))
        resp.media = {"items": [role_view(r) for r in rows], "next_cursor": cursor}

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_json(req, "create_role", self.services.config.max_body_bytes)
        role = roles.create_role(req.context.principal.tenant_id, body)
        resp.status = falcon.HTTP_201
        resp.location = f"/v1/pki/roles/{role.name}"
        resp.media = role_view(role)


class RoleItem:
    scopes = {"GET": ("pki:read",), "PATCH": ("pki:admin",), "DELETE": ("pki:admin",)}

    def __init__(self, services: Services):
        self.services = services

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        resp.media = role_view(roles.get_role(req.context.principal.tenant_id, name))

    def on_patch(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        body = read_json(req, "update_role", self.services.config.max_body_bytes)
        resp.media = role_view(roles.update_role(req.context.principal.tenant_id, name, body))

    def on_delete(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        roles.delete_role(req.context.principal.tenant_id, name)
        resp.status = falcon.HTTP_204
