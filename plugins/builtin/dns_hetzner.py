"""Hetzner DNS through the DNS Console API (``https://dns.hetzner.com/api/v1``), plain HTTPS.

Plain HTTPS with requests: Hetzner publishes no official Python SDK for this API (``hcloud`` covers the
Cloud API, not DNS Console zones).

Calls, authenticated with the ``Auth-API-Token`` header: ``GET /zones?name=`` (zone id),
``GET /records?zone_id=`` (paged; filtered here by type, relative name and value), ``POST /records``
(``name`` relative to the zone, ``@`` for the apex), ``DELETE /records/{id}``. Hetzner keeps one record per
value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from scaivault_pki.plugins.builtin._http import api_token_client, api_token_config_schema, path_segment
from scaivault_pki.plugins.builtin._txt_records import PerValueTxtProvider, relative_name, unquote_txt

DEFAULT_BASE_URL = "https://dns.hetzner.com/api/v1"
_PER_PAGE = 100


def _error_detail(body: Any) -> str | None:
    if not isinstance(body, Mapping):
        return None
    error = body.get("error")
    if isinstance(error, Mapping) and error.get("message"):
        return str(error["message"])
    if isinstance(body.get("message"), str):
        return body["message"]
    return None


class HetznerProvider(PerValueTxtProvider):
    """TXT records in a Hetzner DNS Console zone, with an API token."""

    type_name: ClassVar[str] = "hetzner"
    config_schema: ClassVar[dict[str, Any]] = api_token_config_schema(
        "Hetzner DNS", "DNS Console API token", DEFAULT_BASE_URL
    )
    secret_fields: ClassVar[tuple[str, ...]] = ("api_token",)

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.api = api_token_client(
            self.type_name, config, DEFAULT_BASE_URL, lambda token: {"Auth-API-Token": token}, _error_detail
        )

    def lookup_zone(self, name: str) -> str | None:
        """The id of the zone ``name`` (``GET /zones?name=``; Hetzner answers 404 for an unknown name)."""
        response = self.api.call("GET", "/zones", params={"name": name}, accept=(404,))
        if response.status == 404:
            return None
        for zone in self.api.field(response.body, "zones", kind=list):
            if isinstance(zone, Mapping) and str(zone.get("name", "")).lower() == name:
                return self.api.field(zone, "id", kind=str)
        return None

    def record_ids(self, zone: str, fqdn: str, value: str) -> list[str]:
        """Ids of the zone's TXT records at ``fqdn`` holding ``value``, over all pages."""
        zone_id = self.zone_id(zone)
        relative = relative_name(fqdn, zone)
        ids: list[str] = []
        page = 1
        while True:
            response = self.api.call(
                "GET", "/records", params={"zone_id": zone_id, "page": page, "per_page": _PER_PAGE}
            )
            for record in self.api.field(response.body, "records", kind=list):
                if (
                    self.api.field(record, "type", kind=str) == "TXT"
                    and self.api.field(record, "name", kind=str).lower() == relative
                    and unquote_txt(self.api.field(record, "value", kind=str)) == value
                ):
                    ids.append(self.api.field(record, "id", kind=str))
            meta = response.body.get("meta")
            pagination = meta.get("pagination") if isinstance(meta, Mapping) else None
            last_page = pagination.get("last_page") if isinstance(pagination, Mapping) else None
            if not isinstance(last_page, int) or page >= last_page:
                return ids
            page += 1

    def create_record(self, zone: str, fqdn: str, value: str, ttl: int) -> None:
        """``POST /records`` with the zone id and the name relative to the zone."""
        response = self.api.call(
            "POST",
            "/records",
            json={
                "zone_id": self.zone_id(zone),
                "type": "TXT",
                "name": relative_name(fqdn, zone),
                "value": value,
                "ttl": ttl,
            },
        )
        self.api.field(response.body, "record", "id", kind=str)

    def delete_record(self, zone: str, record_id: str) -> None:
        """``DELETE /records/{id}``; 404 means already gone."""
        self.api.call("DELETE", f"/records/{path_segment(record_id)}", accept=(404,))
