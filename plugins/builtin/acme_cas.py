"""The built-in ACME CA backends: Let's Encrypt, ZeroSSL, Buypass, Google Trust Services, and any RFC 8555 CA.

Each account names one of these as its ``provider``; its settings (``environment``, ``directory_url``,
``ca_bundle``, ``eab_kid``, ``eab_hmac_key``) are checked against the backend's ``config_schema``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from scaivault_pki.plugins.api import AcmeCaBackend, secret_or_string

_EAB_FIELDS: dict[str, Any] = {
    "eab_kid": {"type": "string", "minLength": 1, "maxLength": 256},
    "eab_hmac_key": secret_or_string(maxLength=512, pattern="^[A-Za-z0-9_=-]+$"),
}


def _schema(environments: tuple[str, ...], *, eab_required: bool) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {"environment": {"enum": list(environments)}, **_EAB_FIELDS},
        "dependentRequired": {"eab_kid": ["eab_hmac_key"], "eab_hmac_key": ["eab_kid"]},
    }
    if eab_required:
        schema["required"] = ["eab_kid", "eab_hmac_key"]
    return schema


class _PublicAcmeCa(AcmeCaBackend):
    """A public CA with fixed directories: its config schema follows from ``directory_urls`` and ``eab_required``."""

    secret_fields = ("eab_hmac_key",)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.config_schema = _schema(tuple(cls.directory_urls), eab_required=cls.eab_required)


class LetsEncrypt(_PublicAcmeCa):
    """Let's Encrypt (ISRG)."""

    type_name = "letsencrypt"
    directory_urls: ClassVar[dict[str, str]] = {
        "production": "https://acme-v02.api.letsencrypt.org/directory",
        "staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
    }


class ZeroSsl(_PublicAcmeCa):
    """ZeroSSL (Sectigo); External Account Binding credentials come from the ZeroSSL dashboard."""

    type_name = "zerossl"
    # ZeroSSL has no staging directory.
    directory_urls: ClassVar[dict[str, str]] = {"production": "https://acme.zerossl.com/v2/DV90"}
    eab_required = True


class Buypass(_PublicAcmeCa):
    """Buypass Go SSL."""

    type_name = "buypass"
    directory_urls: ClassVar[dict[str, str]] = {
        "production": "https://api.buypass.com/acme/directory",
        "staging": "https://api.test4.buypass.no/acme/directory",
    }


class GoogleTrustServices(_PublicAcmeCa):
    """Google Trust Services; EAB credentials from ``gcloud publicca external-account-keys create``."""

    type_name = "google"
    directory_urls: ClassVar[dict[str, str]] = {
        "production": "https://dv.acme-v02.api.pki.goog/directory",
        "staging": "https://dv.acme-v02.test-api.pki.goog/directory",
    }
    eab_required = True


class CustomAcme(AcmeCaBackend):
    """Any RFC 8555 directory (a private ACME CA, Pebble); EAB when that directory requires it."""

    type_name = "custom"
    config_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["directory_url"],
        "properties": {
            "environment": {"enum": ["production", "staging"]},
            "directory_url": {"type": "string", "pattern": "^https://[^\\s]+$", "maxLength": 2048},
            # PEM of the CA certificates to trust for the directory's HTTPS (instead of the system's).
            "ca_bundle": {"type": "string", "minLength": 1, "maxLength": 262144},
            **_EAB_FIELDS,
        },
        "dependentRequired": {"eab_kid": ["eab_hmac_key"], "eab_hmac_key": ["eab_kid"]},
    }
    secret_fields = ("eab_hmac_key",)


BUILTIN_ACME_CA_BACKENDS: tuple[type[AcmeCaBackend], ...] = (LetsEncrypt, ZeroSsl, Buypass, GoogleTrustServices, CustomAcme)
