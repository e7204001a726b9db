"""The six cloud DNS providers against local servers that speak their APIs (moto's server for Route 53).

Each provider runs the shared :class:`~scaivault_pki.plugins.testing.DnsProviderTestBase` (present, idempotence,
coexisting values, cleanup, zone discovery, config schema as the API validates it), plus what only a cloud API
has: the exact requests that reach the API, no duplicate record on a second present, credentials refused
without the credential ever appearing in the error or the log, and the optimistic-concurrency retry of the
record-set APIs.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import socket
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from typing import Any

import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest

from scaivault_pki.plugins.api import DnsProvider, DnsProviderError
from scaivault_pki.plugins.builtin import BUILTIN_DNS_PROVIDERS
from scaivault_pki.plugins.builtin._http import JsonApi
from scaivault_pki.plugins.builtin.dns_aws_route53 import Route53Provider
from scaivault_pki.plugins.builtin.dns_azure_dns import AzureDnsProvider
from scaivault_pki.plugins.builtin.dns_cloudflare import CloudflareProvider
from scaivault_pki.plugins.builtin.dns_digitalocean import DigitalOceanProvider
from scaivault_pki.plugins.builtin.dns_google_cloud_dns import GoogleCloudDnsProvider
from scaivault_pki.plugins.builtin.dns_hetzner import HetznerProvider
from scaivault_pki.plugins.testing import DnsProviderTestBase
from tests.support.dns_api_servers import (
    AzureDnsApi,
    CloudflareApi,
    DigitalOceanApi,
    GoogleCloudDnsApi,
    HetznerApi,
    LocalApiServer,
    MotoRoute53,
    RecordingProxy,
    make_service_account_key,
    moto_route53,
)

ZONE = "example.com"
SUB_ZONE = "sub.example.com"  # delegated: names under it belong to it, not to example.com
REF = {"secret": "dns/provider#credential"}


def presentation_values(rrdatas: list[str]) -> set[str]:
    """TXT rdata in presentation form (as Route 53 and Cloud DNS store it), decoded by dnspython."""
    return {
        b"".join(dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TXT, text).strings).decode() for text in rrdatas
    }


class CloudProviderTests(DnsProviderTestBase):
    """The shared base plus the checks every cloud provider owes; subclasses add their API's specifics."""

    zone = ZONE

    @pytest.fixture
    def stored_values(self) -> Callable[[str], list[str]]:
        """Override: the values the API holds at a name, as a list (so a duplicate shows)."""
        pytest.fail("override stored_values")

    @pytest.fixture
    def wrong_credentials(self) -> DnsProvider:
        """Override: the provider pointed at the same API with a credential the API refuses."""
        pytest.fail("override wrong_credentials")

    @pytest.fixture
    def credentials(self) -> list[str]:
        """Override: every credential in play (the right one and the refused one); none may be shown."""
        pytest.fail("override credentials")

    def test_second_present_makes_no_duplicate(self, dns_provider, stored_values, record_name) -> None:
        dns_provider.present(None, record_name, "only-once", self.ttl)
        dns_provider.present(None, record_name, "only-once", self.ttl)
        assert len(stored_values(record_name)) == 1
        dns_provider.cleanup(None, record_name, "only-once")
        assert stored_values(record_name) == []

    def test_refused_credentials_are_an_error_that_never_shows_them(
        self, wrong_credentials, credentials, record_name, caplog
    ) -> None:
        caplog.set_level(logging.DEBUG)
        for attempt in (
            lambda: wrong_credentials.present(None, record_name, "never", self.ttl),
            lambda: wrong_credentials.cleanup(self.zone, record_name, "never"),
        ):
            with pytest.raises(DnsProviderError, match="authentication failed") as refused:
                attempt()
            assert refused.value.args[0].startswith(wrong_credentials.type_name + ":")
            assert not [c for c in credentials if c in str(refused.value)]
        assert not [c for c in credentials if c in caplog.text]

    def test_deepest_zone_wins(self, dns_provider, txt_lookup) -> None:
        name = f"_acme-challenge.www.{SUB_ZONE}"
        assert dns_provider.find_zone(name) == SUB_ZONE
        dns_provider.present(None, name, "in-the-sub-zone", self.ttl)
        assert txt_lookup(name) == {"in-the-sub-zone"}
        dns_provider.cleanup(None, name, "in-the-sub-zone")
        assert txt_lookup(name) == set()

    def test_name_in_no_zone_of_the_account_is_an_error(self, dns_provider) -> None:
        with pytest.raises(DnsProviderError, match="no zone"):
            dns_provider.present(None, "_acme-challenge.www.elsewhere.test", "never", self.ttl)

    def test_builtin_plugin_registers_the_class(self) -> None:
        assert self.provider_class in BUILTIN_DNS_PROVIDERS


def invalid_common(valid: dict[str, Any], secret_field: str, required: list[str]) -> list[tuple[dict, str]]:
    """Bad configs every provider must refuse: each required field missing, a secret field that is neither a
    string nor a well-formed reference, an unknown field."""
    cases: list[tuple[dict, str]] = [({k: v for k, v in valid.items() if k != field}, field) for field in required]
    cases += [
        ({**valid, secret_field: 12345}, secret_field),
        ({**valid, secret_field: {"secret": "no-key-part"}}, secret_field),
        ({**valid, secret_field: {"secret": "dns/x#k", "extra": 1}}, secret_field),
        ({**valid, "password": "x"}, "password"),
    ]
    return cases


# ---------------------------------------------------------------------------------------------------------------
# Cloudflare
# ---------------------------------------------------------------------------------------------------------------

CF_TOKEN = "cf-" + secrets.token_urlsafe(30)


@pytest.fixture(scope="module")
def cloudflare_api() -> Iterator[CloudflareApi]:
    with CloudflareApi(
        CF_TOKEN, {ZONE: "023e105f4ecef8ad9ca31a8372d0c353", SUB_ZONE: "9a7806061c88ada191ed06f989cc3dac"}
    ) as api:
        yield api


class TestCloudflare(CloudProviderTests):
    provider_class = CloudflareProvider
    valid_configs = [{"api_token": REF}, {"api_token": REF, "base_url": "https://api.cloudflare.com/client/v4"}]
    invalid_configs = [
        *invalid_common({"api_token": REF}, "api_token", ["api_token"]),
        ({"api_token": REF, "base_url": "http://api.cloudflare.com/client/v4"}, "base_url"),  # clear text off-host
        ({"api_token": REF, "base_url": 5}, "base_url"),
    ]

    @pytest.fixture
    def dns_provider(self, cloudflare_api):
        return CloudflareProvider({"api_token": CF_TOKEN, "base_url": cloudflare_api.base_url})

    @pytest.fixture
    def wrong_credentials(self, cloudflare_api):
        return CloudflareProvider({"api_token": "not-" + CF_TOKEN, "base_url": cloudflare_api.base_url})

    @pytest.fixture
    def credentials(self):
        return [CF_TOKEN]

    @pytest.fixture
    def stored_values(self, cloudflare_api):
        return cloudflare_api.txt_values

    @pytest.fixture
    def txt_lookup(self, cloudflare_api):
        return lambda name: set(cloudflare_api.txt_values(name))

    def test_requests_are_what_api_v4_needs(self, dns_provider, cloudflare_api, record_name) -> None:
        start = len(cloudflare_api.requests)
        dns_provider.present(ZONE, record_name, "v1", 10)  # under Cloudflare's minimum: raised to 60
        dns_provider.cleanup(ZONE, record_name, "v1")
        calls = cloudflare_api.requests[start:]
        assert all(c.headers["authorization"] == f"Bearer {CF_TOKEN}" for c in calls)
        zone_id = cloudflare_api.zones[ZONE]
        assert [(c.method, c.path) for c in calls] == [
            ("GET", "/client/v4/zones"),
            ("GET", f"/client/v4/zones/{zone_id}/dns_records"),
            ("POST", f"/client/v4/zones/{zone_id}/dns_records"),
            ("GET", f"/client/v4/zones/{zone_id}/dns_records"),
            ("DELETE", f"/client/v4/zones/{zone_id}/dns_records/{calls[-1].path.rsplit('/', 1)[-1]}"),
        ]
        assert calls[0].arg("name") == ZONE
        assert calls[1].arg("type") == "TXT" and calls[1].arg("name") == record_name
        assert calls[2].headers["content-type"] == "application/json"
        assert calls[2].json == {"type": "TXT", "name": record_name, "content": "v1", "ttl": 60}

    def test_content_returned_quoted_is_still_matched(self, dns_provider, cloudflare_api, record_name) -> None:
        # Cloudflare may hand TXT content back in quotes; the record must still be found and removed.
        dns_provider.present(ZONE, record_name, "quoted", self.ttl)
        with cloudflare_api.lock:
            for record in cloudflare_api.records.values():
                if record["name"] == record_name:
                    record["content"] = '"quoted"'
        dns_provider.present(ZONE, record_name, "quoted", self.ttl)
        assert cloudflare_api.txt_values(record_name) == ['"quoted"']
        dns_provider.cleanup(ZONE, record_name, "quoted")
        assert cloudflare_api.txt_values(record_name) == []


# ---------------------------------------------------------------------------------------------------------------
# DigitalOcean
# ---------------------------------------------------------------------------------------------------------------

DO_TOKEN = "dop_v1_" + secrets.token_hex(32)


@pytest.fixture(scope="module")
def digitalocean_api() -> Iterator[DigitalOceanApi]:
    # A page size of 2 makes every listing of three or more records follow links.pages.next.
    with DigitalOceanApi(DO_TOKEN, [ZONE, SUB_ZONE], per_page_cap=2) as api:
        yield api


class TestDigitalOcean(CloudProviderTests):
    provider_class = DigitalOceanProvider
    valid_configs = [{"api_token": REF}, {"api_token": REF, "base_url": "http://127.0.0.1:8080/v2"}]
    invalid_configs = [
        *invalid_common({"api_token": REF}, "api_token", ["api_token"]),
        ({"api_token": REF, "base_url": "ftp://api.digitalocean.com/v2"}, "base_url"),
    ]

    @pytest.fixture
    def dns_provider(self, digitalocean_api):
        return DigitalOceanProvider({"api_token": DO_TOKEN, "base_url": digitalocean_api.base_url})

    @pytest.fixture
    def wrong_credentials(self, digitalocean_api):
        return DigitalOceanProvider({"api_token": DO_TOKEN[::-1], "base_url": digitalocean_api.base_url})

    @pytest.fixture
    def credentials(self):
        return [DO_TOKEN, DO_TOKEN[::-1]]

    @pytest.fixture
    def stored_values(self, digitalocean_api):
        return digitalocean_api.txt_values

    @pytest.fixture
    def txt_lookup(self, digitalocean_api):
        return lambda name: set(digitalocean_api.txt_values(name))

    def test_requests_are_what_api_v2_needs(self, dns_provider, digitalocean_api, record_name) -> None:
        start = len(digitalocean_api.requests)
        dns_provider.present(ZONE, record_name, "v1", 60)
        dns_provider.cleanup(ZONE, record_name, "v1")
        calls = digitalocean_api.requests[start:]
        assert all(c.headers["authorization"] == f"Bearer {DO_TOKEN}" for c in calls)
        assert [(c.method, c.path) for c in calls] == [
            ("GET", f"/v2/domains/{ZONE}"),
            ("GET", f"/v2/domains/{ZONE}/records"),
            ("POST", f"/v2/domains/{ZONE}/records"),
            ("GET", f"/v2/domains/{ZONE}/records"),
            ("DELETE", f"/v2/domains/{ZONE}/records/{calls[-1].path.rsplit('/', 1)[-1]}"),
        ]
        # The list filter takes the full name, the record itself the name relative to the domain.
        assert calls[1].arg("type") == "TXT" and calls[1].arg("name") == record_name
        assert calls[2].json == {"type": "TXT", "name": record_name.removesuffix("." + ZONE), "data": "v1", "ttl": 60}

    def test_records_on_later_pages_are_found(self, dns_provider, digitalocean_api, record_name) -> None:
        values = [f"paged-{i}" for i in range(5)]
        for value in values:
            dns_provider.present(ZONE, record_name, value, 60)
        dns_provider.present(ZONE, record_name, values[-1], 60)  # found on page 3: no duplicate
        assert sorted(digitalocean_api.txt_values(record_name)) == values
        assert any(c.arg("page") == "3" for c in digitalocean_api.calls("GET", rf"/v2/domains/{ZONE}/records"))
        for value in reversed(values):
            dns_provider.cleanup(ZONE, record_name, value)
        assert digitalocean_api.txt_values(record_name) == []


# ---------------------------------------------------------------------------------------------------------------
# Hetzner
# ---------------------------------------------------------------------------------------------------------------

HETZNER_TOKEN = secrets.token_hex(16)


@pytest.fixture(scope="module")
def hetzner_api() -> Iterator[HetznerApi]:
    with HetznerApi(HETZNER_TOKEN, {ZONE: "rMu2waTJPbHr4", SUB_ZONE: "aQ9ZNt3vRzB6y"}, per_page_cap=2) as api:
        yield api


class TestHetzner(CloudProviderTests):
    provider_class = HetznerProvider
    valid_configs = [{"api_token": REF}, {"api_token": REF, "base_url": "https://dns.hetzner.com/api/v1"}]
    invalid_configs = [
        *invalid_common({"api_token": REF}, "api_token", ["api_token"]),
        ({"api_token": REF, "base_url": "https://dns.hetzner.com/api/v1?x=1"}, "base_url"),
    ]

    @pytest.fixture
    def dns_provider(self, hetzner_api):
        return HetznerProvider({"api_token": HETZNER_TOKEN, "base_url": hetzner_api.base_url})

    @pytest.fixture
    def wrong_credentials(self, hetzner_api):
        return HetznerProvider({"api_token": HETZNER_TOKEN.upper(), "base_url": hetzner_api.base_url})

    @pytest.fixture
    def credentials(self):
        return [HETZNER_TOKEN, HETZNER_TOKEN.upper()]

    @pytest.fixture
    def stored_values(self, hetzner_api):
        return hetzner_api.txt_values

    @pytest.fixture
    def txt_lookup(self, hetzner_api):
        return lambda name: set(hetzner_api.txt_values(name))

    def test_requests_are_what_the_dns_api_needs(self, dns_provider, hetzner_api, record_name) -> None:
        start = len(hetzner_api.requests)
        dns_provider.present(ZONE, record_name, "v1", 120)
        dns_provider.cleanup(ZONE, record_name, "v1")
        calls = hetzner_api.requests[start:]
        assert all(c.headers["auth-api-token"] == HETZNER_TOKEN and "authorization" not in c.headers for c in calls)
        methods = [(c.method, c.path) for c in calls]
        assert methods[0] == ("GET", "/api/v1/zones") and calls[0].arg("name") == ZONE
        assert ("POST", "/api/v1/records") in methods
        assert methods[-1][0] == "DELETE" and methods[-1][1].startswith("/api/v1/records/")
        assert all(
            c.arg("zone_id") == hetzner_api.zones[ZONE]
            for c in calls
            if c.method == "GET" and c.path == "/api/v1/records"
        )
        post = next(c for c in calls if c.method == "POST")
        assert post.json == {
            "zone_id": hetzner_api.zones[ZONE],
            "type": "TXT",
            "name": record_name.removesuffix("." + ZONE),
            "value": "v1",
            "ttl": 120,
        }

    def test_records_on_later_pages_are_found(self, dns_provider, hetzner_api, record_name) -> None:
        for value in ("a", "b", "c"):
            dns_provider.present(ZONE, record_name, value, 60)
        dns_provider.present(ZONE, record_name, "c", 60)
        assert sorted(hetzner_api.txt_values(record_name)) == ["a", "b", "c"]
        for value in ("c", "b", "a"):
            dns_provider.cleanup(ZONE, record_name, value)
        assert hetzner_api.txt_values(record_name) == []


# ---------------------------------------------------------------------------------------------------------------
# Google Cloud DNS
# ---------------------------------------------------------------------------------------------------------------

GOOGLE_PROJECT = "acme-dns-project"
GOOGLE_EMAIL = f"acme-dns@{GOOGLE_PROJECT}.iam.gserviceaccount.com"


@pytest.fixture(scope="module")
def google_key() -> tuple[str, Any]:
    return make_service_account_key(GOOGLE_PROJECT, GOOGLE_EMAIL, "https://oauth2.googleapis.com/token")


@pytest.fixture(scope="module")
def google_other_key() -> str:
    return make_service_account_key(GOOGLE_PROJECT, GOOGLE_EMAIL, "https://oauth2.googleapis.com/token")[0]


@pytest.fixture(scope="module")
def google_api(google_key) -> Iterator[GoogleCloudDnsApi]:
    _, public_key = google_key
    with GoogleCloudDnsApi(
        GOOGLE_PROJECT, GOOGLE_EMAIL, public_key, {ZONE: "example-com", SUB_ZONE: "sub-example-com"}
    ) as api:
        yield api


def google_config(api: GoogleCloudDnsApi, key_json: str) -> dict[str, Any]:
    return {"service_account_json": key_json, "base_url": api.base_url, "token_uri": api.token_uri}


class TestGoogleCloudDns(CloudProviderTests):
    provider_class = GoogleCloudDnsProvider
    valid_configs = [
        {"service_account_json": REF},
        {"service_account_json": REF, "project": "my-project-1", "token_uri": "https://oauth2.googleapis.com/token"},
    ]
    invalid_configs = [
        *invalid_common({"service_account_json": REF}, "service_account_json", ["service_account_json"]),
        ({"service_account_json": REF, "project": "Bad Project"}, "project"),
        ({"service_account_json": REF, "token_uri": "http://oauth2.googleapis.com/token"}, "token_uri"),
    ]

    @pytest.fixture
    def dns_provider(self, google_api, google_key):
        return GoogleCloudDnsProvider(google_config(google_api, google_key[0]))

    @pytest.fixture
    def wrong_credentials(self, google_api, google_other_key):
        # A key file of the same account with another (unregistered) key: Google refuses the JWT signature.
        return GoogleCloudDnsProvider(google_config(google_api, google_other_key))

    @pytest.fixture
    def credentials(self, google_key, google_other_key):
        return [json.loads(key)["private_key"] for key in (google_key[0], google_other_key)]

    @pytest.fixture
    def stored_values(self, google_api):
        return google_api.txt_values

    @pytest.fixture
    def txt_lookup(self, google_api):
        return lambda name: presentation_values(google_api.txt_values(name))

    def test_requests_are_what_cloud_dns_v1_needs(self, google_api, google_key, record_name) -> None:
        provider = GoogleCloudDnsProvider(google_config(google_api, google_key[0]))
        start = len(google_api.requests)
        provider.present(None, record_name, "v1", 300)
        provider.present(None, record_name, "v2", 300)
        provider.cleanup(None, record_name, "v1")
        provider.cleanup(None, record_name, "v2")
        calls = google_api.requests[start:]
        token_calls = [c for c in calls if c.path == "/token"]
        assert len(token_calls) == 1, "the access token is reused until it expires"
        assert token_calls[0].form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
        claims = google_api.jwt_claims[-1]
        assert claims["iss"] == GOOGLE_EMAIL and claims["aud"] == google_api.token_uri
        assert claims["scope"] == "https://www.googleapis.com/auth/ndev.clouddns.readwrite"
        api_calls = [c for c in calls if c.path != "/token"]
        assert all(c.headers["authorization"].startswith("Bearer ya29.") for c in api_calls)
        zones = [c for c in api_calls if c.path == f"/dns/v1/projects/{GOOGLE_PROJECT}/managedZones"]
        assert zones and zones[-1].arg("dnsName") == f"{ZONE}."
        changes = [
            c.json for c in api_calls if c.path == f"/dns/v1/projects/{GOOGLE_PROJECT}/managedZones/example-com/changes"
        ]
        rrset = {"name": record_name + ".", "type": "TXT", "ttl": 300}
        assert changes == [
            {"additions": [{**rrset, "rrdatas": ['"v1"']}], "deletions": []},
            {"additions": [{**rrset, "rrdatas": ['"v1"', '"v2"']}], "deletions": [{**rrset, "rrdatas": ['"v1"']}]},
            {"additions": [{**rrset, "rrdatas": ['"v2"']}], "deletions": [{**rrset, "rrdatas": ['"v1"', '"v2"']}]},
            {"additions": [], "deletions": [{**rrset, "rrdatas": ['"v2"']}]},
        ]
        reads = [c for c in api_calls if c.path.endswith("/rrsets")]
        assert reads and all(c.arg("name") == record_name + "." and c.arg("type") == "TXT" for c in reads)

    def test_a_concurrent_change_is_kept(self, dns_provider, google_api, record_name) -> None:
        dns_provider.present(ZONE, record_name, "ours", 60)
        # Another writer adds a value between our read and our change: Cloud DNS refuses the change (412, our
        # deletion no longer matches), the provider reads again, and all three values end up in the set.
        rrset = google_api.rrsets[("example-com", record_name + ".", "TXT")]
        google_api.before_next("POST", lambda: rrset["rrdatas"].append('"theirs"'))
        start = len(google_api.requests)
        dns_provider.present(ZONE, record_name, "second", 60)
        assert presentation_values(google_api.txt_values(record_name)) == {"ours", "theirs", "second"}
        assert [c.method for c in google_api.requests[start:]] == ["GET", "POST", "GET", "POST"]  # 412, re-read, retry
        for value in ("ours", "theirs", "second"):
            dns_provider.cleanup(ZONE, record_name, value)
        assert google_api.txt_values(record_name) == []

    def test_a_file_that_is_no_service_account_key_is_an_error_without_its_content(self, google_api) -> None:
        for text in ("not json", json.dumps({"type": "authorized_user", "client_secret": "s3cr3t-value"})):
            with pytest.raises(DnsProviderError, match="not a service-account key") as refused:
                GoogleCloudDnsProvider({"service_account_json": text})
            assert "s3cr3t" not in str(refused.value)


# ---------------------------------------------------------------------------------------------------------------
# Azure DNS
# ---------------------------------------------------------------------------------------------------------------

AZ_TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
AZ_CLIENT = "00000000-1111-2222-3333-444444444444"
AZ_SECRET = "az~" + secrets.token_urlsafe(30)
AZ_SUBSCRIPTION = "12345678-9abc-def0-1234-56789abcdef0"
AZ_GROUP = "dns-rg"


@pytest.fixture(scope="module")
def azure_api() -> Iterator[AzureDnsApi]:
    with AzureDnsApi(AZ_TENANT, AZ_CLIENT, AZ_SECRET, AZ_SUBSCRIPTION, AZ_GROUP, [ZONE, SUB_ZONE]) as api:
        yield api


def azure_config(api: AzureDnsApi, client_secret: str = AZ_SECRET) -> dict[str, Any]:
    return {
        "subscription_id": AZ_SUBSCRIPTION,
        "resource_group": AZ_GROUP,
        "tenant_id": AZ_TENANT,
        "client_id": AZ_CLIENT,
        "client_secret": client_secret,
        "resource_manager_url": api.url,
        "authority_url": api.url,
    }


AZ_VALID = {
    "subscription_id": AZ_SUBSCRIPTION,
    "resource_group": AZ_GROUP,
    "tenant_id": AZ_TENANT,
    "client_id": AZ_CLIENT,
    "client_secret": REF,
}


class TestAzureDns(CloudProviderTests):
    provider_class = AzureDnsProvider
    valid_configs = [
        AZ_VALID,
        {
            **AZ_VALID,
            "tenant_id": "contoso.onmicrosoft.com",
            "resource_manager_url": "https://management.usgovcloudapi.net",
        },
    ]
    invalid_configs = [
        *invalid_common(
            AZ_VALID, "client_secret", ["subscription_id", "resource_group", "tenant_id", "client_id", "client_secret"]
        ),
        ({**AZ_VALID, "subscription_id": "not-a-uuid"}, "subscription_id"),
        ({**AZ_VALID, "resource_group": "a/b"}, "resource_group"),
        ({**AZ_VALID, "client_id": 42}, "client_id"),
    ]

    @pytest.fixture
    def dns_provider(self, azure_api):
        return AzureDnsProvider(azure_config(azure_api))

    @pytest.fixture
    def wrong_credentials(self, azure_api):
        return AzureDnsProvider(azure_config(azure_api, client_secret=AZ_SECRET + "x"))

    @pytest.fixture
    def credentials(self):
        return [AZ_SECRET]

    @pytest.fixture
    def stored_values(self, azure_api):
        return azure_api.txt_values

    @pytest.fixture
    def txt_lookup(self, azure_api):
        return lambda name: set(azure_api.txt_values(name))

    def test_requests_are_what_arm_needs(self, azure_api, record_name) -> None:
        provider = AzureDnsProvider(azure_config(azure_api))
        start = len(azure_api.requests)
        provider.present(None, record_name, "v1", 60)
        provider.present(None, record_name, "v2", 60)
        provider.cleanup(None, record_name, "v1")
        provider.cleanup(None, record_name, "v2")
        calls = azure_api.requests[start:]
        token_calls = [c for c in calls if c.path.endswith("/oauth2/v2.0/token")]
        assert [c.path for c in token_calls] == [f"/{AZ_TENANT}/oauth2/v2.0/token"]
        assert token_calls[0].form == {
            "grant_type": "client_credentials",
            "client_id": AZ_CLIENT,
            "client_secret": AZ_SECRET,
            "scope": f"{azure_api.url}/.default",
        }
        arm = [c for c in calls if c not in token_calls]
        assert all(
            c.arg("api-version") == "2018-05-01" and c.headers["authorization"].startswith("Bearer ") for c in arm
        )
        set_path = (
            f"/subscriptions/{AZ_SUBSCRIPTION}/resourceGroups/{AZ_GROUP}/providers/Microsoft.Network/dnsZones/"
            f"{ZONE}/TXT/{record_name.removesuffix('.' + ZONE)}"
        )
        writes = [c for c in arm if c.method in ("PUT", "DELETE")]
        assert [(c.method, c.path) for c in writes] == [("PUT", set_path)] * 3 + [("DELETE", set_path)]
        assert [c.json for c in writes[:3]] == [
            {"properties": {"TTL": 60, "TXTRecords": [{"value": ["v1"]}]}},
            {"properties": {"TTL": 60, "TXTRecords": [{"value": ["v1"]}, {"value": ["v2"]}]}},
            {"properties": {"TTL": 60, "TXTRecords": [{"value": ["v2"]}]}},
        ]
        # Creation must not overwrite a set someone else just made; every later write names the ETag it read.
        assert writes[0].headers.get("if-none-match") == "*" and "if-match" not in writes[0].headers
        assert all(re.fullmatch(r"[0-9a-f-]{36}", c.headers.get("if-match", "")) for c in writes[1:])

    def test_a_concurrent_change_is_kept(self, dns_provider, azure_api, record_name) -> None:
        dns_provider.present(ZONE, record_name, "ours", 60)
        current = azure_api.record_sets[(ZONE, record_name.removesuffix("." + ZONE))]

        def other_writer() -> None:  # changes the set, and so its ETag, between our GET and our PUT
            current["properties"]["TXTRecords"].append({"value": ["theirs"]})
            current["etag"] = "00000000-0000-0000-0000-000000000000"

        azure_api.before_next("PUT", other_writer)
        start = len(azure_api.requests)
        dns_provider.present(ZONE, record_name, "second", 60)
        assert set(azure_api.txt_values(record_name)) == {"ours", "theirs", "second"}
        assert [c.method for c in azure_api.requests[start:]] == ["GET", "PUT", "GET", "PUT"]  # 412, re-read, retry
        for value in ("ours", "theirs", "second"):
            dns_provider.cleanup(ZONE, record_name, value)
        assert azure_api.txt_values(record_name) == []

    def test_values_longer_than_one_string_are_split(self, dns_provider, azure_api, record_name) -> None:
        value = "x" * 300
        dns_provider.present(ZONE, record_name, value, 60)
        put = azure_api.calls("PUT")[-1]
        assert put.json["properties"]["TXTRecords"] == [{"value": ["x" * 255, "x" * 45]}]
        dns_provider.cleanup(ZONE, record_name, value)
        assert azure_api.txt_values(record_name) == []


# ---------------------------------------------------------------------------------------------------------------
# Route 53 (moto's server behind a signature-checking, recording proxy)
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def route53() -> Iterator[MotoRoute53]:
    with moto_route53([ZONE, SUB_ZONE]) as moto:
        yield moto


@pytest.fixture(scope="module")
def route53_proxy(route53) -> Iterator[RecordingProxy]:
    with route53.proxy() as proxy:
        yield proxy


R53_VALID = {"access_key_id": "AKIAIOSFODNN7EXAMPLE", "secret_access_key": REF}
R53_NS = {"r": "https://route53.amazonaws.com/doc/2013-04-01/"}


def route53_changes(proxy: RecordingProxy, start: int) -> list[tuple[str, str, int, list[str]]]:
    """(action, name, TTL, values) of every ChangeResourceRecordSets that reached the API since ``start``."""
    changes = []
    for call in proxy.requests[start:]:
        if call.method == "POST" and call.path.endswith("/rrset/"):
            root = ET.fromstring(call.body)
            for change in root.iterfind(".//r:Change", R53_NS):
                rrset = change.find("r:ResourceRecordSet", R53_NS)
                changes.append(
                    (
                        change.findtext("r:Action", namespaces=R53_NS),
                        rrset.findtext("r:Name", namespaces=R53_NS),
                        int(rrset.findtext("r:TTL", namespaces=R53_NS)),
                        [v.text for v in rrset.iterfind(".//r:Value", R53_NS)],
                    )
                )
    return changes


class TestRoute53(CloudProviderTests):
    provider_class = Route53Provider
    valid_configs = [R53_VALID, {**R53_VALID, "session_token": REF, "region": "eu-central-1", "wait_for_sync": False}]
    invalid_configs = [
        *invalid_common(R53_VALID, "secret_access_key", ["access_key_id", "secret_access_key"]),
        ({**R53_VALID, "access_key_id": "lowercase-key"}, "access_key_id"),
        ({**R53_VALID, "session_token": 7}, "session_token"),
        ({**R53_VALID, "region": "Europe"}, "region"),
        ({**R53_VALID, "wait_for_sync": "yes"}, "wait_for_sync"),
    ]

    @pytest.fixture
    def credentials(self, route53):
        return [route53.secret_access_key, route53.secret_access_key[::-1]]

    @pytest.fixture
    def dns_provider(self, route53, route53_proxy):
        return Route53Provider(
            {
                "access_key_id": route53.access_key_id,
                "secret_access_key": route53.secret_access_key,
                "endpoint_url": route53_proxy.url,
            }
        )

    @pytest.fixture
    def wrong_credentials(self, route53, route53_proxy):
        return Route53Provider(
            {
                "access_key_id": route53.access_key_id,
                "secret_access_key": route53.secret_access_key[::-1],
                "endpoint_url": route53_proxy.url,
            }
        )

    @pytest.fixture
    def stored_values(self, route53):
        return route53.txt_values

    @pytest.fixture
    def txt_lookup(self, route53):
        return lambda name: presentation_values(route53.txt_values(name))

    def test_change_sets_hold_the_full_value_set(self, dns_provider, route53, route53_proxy, record_name) -> None:
        start = len(route53_proxy.requests)
        dns_provider.present(None, record_name, "v1", 60)
        dns_provider.present(None, record_name, "v2", 60)
        dns_provider.cleanup(None, record_name, "v1")
        dns_provider.cleanup(None, record_name, "v2")
        name = record_name + "."
        assert route53_changes(route53_proxy, start) == [
            ("UPSERT", name, 60, ['"v1"']),
            ("UPSERT", name, 60, ['"v1"', '"v2"']),
            ("UPSERT", name, 60, ['"v2"']),
            ("DELETE", name, 60, ['"v2"']),  # exactly the set as it was, or Route 53 refuses
        ]
        calls = route53_proxy.requests[start:]
        credential = re.compile(
            rf"AWS4-HMAC-SHA256 Credential={route53.access_key_id}/[0-9]{{8}}/us-east-1/route53/aws4_request, "
        )
        assert all(credential.match(c.headers["authorization"]) for c in calls)
        # wait_for_sync (the default): every change is followed by GetChange until INSYNC.
        assert sum(c.method == "GET" and c.path.startswith("/2013-04-01/change/") for c in calls) == 4
        zone_id = route53.zone_ids[ZONE]
        reads = [c for c in calls if c.path == f"/2013-04-01/hostedzone/{zone_id}/rrset"]
        assert reads and all(c.arg("name") == name and c.arg("type") == "TXT" for c in reads)

    def test_unknown_access_key_is_an_error(self, route53, route53_proxy, record_name) -> None:
        provider = Route53Provider(
            {
                "access_key_id": "AKIAIOSFODNN7EXAMPLE",
                "secret_access_key": route53.secret_access_key,
                "endpoint_url": route53_proxy.url,
                "wait_for_sync": False,
            }
        )
        with pytest.raises(DnsProviderError, match="InvalidClientTokenId") as refused:
            provider.present(ZONE, record_name, "never", 60)
        assert route53.secret_access_key not in str(refused.value)

    def test_unreachable_endpoint_is_an_error(self, route53) -> None:
        provider = Route53Provider(
            {
                "access_key_id": route53.access_key_id,
                "secret_access_key": route53.secret_access_key,
                "endpoint_url": f"http://127.0.0.1:{closed_port()}",
            }
        )
        with pytest.raises(DnsProviderError, match="aws_route53: ListHostedZonesByName failed"):
            provider.find_zone(f"_acme-challenge.{ZONE}")


# ---------------------------------------------------------------------------------------------------------------
# The shared HTTP plumbing: timeouts, unreachable hosts, malformed answers, redaction
# ---------------------------------------------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EchoingApi(LocalApiServer):
    """Answers with whatever a test sets, echoing the token in its error text like a careless API would."""

    def __init__(self) -> None:
        super().__init__()
        self.reply: tuple[int, Any, dict[str, str]] = (200, {}, {})
        self.route("GET", r"/.*", lambda request: self.reply)


def test_http_errors_are_worded_safely() -> None:
    token = "tok-" + secrets.token_hex(20)
    with EchoingApi() as api:
        client = JsonApi(
            "demo",
            api.url,
            auth=lambda: {"Authorization": f"Bearer {token}"},
            secrets=(token,),
            error_detail=lambda body: body.get("message"),
        )
        api.reply = (401, {"message": f"token {token} is not valid"}, {})
        with pytest.raises(DnsProviderError) as refused:
            client.call("GET", "/zones")
        assert (
            str(refused.value)
            == "demo: GET /zones refused: authentication failed, HTTP 401 (token [redacted] is not valid)"
        )
        api.reply = (502, b"<html>bad gateway</html>", {"Content-Type": "text/html"})
        with pytest.raises(DnsProviderError, match=r"^demo: GET /zones refused: HTTP 502$"):
            client.call("GET", "/zones")
        api.reply = (200, b"<html>a login page</html>", {"Content-Type": "text/html"})
        with pytest.raises(DnsProviderError, match="not JSON"):
            client.call("GET", "/zones")
        # A "next page" link from a response may not take the token to another host.
        with pytest.raises(DnsProviderError, match=r"refusing to follow a link away from 127\.0\.0\.1"):
            client.call("GET", "https://elsewhere.test/zones?page=2")
        assert not [c for c in api.requests if "page" in c.query]
        api.reply = (200, {"zones": "not a list"}, {})
        with pytest.raises(DnsProviderError, match=r"unexpected response .* zones"):
            client.field(client.call("GET", "/zones").body, "zones", kind=list)


def test_unreachable_and_silent_hosts_are_errors_within_the_timeout() -> None:
    with pytest.raises(DnsProviderError, match="cannot reach"):
        JsonApi("demo", f"http://127.0.0.1:{closed_port()}").call("GET", "/")
    # A server that accepts the connection and never answers: the read timeout ends the call.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    accepted: list[socket.socket] = []
    thread = threading.Thread(target=lambda: accepted.append(silent.accept()[0]), daemon=True)
    thread.start()
    try:
        client = JsonApi("demo", f"http://127.0.0.1:{silent.getsockname()[1]}", timeout=(2.0, 0.5))
        with pytest.raises(DnsProviderError, match="timed out"):
            client.call("GET", "/")
    finally:
        thread.join(timeout=5)
        for conn in accepted:
            conn.close()
        silent.close()
