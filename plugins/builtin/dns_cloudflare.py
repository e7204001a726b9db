"""Cloudflare DNS through API v4 (``https://api.cloudflare.com/client/v4``), plain HTTPS.

Plain HTTPS with requests rather than the official ``cloudflare`` SDK: four REST calls with a bearer token
do not justify a generated client of several megabytes that pins its own httpx/pydantic versions and
changes its interface between major releases.

Calls: ``GET /zones?name=`` (zone id), ``GET /zones/{zone}/dns_records?type=TXT&name=`` (paged),
``POST /zones/{zone}/dns_records``, ``DELETE /zones/{zone}/dns_records/{id}``. The token needs
``Zone:Read`` and ``DNS:Edit`` on the zone. Cloudflare keeps one record per value.

Records are matched by type and name and then compared by value here, not with the API's ``content``
filter: Cloudflare may store and return TXT content quoted, and an exact server-side match on the unquoted
value would then miss the record (a duplicate on present, a leftover on cleanup).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from scaivault_pki.plugins.builtin._http import api_token_client, api_token_config_schema, path_segment
from scaivault_pki.plugins.builtin._txt_records import PerValueTxtProvider, unquote_txt

DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"
#: "An identical record already exists": a concurrent present won the race, which is success for us.
_IDENTICAL_RECORD_EXISTS = 81058
_PER_PAGE = 100


def _error_detail(body: Any) -> str | None:
    if isinstance(body, Mapping) and isinstance(body.get("errors"), list):
        return (
            "; ".join(f"{e.get('code')}: {e.get('message')}" for e in body["errors"] if isinstance(e, Mapping)) or None
        )
    return None


class CloudflareProvider(PerValueTxtProvider):
    """TXT records in a Cloudflare zone, with an API token."""

    type_name: ClassVar[str] = "cloudflare"
    config_schema: ClassVar[dict[str, Any]] = api_token_config_schema(
        "Cloudflare", "API token with Zone:Read and DNS:Edit on the zones (not the global API key)", DEFAULT_BASE_URL
    )
    secret_fields: ClassVar[tuple[str, ...]] = ("api_token",)
    #: Cloudflare refuses TTLs under 60 seconds (1 means "automatic", which is 300).
    min_ttl: ClassVar[int] = 60

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.api = api_token_client(
            self.type_name, config, DEFAULT_BASE_URL, lambda token: {"Authorization": f"Bearer {token}"}, _error_detail
        )

    def _results(self, body: Any) -> list[Any]:
        self._check_success(body)
        return self.api.field(body, "result", kind=list)

    def _check_success(self, body: Any) -> None:
        # Every v4 response carries "success"; a 2xx without it is not Cloudflare (a wrong base_url).
        if not isinstance(body, Mapping) or body.get("success") is not True:
            raise self.api.unexpected("success")

    def lookup_zone(self, name: str) -> str | None:
        """The id of the zone ``name`` (``GET /zones?name=``)."""
        response = self.api.call("GET", "/zones", params={"name": name})
        for zone in self._results(response.body):
            if isinstance(zone, Mapping) and str(zone.get("name", "")).lower() == name:
                return self.api.field(zone, "id", kind=str)
        return None

    def record_ids(self, zone: str, fqdn: str, value: str) -> list[str]:
        """Ids of the TXT records at ``fqdn`` holding ``value``, over all result pages."""
        zone_id = self.zone_id(zone)
        ids: list[str] = []
        page = 1
        while True:
            response = self.api.call(
                "GET",
                f"/zones/{path_segment(zone_id)}/dns_records",
                params={"type": "TXT", "name": fqdn, "page": page, "per_page": _PER_PAGE},
            )
            for record in self._results(response.body):
                content = self.api.field(record, "content", kind=str)
                if unquote_txt(content) == value:
                    ids.append(self.api.field(record, "id", kind=str))
            info = response.body.get("result_info")
            total_pages = info.get("total_pages") if isinstance(info, Mapping) else None
            if not isinstance(total_pages, int) or page >= total_pages:
                return ids
            page += 1

    def create_record(self, zone: str, fqdn: str, value: str, ttl: int) -> None:
        """``POST /zones/{zone}/dns_records``."""
        path = f"/zones/{path_segment(self.zone_id(zone))}/dns_records"
        response = self.api.call(
            "POST", path, json={"type": "TXT", "name": fqdn, "content": value, "ttl": ttl}, accept=(400,)
        )
        if response.status == 400:
            errors = response.body.get("errors") if isinstance(response.body, Mapping) else None
            codes = {e.get("code") for e in errors or () if isinstance(e, Mapping)}
            if codes != {_IDENTICAL_RECORD_EXISTS}:
                raise self.api.refused("POST", path, response.status, response.body)
        else:
            self._check_success(response.body)

    def delete_record(self, zone: str, record_id: str) -> None:
        """``DELETE /zones/{zone}/dns_records/{id}``; 404 means already gone."""
        self.api.call(
            "DELETE", f"/zones/{path_segment(self.zone_id(zone))}/dns_records/{path_segment(record_id)}", accept=(404,)
        )
