"""Built-in plugins, registered through the same entry point as third-party ones.

``pyproject.toml`` declares ``builtin = "scaivault_pki.plugins.builtin"`` in the ``scaivault_pki.plugins``
entry-point group; the plugin manager loads this module like any other plugin, so ``disabled_plugins =
["builtin"]`` switches the built-ins off the same way it does a third-party plugin.
"""

from __future__ import annotations

from scaivault_pki.plugins.api import AcmeCaBackend, DnsProvider
from scaivault_pki.plugins.builtin.acme_cas import BUILTIN_ACME_CA_BACKENDS
from scaivault_pki.plugins.builtin.dns_aws_route53 import Route53Provider
from scaivault_pki.plugins.builtin.dns_azure_dns import AzureDnsProvider
from scaivault_pki.plugins.builtin.dns_cloudflare import CloudflareProvider
from scaivault_pki.plugins.builtin.dns_digitalocean import DigitalOceanProvider
from scaivault_pki.plugins.builtin.dns_google_cloud_dns import GoogleCloudDnsProvider
from scaivault_pki.plugins.builtin.dns_hetzner import HetznerProvider
from scaivault_pki.plugins.builtin.dns_rfc2136 import Rfc2136Provider
from scaivault_pki.plugins.spec import hookimpl

#: Every built-in DNS provider type. Cloud providers append their class here.
BUILTIN_DNS_PROVIDERS: tuple[type[DnsProvider], ...] = (
    Rfc2136Provider,
    CloudflareProvider,
    Route53Provider,
    GoogleCloudDnsProvider,
    AzureDnsProvider,
    DigitalOceanProvider,
    HetznerProvider,
)


@hookimpl
def scaivault_pki_dns_provider_types() -> list[type[DnsProvider]]:
    """The built-in DNS provider types."""
    return list(BUILTIN_DNS_PROVIDERS)


@hookimpl
def scaivault_pki_acme_ca_backends() -> list[type[AcmeCaBackend]]:
    """The built-in ACME CA backends."""
    return list(BUILTIN_ACME_CA_BACKENDS)
