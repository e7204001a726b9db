"""Google Cloud DNS through the REST API v1 (``https://dns.googleapis.com/dns/v1``), plain HTTPS.

Plain HTTPS with requests, not ``google-cloud-dns``: the SDK pulls in ``google-api-core``, ``google-auth``,
``grpcio``-era dependencies and protobuf for what are three REST calls, and its auth library would also look
for ambient credentials (metadata server, gcloud config) that a multi-tenant daemon must never use by
accident. The one piece of OAuth it would have done for us, the service-account JWT bearer grant
(RFC 7523), is a signed JSON object: signed here with ``cryptography`` and exchanged at the token endpoint.

Calls: ``GET /projects/{project}/managedZones?dnsName=`` (managed zone name; public zones preferred),
``GET .../managedZones/{zone}/rrsets?name=&type=TXT``, ``POST .../managedZones/{zone}/changes``. A record set
holds all TXT values of a name; a change deletes the exact old set and adds the new one in one atomic step,
so Google refuses it (412) when another writer changed the set in between, and the update is retried.

The service account needs ``roles/dns.admin`` (or ``dns.changes.create`` and ``dns.resourceRecordSets.*``).
The token endpoint is ``token_uri`` from the config (default Google's); the key file's own ``token_uri`` is
not followed, so a key file cannot send signed assertions elsewhere.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping
from typing import Any, ClassVar

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from scaivault_pki.plugins.api import PROPAGATION_CONFIG_PROPERTIES, DnsProviderError, secret_or_string
from scaivault_pki.plugins.builtin._http import BASE_URL_SCHEMA, JsonApi, OAuth2Token, oauth_error_detail, path_segment
from scaivault_pki.plugins.builtin._txt_records import (
    RecordSetConflict,
    TxtRecordSet,
    TxtRecordSetProvider,
    quote_txt,
    unquote_txt,
)

DEFAULT_BASE_URL = "https://dns.googleapis.com/dns/v1"
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"
#: Read-write access to Cloud DNS and nothing else.
SCOPE = "https://www.googleapis.com/auth/ndev.clouddns.readwrite"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
#: Google accepts assertions valid for at most an hour.
_ASSERTION_LIFETIME = 3600


def _error_detail(body: Any) -> str | None:
    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        return str(body["error"].get("message") or body["error"].get("status") or "") or None
    return oauth_error_detail(body)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class ServiceAccountKey:
    """The parts of a service-account key file the JWT bearer grant needs."""

    def __init__(self, key_json: str) -> None:
        """Parse a key file; :class:`DnsProviderError` (never quoting the file) when it is not one."""
        what = "google_cloud_dns: service_account_json is not a service-account key file"
        try:
            data = json.loads(key_json)
        except ValueError:
            raise DnsProviderError(f"{what} (not JSON)") from None
        if not isinstance(data, dict) or data.get("type") != "service_account":
            raise DnsProviderError(f'{what} (no "type": "service_account")')
        for field in ("client_email", "private_key"):
            if not isinstance(data.get(field), str) or not data[field]:
                raise DnsProviderError(f"{what} (no {field})")
        try:
            key = serialization.load_pem_private_key(data["private_key"].encode(), password=None)
        except (ValueError, TypeError):
            raise DnsProviderError(f"{what} (private_key is not an unencrypted PEM key)") from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise DnsProviderError(f"{what} (private_key is not an RSA key)")
        self.client_email: str = data["client_email"]
        self.key_id: str | None = data.get("private_key_id") if isinstance(data.get("private_key_id"), str) else None
        self.project_id: str | None = data.get("project_id") if isinstance(data.get("project_id"), str) else None
        self.private_key_pem: str = data["private_key"]
        self._key = key

    def assertion(self, audience: str, scope: str) -> str:
        """A fresh RS256-signed JWT asserting this service account, for ``audience`` (the token endpoint)."""
        now = int(time.time())
        header = {"alg": "RS256", "typ": "JWT", **({"kid": self.key_id} if self.key_id else {})}
        claims = {
            "iss": self.client_email,
            "scope": scope,
            "aud": audience,
            "iat": now,
            "exp": now + _ASSERTION_LIFETIME,
        }
        signing_input = ".".join(_b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims))
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(signature)}"


class GoogleCloudDnsProvider(TxtRecordSetProvider):
    """TXT record sets in a Google Cloud DNS managed zone, with a service-account key."""

    type_name: ClassVar[str] = "google_cloud_dns"
    config_schema: ClassVar[dict[str, Any]] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Google Cloud DNS",
        "type": "object",
        "properties": {
            "service_account_json": {
                **secret_or_string(maxLength=16384),
                "description": "the service account's JSON key file, as text",
            },
            "project": {
                "type": "string",
                "pattern": "^[a-z][a-z0-9.:-]{3,99}$",
                "description": "project holding the managed zones (default: the key file's project_id)",
            },
            "base_url": {**BASE_URL_SCHEMA, "description": f"API base URL (default {DEFAULT_BASE_URL})"},
            "token_uri": {**BASE_URL_SCHEMA, "description": f"OAuth 2.0 token endpoint (default {DEFAULT_TOKEN_URI})"},
            **PROPAGATION_CONFIG_PROPERTIES,
        },
        "required": ["service_account_json"],
        "additionalProperties": False,
    }
    secret_fields: ClassVar[tuple[str, ...]] = ("service_account_json",)

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        key = ServiceAccountKey(str(config["service_account_json"]))
        project = config.get("project") or key.project_id
        if not project:
            raise DnsProviderError("google_cloud_dns: no project in the config and no project_id in the key file")
        self.project: str = project
        token_uri = config.get("token_uri", DEFAULT_TOKEN_URI)
        secrets = (key.private_key_pem, str(config["service_account_json"]))
        token = OAuth2Token(
            JsonApi(self.type_name, token_uri, secrets=secrets, error_detail=_error_detail, token_endpoint=True),
            lambda: {"grant_type": JWT_BEARER_GRANT, "assertion": key.assertion(token_uri, SCOPE)},
        )
        self.api = JsonApi(
            self.type_name,
            config.get("base_url", DEFAULT_BASE_URL),
            auth=token.headers,
            secrets=secrets,
            error_detail=_error_detail,
        )

    def _zone_path(self, zone: str) -> str:
        return f"/projects/{path_segment(self.project)}/managedZones/{path_segment(self.zone_id(zone))}"

    def lookup_zone(self, name: str) -> str | None:
        """The managed zone serving ``name``; a public one when the project also has private ones."""
        response = self.api.call(
            "GET", f"/projects/{path_segment(self.project)}/managedZones", params={"dnsName": name + "."}
        )
        # Google leaves empty lists out of its JSON: no "managedZones" means none.
        zones = response.body.get("managedZones", []) if isinstance(response.body, Mapping) else None
        if not isinstance(zones, list):
            raise self.api.unexpected("managedZones")
        matches = [z for z in zones if isinstance(z, Mapping) and str(z.get("dnsName", "")).lower() == name + "."]
        # ACME validation queries the public internet; a private zone of the same name is only a fallback.
        matches.sort(key=lambda z: z.get("visibility", "public") != "public")
        return self.api.field(matches[0], "name", kind=str) if matches else None

    def read_set(self, zone: str, fqdn: str) -> TxtRecordSet | None:
        """``GET .../rrsets?name=&type=TXT``; the raw set is kept as the version (deletions must match it)."""
        response = self.api.call("GET", f"{self._zone_path(zone)}/rrsets", params={"name": fqdn + ".", "type": "TXT"})
        rrsets = response.body.get("rrsets", []) if isinstance(response.body, Mapping) else None
        if not isinstance(rrsets, list):
            raise self.api.unexpected("rrsets")
        for rrset in rrsets:
            if (
                self.api.field(rrset, "type", kind=str) == "TXT"
                and self.api.field(rrset, "name", kind=str).lower() == fqdn + "."
            ):
                rrdatas = self.api.field(rrset, "rrdatas", kind=list)
                ttl = self.api.field(rrset, "ttl", kind=int)
                raw = {"name": rrset["name"], "type": "TXT", "ttl": ttl, "rrdatas": rrdatas}
                return TxtRecordSet(tuple(unquote_txt(str(r)) for r in rrdatas), ttl, raw)
        return None

    def _change(self, zone: str, additions: list[dict[str, Any]], deletions: list[dict[str, Any]]) -> None:
        response = self.api.call(
            "POST",
            f"{self._zone_path(zone)}/changes",
            json={"additions": additions, "deletions": deletions},
            # Someone changed the set since we read it: 409, it was created meanwhile; 412, our deletion no
            # longer matches; 404, the set we delete is gone (which for a pure deletion is the goal).
            accept=(404, 409, 412),
        )
        if response.status == 404 and not additions:
            return
        if response.status in (404, 409, 412):
            raise RecordSetConflict()
        if response.status == 200:
            self.api.field(response.body, "id", kind=str)

    def write_set(self, zone: str, fqdn: str, values: tuple[str, ...], ttl: int, old: TxtRecordSet | None) -> None:
        """One change: delete the exact old set (if any) and add the new one."""
        new = {"name": fqdn + ".", "type": "TXT", "ttl": ttl, "rrdatas": [quote_txt(v) for v in values]}
        self._change(zone, [new], [old.version] if old is not None else [])

    def delete_set(self, zone: str, fqdn: str, old: TxtRecordSet) -> None:
        """One change deleting the exact old set."""
        self._change(zone, [], [old.version])
