"""Amazon Route 53 through boto3, the official AWS SDK.

The official SDK here, unlike the other cloud providers: every Route 53 call must be signed with AWS
Signature Version 4 (canonical request, derived per-day keys), and botocore is the reference implementation
of it, with the endpoint, partition and retry rules maintained by AWS. boto3 is a pure-Python dependency.
The session gets the configured keys explicitly, so botocore's credential chain (environment, ``~/.aws``,
instance metadata) is never consulted for them.

Calls: ``ListHostedZonesByName`` (zone id; public zones preferred), ``ListResourceRecordSets`` (the current
TXT set), ``ChangeResourceRecordSets`` and, when ``wait_for_sync`` is on (the default), ``GetChange`` until
``INSYNC``. A record set holds all TXT values of a name: present UPSERTs the set with the value added,
cleanup UPSERTs it without the value, or DELETEs it (which must match the current set exactly) when it was
the last one. Route 53 has no conditional UPSERT; a DELETE that no longer matches is re-read and retried.
The IAM policy needs ``route53:ListHostedZonesByName``, ``route53:ListResourceRecordSets``,
``route53:ChangeResourceRecordSets`` and ``route53:GetChange``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import boto3
import botocore.config
import botocore.exceptions
from scaivault_pki.plugins.api import PROPAGATION_CONFIG_PROPERTIES, DnsProviderError, secret_or_string
from scaivault_pki.plugins.builtin._http import BASE_URL_SCHEMA, DEFAULT_TIMEOUT, safe_detail
from scaivault_pki.plugins.builtin._txt_records import (
    RecordSetConflict,
    TxtRecordSet,
    TxtRecordSetProvider,
    quote_txt,
    unquote_txt,
)

#: Route 53 is a global service whose API lives in us-east-1 (the China partition uses cn-northwest-1).
DEFAULT_REGION = "us-east-1"
#: Route 53 usually reports INSYNC within 60 seconds; poll every 5 seconds for up to 3 minutes.
_SYNC_DELAY = 5
_SYNC_ATTEMPTS = 36


class Route53Provider(TxtRecordSetProvider):
    """TXT record sets in a Route 53 hosted zone, with an IAM access key."""

    type_name: ClassVar[str] = "aws_route53"
    config_schema: ClassVar[dict[str, Any]] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Amazon Route 53",
        "type": "object",
        "properties": {
            "access_key_id": {"type": "string", "pattern": "^[A-Z0-9]{16,128}$"},
            "secret_access_key": secret_or_string(maxLength=256),
            "session_token": {
                **secret_or_string(maxLength=4096),
                "description": "for temporary (STS) credentials",
            },
            "region": {"type": "string", "pattern": "^[a-z]{2}(-[a-z]+)+-[0-9]+$"},
            "endpoint_url": {**BASE_URL_SCHEMA, "description": "Route 53 endpoint (default: the region's)"},
            "wait_for_sync": {
                "type": "boolean",
                "description": "after each change, wait until Route 53 reports it INSYNC on all its servers",
            },
            **PROPAGATION_CONFIG_PROPERTIES,
        },
        "required": ["access_key_id", "secret_access_key"],
        "additionalProperties": False,
    }
    secret_fields: ClassVar[tuple[str, ...]] = ("secret_access_key", "session_token")

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        secret = str(config["secret_access_key"])
        token = config.get("session_token")
        self._secrets = (secret, *([str(token)] if token else []))
        self.wait_for_sync = bool(config.get("wait_for_sync", True))
        session = boto3.session.Session(
            aws_access_key_id=str(config["access_key_id"]),
            aws_secret_access_key=secret,
            aws_session_token=str(token) if token else None,
            region_name=config.get("region", DEFAULT_REGION),
        )
        connect_timeout, read_timeout = DEFAULT_TIMEOUT
        self.client = session.client(
            "route53",
            endpoint_url=config.get("endpoint_url"),
            config=botocore.config.Config(
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                retries={"mode": "standard", "max_attempts": 3},
            ),
        )

    def _call(self, operation: Callable[..., dict[str, Any]], **params: Any) -> dict[str, Any]:
        """One SDK call with botocore's errors turned into safe :class:`DnsProviderError` messages."""
        name = "".join(part.title() for part in operation.__name__.split("_"))
        try:
            return operation(**params)
        except botocore.exceptions.ClientError as exc:
            error = exc.response.get("Error", {})
            detail = safe_detail(f"{error.get('Code', 'error')}: {error.get('Message', '')}", self._secrets)
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            reason = "authentication failed, " if status in (401, 403) else ""
            raise DnsProviderError(f"aws_route53: {name} refused: {reason}HTTP {status} ({detail})") from exc
        except (botocore.exceptions.ConnectTimeoutError, botocore.exceptions.ReadTimeoutError) as exc:
            raise DnsProviderError(f"aws_route53: {name} timed out") from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise DnsProviderError(f"aws_route53: {name} failed ({type(exc).__name__})") from exc
        except (KeyError, TypeError, ValueError) as exc:
            raise DnsProviderError(f"aws_route53: {name}: unexpected response") from exc

    def lookup_zone(self, name: str) -> str | None:
        """The hosted zone id of ``name`` (public preferred over a private zone of the same name)."""
        response = self._call(self.client.list_hosted_zones_by_name, DNSName=name + ".", MaxItems="10")
        zones = [z for z in response.get("HostedZones", []) if str(z.get("Name", "")).lower() == name + "."]
        # ACME validation queries the public internet; a private zone of the same name is only a fallback.
        zones.sort(key=lambda z: bool(z.get("Config", {}).get("PrivateZone", False)))
        return str(zones[0]["Id"]).rsplit("/", 1)[-1] if zones else None

    def read_set(self, zone: str, fqdn: str) -> TxtRecordSet | None:
        """The TXT set at ``fqdn``: the first set at or after (``fqdn``, TXT) in Route 53's ordering."""
        response = self._call(
            self.client.list_resource_record_sets,
            HostedZoneId=self.zone_id(zone),
            StartRecordName=fqdn + ".",
            StartRecordType="TXT",
            MaxItems="1",
        )
        for rrset in response.get("ResourceRecordSets", []):
            if str(rrset.get("Name", "")).lower() == fqdn + "." and rrset.get("Type") == "TXT":
                values = tuple(unquote_txt(str(record["Value"])) for record in rrset.get("ResourceRecords", []))
                return TxtRecordSet(values, int(rrset.get("TTL", 0)), rrset)
        return None

    def _change(self, zone: str, action: str, rrset: Mapping[str, Any]) -> None:
        response = self._call(
            self.client.change_resource_record_sets,
            HostedZoneId=self.zone_id(zone),
            ChangeBatch={
                "Comment": "scaivault-pki dns-01 challenge",
                "Changes": [{"Action": action, "ResourceRecordSet": dict(rrset)}],
            },
        )
        if self.wait_for_sync:
            change_id = str(response["ChangeInfo"]["Id"]).rsplit("/", 1)[-1]
            waiter = self.client.get_waiter("resource_record_sets_changed")
            try:
                waiter.wait(Id=change_id, WaiterConfig={"Delay": _SYNC_DELAY, "MaxAttempts": _SYNC_ATTEMPTS})
            except botocore.exceptions.WaiterError as exc:
                raise DnsProviderError(
                    f"aws_route53: change {change_id} was not INSYNC after {_SYNC_DELAY * _SYNC_ATTEMPTS} s"
                ) from exc
            except botocore.exceptions.BotoCoreError as exc:
                raise DnsProviderError(f"aws_route53: GetChange failed ({type(exc).__name__})") from exc

    def write_set(self, zone: str, fqdn: str, values: tuple[str, ...], ttl: int, old: TxtRecordSet | None) -> None:
        """UPSERT the whole set (Route 53 replaces all of a set's values at once)."""
        records = [{"Value": quote_txt(value)} for value in values]
        self._change(zone, "UPSERT", {"Name": fqdn + ".", "Type": "TXT", "TTL": ttl, "ResourceRecords": records})

    def delete_set(self, zone: str, fqdn: str, old: TxtRecordSet) -> None:
        """DELETE the set exactly as read; Route 53 refuses it if the set changed (then re-read and retry)."""
        try:
            self._change(zone, "DELETE", old.version)
        except DnsProviderError as exc:
            cause = exc.__cause__
            if (
                isinstance(cause, botocore.exceptions.ClientError)
                and cause.response.get("Error", {}).get("Code") == "InvalidChangeBatch"
            ):
                raise RecordSetConflict() from exc
            raise
