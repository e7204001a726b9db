"""Azure DNS through the Azure Resource Manager REST API (api-version 2018-05-01), plain HTTPS.

Plain HTTPS with requests, not ``azure-mgmt-dns`` + ``azure-identity``: those bring ``azure-core``, ``msal``
and their transitive pins for three ARM calls and one OAuth client-credentials request, and
``azure-identity``'s default credential chain would pick up ambient machine identities, which a multi-tenant
daemon must never use by accident.

Token: ``POST {authority}/{tenant}/oauth2/v2.0/token`` (client credentials, scope
``{resource_manager_url}/.default``, i.e. ``https://management.azure.com/.default``). Calls:
``GET .../providers/Microsoft.Network/dnsZones/{zone}`` (is it a zone in the resource group), and
``GET``/``PUT``/``DELETE .../dnsZones/{zone}/TXT/{relative name}``. A record set holds all TXT values of a
name; writes carry ``If-Match`` with the set's ETag (or ``If-None-Match: *`` when creating it), so ARM answers
412 when another writer changed the set in between, and the update is retried. The app registration needs
the "DNS Zone Contributor" role on the zone or resource group.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from scaivault_pki.plugins.api import PROPAGATION_CONFIG_PROPERTIES, secret_or_string
from scaivault_pki.plugins.builtin._http import BASE_URL_SCHEMA, JsonApi, OAuth2Token, oauth_error_detail, path_segment
from scaivault_pki.plugins.builtin._txt_records import (
    RecordSetConflict,
    TxtRecordSet,
    TxtRecordSetProvider,
    relative_name,
    txt_chunks,
)

DEFAULT_RESOURCE_MANAGER_URL = "https://management.azure.com"
DEFAULT_AUTHORITY_URL = "https://login.microsoftonline.com"
API_VERSION = "2018-05-01"
_UUID = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


def _error_detail(body: Any) -> str | None:
    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        error = body["error"]
        return f"{error.get('code', 'error')}: {error.get('message', '')}".rstrip(": ")
    return oauth_error_detail(body)


class AzureDnsProvider(TxtRecordSetProvider):
    """TXT record sets in an Azure DNS zone, with an app registration's client secret."""

    type_name: ClassVar[str] = "azure_dns"
    config_schema: ClassVar[dict[str, Any]] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Azure DNS",
        "type": "object",
        "properties": {
            "subscription_id": {"type": "string", "pattern": _UUID},
            "resource_group": {"type": "string", "pattern": r"^[-\w.()]{1,90}$", "description": "holds the zones"},
            "tenant_id": {
                "type": "string",
                "pattern": r"^([0-9a-fA-F-]{36}|[A-Za-z0-9.-]{1,253})$",
                "description": "directory (tenant) id or its domain name",
            },
            "client_id": {"type": "string", "pattern": _UUID, "description": "application (client) id"},
            "client_secret": {**secret_or_string(maxLength=512), "description": "the app registration's secret value"},
            "resource_manager_url": {
                **BASE_URL_SCHEMA,
                "description": f"ARM endpoint (default {DEFAULT_RESOURCE_MANAGER_URL}; sovereign clouds differ)",
            },
            "authority_url": {
                **BASE_URL_SCHEMA,
                "description": f"Microsoft Entra ID authority (default {DEFAULT_AUTHORITY_URL})",
            },
            **PROPAGATION_CONFIG_PROPERTIES,
        },
        "required": ["subscription_id", "resource_group", "tenant_id", "client_id", "client_secret"],
        "additionalProperties": False,
    }
    secret_fields: ClassVar[tuple[str, ...]] = ("client_secret",)

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        client_id = str(config["client_id"])
        client_secret = str(config["client_secret"])
        arm_url = str(config.get("resource_manager_url", DEFAULT_RESOURCE_MANAGER_URL)).rstrip("/")
        authority = str(config.get("authority_url", DEFAULT_AUTHORITY_URL)).rstrip("/")
        token_url = f"{authority}/{path_segment(config['tenant_id'])}/oauth2/v2.0/token"
        form = {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": client_secret,
            # The scope names the resource: ARM's own URL, as the Azure SDKs derive it.
            "scope": f"{arm_url}/.default",
        }
        token = OAuth2Token(
            JsonApi(
                self.type_name, token_url, secrets=(client_secret,), error_detail=_error_detail, token_endpoint=True
            ),
            lambda: form,
        )
        self.api = JsonApi(
            self.type_name, arm_url, auth=token.headers, secrets=(client_secret,), error_detail=_error_detail
        )
        self._zones_path = (
            f"/subscriptions/{path_segment(config['subscription_id'])}"
            f"/resourceGroups/{path_segment(config['resource_group'])}/providers/Microsoft.Network/dnsZones"
        )

    def _set_path(self, zone: str, fqdn: str) -> str:
        return f"{self._zones_path}/{path_segment(self.zone_id(zone))}/TXT/{path_segment(relative_name(fqdn, zone))}"

    def lookup_zone(self, name: str) -> str | None:
        """``name`` when the resource group has that zone (``GET .../dnsZones/{name}``), else ``None``."""
        response = self.api.call(
            "GET", f"{self._zones_path}/{path_segment(name)}", params={"api-version": API_VERSION}, accept=(404,)
        )
        if response.status == 404:
            return None
        found = self.api.field(response.body, "name", kind=str).lower()
        return found if found == name else None

    def read_set(self, zone: str, fqdn: str) -> TxtRecordSet | None:
        """``GET .../TXT/{name}``; the ETag is the version that makes the next write conditional."""
        response = self.api.call("GET", self._set_path(zone, fqdn), params={"api-version": API_VERSION}, accept=(404,))
        if response.status == 404:
            return None
        records = self.api.field(response.body, "properties", "TXTRecords", kind=list)
        values = []
        for index, record in enumerate(records):
            chunks = self.api.field(record, "value", kind=list)
            if not all(isinstance(chunk, str) for chunk in chunks):
                raise self.api.unexpected(f"properties.TXTRecords.{index}.value")
            values.append("".join(chunks))
        ttl = self.api.field(response.body, "properties", "TTL", kind=int)
        etag = response.body.get("etag") or response.headers.get("ETag")
        return TxtRecordSet(tuple(values), ttl, etag)

    def write_set(self, zone: str, fqdn: str, values: tuple[str, ...], ttl: int, old: TxtRecordSet | None) -> None:
        """``PUT .../TXT/{name}`` holding all values, conditional on the old set's ETag."""
        # Azure takes a value longer than one character-string as a list of them.
        records = [{"value": txt_chunks(v)} for v in values]
        response = self.api.call(
            "PUT",
            self._set_path(zone, fqdn),
            params={"api-version": API_VERSION},
            json={"properties": {"TTL": ttl, "TXTRecords": records}},
            headers=self._condition(old),
            accept=(412,),
        )
        if response.status == 412:
            raise RecordSetConflict()

    def delete_set(self, zone: str, fqdn: str, old: TxtRecordSet) -> None:
        """``DELETE .../TXT/{name}``, conditional on the ETag; 404 means already gone."""
        response = self.api.call(
            "DELETE",
            self._set_path(zone, fqdn),
            params={"api-version": API_VERSION},
            headers=self._condition(old),
            accept=(404, 412),
        )
        if response.status == 412:
            raise RecordSetConflict()

    @staticmethod
    def _condition(old: TxtRecordSet | None) -> dict[str, str]:
        if old is None:
            return {"If-None-Match": "*"}
        return {"If-Match": old.version} if old.version else {}
