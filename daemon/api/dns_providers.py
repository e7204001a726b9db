"""DNS providers over HTTP: configured providers and the installed types. Thin translation to ``pki.dns_providers``."""

from __future__ import annotations

import inspect
from typing import Any

import falcon

from ..paging import paginate
from ..pki import dns_providers
from ..plugins.api import DnsProvider
from ..schema.models import DnsProviderConfig
from ..services import Services
from .http import read_json, rfc3339
from .validation import parse_limit


def provider_view(row: DnsProviderConfig) -> dict[str, Any]:
    """A provider as stored: secret fields are references, never values."""
    return {
        "id": row.id,
        "name": row.name,
        "type": row.type,
        "config": row.config,
        "created_at": rfc3339(row.created_at),
        "updated_at": rfc3339(row.updated_at),
    }


def type_view(cls: type[DnsProvider], plugin: str) -> dict[str, Any]:
    doc = inspect.getdoc(cls) or ""
    return {
        "type": cls.type_name,
        "plugin": plugin,
        "description": doc.split("\n\n", 1)[0],
        "config_schema": cls.config_schema,
        "secret_fields": list(cls.secret_fields),
        "propagation_timeout": cls.propagation_timeout,
        "propagation_interval": cls.propagation_interval,
    }


class DnsProviderCollection:
    scopes = {"GET": ("pki:read",), "POST": ("pki:admin",)}

    def __init__(self, services: Services):
        self.services = services

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        query = DnsProviderConfig.select().where(DnsProviderConfig.tenant == req.context.principal.tenant_id)
        rows, cursor = paginate(query, DnsProviderConfig, parse_limit(req.get_param("limit")), req.get_param("cursor"))
        resp.media = {"items": [provider_view(r) for r in rows], "next_cursor": cursor}

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_json(req, "create_dns_provider", self.services.config.max_body_bytes)
        row = dns_providers.create_provider(self.services.plugins, req.context.principal.tenant_id, body)
        resp.status = falcon.HTTP_201
        resp.location = f"/v1/pki/dns-providers/{row.id}"
        resp.media = provider_view(row)


class DnsProviderItem:
    scopes = {"GET": ("pki:read",), "PATCH": ("pki:admin",), "DELETE": ("pki:admin",)}

    def __init__(self, services: Services):
        self.services = services

    def on_get(self, req: falcon.Request, resp: falcon.Response, provider_id: str) -> None:
        resp.media = provider_view(dns_providers.get_provider(req.context.principal.tenant_id, provider_id))

    def on_patch(self, req: falcon.Request, resp: falcon.Response, provider_id: str) -> None:
        body = read_json(req, "update_dns_provider", self.services.config.max_body_bytes)
        row = dns_providers.update_provider(self.services.plugins, req.context.principal.tenant_id, provider_id, body)
        resp.media = provider_view(row)

    def on_delete(self, req: falcon.Request, resp: falcon.Response, provider_id: str) -> None:
        dns_providers.delete_provider(req.context.principal.tenant_id, provider_id)
        resp.status = falcon.HTTP_204


class DnsProviderTypes:
    """``GET /v1/pki/dns-providers/types``: every installed type, its plugin and its config schema."""

    scopes = {"GET": ("pki:read",)}

    def __init__(self, services: Services):
        self.services = services

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        plugins = self.services.plugins
        resp.media = {
            "items": [type_view(cls, plugins.dns_provider_plugin(name)) for name, cls in plugins.dns_provider_types().items()],
            "next_cursor": None,
        }


def routes(services: Services) -> list[tuple[str, object]]:
    # The literal "types" route sits beside "{provider_id}"; falcon prefers the literal segment.
    return [
        ("/v1/pki/dns-providers", DnsProviderCollection(services)),
        ("/v1/pki/dns-providers/types", DnsProviderTypes(services)),
        ("/v1/pki/dns-providers/{provider_id}", DnsProviderItem(services)),
    ]
