"""A pytest test base for DNS provider plugins: the behaviour every provider owes the daemon, checked once.

Third-party authors (and the built-ins) subclass it; pytest collects the inherited tests::

    from scaivault_pki.plugins.testing import DnsProviderTestBase

    class TestMyProvider(DnsProviderTestBase):
        provider_class = MyProvider
        zone = "example.test"
        valid_configs = [{"api_token": {"secret": "dns/my#token"}}]
        invalid_configs = [({"api_token": 5}, "api_token"), ({}, "api_token")]

        @pytest.fixture
        def dns_provider(self, my_fake_api):          # an instance, secret fields already resolved
            return MyProvider({"api_token": "t0ken", "endpoint": my_fake_api.url})

        @pytest.fixture
        def txt_lookup(self, my_fake_api):            # how to read the zone: name -> set of TXT values
            return my_fake_api.txt_values

The base checks: the class is a type the daemon accepts; present makes the value visible; present twice is one
value; several values at one name coexist and cleanup removes only its own; cleanup is idempotent (and fine
for a value never presented); the zone is found when not given; the config schema accepts ``valid_configs``
and refuses each of ``invalid_configs`` naming the field (as the API's 400 would); secret fields refuse a
literal secret. Needs pytest, and the daemon installed (``scaivault_pki``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import pytest

from .api import DnsProvider

TxtLookup = Callable[[str], set[str]]


class DnsProviderTestBase:
    """Inherit in a ``Test*`` class; set the class attributes and override the two fixtures."""

    #: The provider class under test.
    provider_class: ClassVar[type[DnsProvider]]
    #: A zone the provider under test may change (apex, no trailing dot).
    zone: ClassVar[str]
    #: Stored configs (secret fields as references) the daemon must accept.
    valid_configs: ClassVar[Sequence[Mapping[str, Any]]] = ()
    #: (stored config, field) pairs the daemon must refuse with a 400 naming ``config.<field>``.
    invalid_configs: ClassVar[Sequence[tuple[Mapping[str, Any], str]]] = ()
    #: TTL used for test records.
    ttl: ClassVar[int] = 60

    @pytest.fixture
    def dns_provider(self) -> DnsProvider:
        """Override: a provider instance (secrets resolved) pointed at a zone the test may change."""
        pytest.fail(f"{type(self).__name__} must override the dns_provider fixture")

    @pytest.fixture
    def txt_lookup(self) -> TxtLookup:
        """Override: a function returning the TXT values the zone serves at a name (as the provider's DNS has it)."""
        pytest.fail(f"{type(self).__name__} must override the txt_lookup fixture")

    @pytest.fixture
    def record_name(self) -> str:
        """A fresh ``_acme-challenge`` name per test, so tests never see each other's records."""
        return f"_acme-challenge.t{uuid.uuid4().hex[:10]}.{self.zone}"

    # -- the class ---------------------------------------------------------------------------------------

    def test_class_is_a_valid_provider_type(self) -> None:
        from .manager import check_registered_class

        check_registered_class(self.provider_class, DnsProvider)

    def test_schema_accepts_valid_configs(self) -> None:
        from scaivault_pki.pki.dns_providers import validate_provider_config

        assert self.valid_configs, "list at least one valid stored config in valid_configs"
        for config in self.valid_configs:
            validate_provider_config(self.provider_class, dict(config))

    def test_schema_refuses_invalid_configs(self) -> None:
        from scaivault_pki.errors import ApiError
        from scaivault_pki.pki.dns_providers import validate_provider_config

        assert self.invalid_configs, "list the configs the schema must refuse in invalid_configs"
        for config, field in self.invalid_configs:
            with pytest.raises(ApiError) as refused:
                validate_provider_config(self.provider_class, dict(config))
            assert refused.value.status == 400, (config, refused.value.message)
            assert refused.value.details["field"] == f"config.{field}", (config, refused.value.message)

    def test_secret_fields_refuse_literal_secrets(self) -> None:
        from scaivault_pki.errors import ApiError
        from scaivault_pki.pki.dns_providers import validate_provider_config

        for config in self.valid_configs:
            for field in self.provider_class.secret_fields:
                if field not in config:
                    continue
                with pytest.raises(ApiError) as refused:
                    validate_provider_config(self.provider_class, {**config, field: "a-literal-secret-value"})
                assert refused.value.details["field"] == f"config.{field}"

    # -- behaviour against the zone ------------------------------------------------------------------------

    def test_present_then_cleanup(self, dns_provider: DnsProvider, txt_lookup: TxtLookup, record_name: str) -> None:
        dns_provider.present(self.zone, record_name, "value-one", self.ttl)
        assert "value-one" in txt_lookup(record_name)
        dns_provider.cleanup(self.zone, record_name, "value-one")
        assert "value-one" not in txt_lookup(record_name)

    def test_present_is_idempotent(self, dns_provider: DnsProvider, txt_lookup: TxtLookup, record_name: str) -> None:
        dns_provider.present(self.zone, record_name, "same-value", self.ttl)
        dns_provider.present(self.zone, record_name, "same-value", self.ttl)
        assert txt_lookup(record_name) == {"same-value"}
        dns_provider.cleanup(self.zone, record_name, "same-value")
        assert txt_lookup(record_name) == set()

    def test_several_values_coexist(self, dns_provider: DnsProvider, txt_lookup: TxtLookup, record_name: str) -> None:
        # An order for example.com and *.example.com needs two values at one name at the same time.
        dns_provider.present(self.zone, record_name, "first-value", self.ttl)
        dns_provider.present(self.zone, record_name, "second-value", self.ttl)
        assert txt_lookup(record_name) == {"first-value", "second-value"}
        dns_provider.cleanup(self.zone, record_name, "first-value")
        assert txt_lookup(record_name) == {"second-value"}
        dns_provider.cleanup(self.zone, record_name, "second-value")
        assert txt_lookup(record_name) == set()

    def test_cleanup_is_idempotent(self, dns_provider: DnsProvider, txt_lookup: TxtLookup, record_name: str) -> None:
        dns_provider.cleanup(self.zone, record_name, "never-presented")
        dns_provider.present(self.zone, record_name, "once", self.ttl)
        dns_provider.cleanup(self.zone, record_name, "once")
        dns_provider.cleanup(self.zone, record_name, "once")
        assert txt_lookup(record_name) == set()

    def test_zone_found_when_not_given(self, dns_provider: DnsProvider, txt_lookup: TxtLookup, record_name: str) -> None:
        assert dns_provider.find_zone(record_name) == self.zone
        dns_provider.present(None, record_name, "zone-found", self.ttl)
        assert "zone-found" in txt_lookup(record_name)
        dns_provider.cleanup(None, record_name, "zone-found")
        assert "zone-found" not in txt_lookup(record_name)
