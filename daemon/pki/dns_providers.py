"""Configured DNS providers: a plugin type plus its config, with secrets kept as references.

A config is validated against its type's JSON Schema on create and update (400 naming ``config.<field>``).
Secret-bearing fields (the type's ``secret_fields``) must be references ``{"secret": "path#key"}``: the stored
config, and so every GET, never holds a secret. References are resolved only in :func:`resolve_provider`, when
a provider is about to be used; a reference to nothing is a 422 ``secret_not_found`` then.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import jsonschema
import peewee

from ..api.validation import schema_error
from ..errors import ApiError, invalid_field, not_found
from ..plugins.api import DnsProvider, DnsProviderError
from ..plugins.manager import PluginHost
from ..schema.db import write_transaction
from ..schema.models import DnsProviderConfig, utcnow
from ..secret_store import SecretReference, check_path, resolve_reference

log = logging.getLogger("scaivault_pki.dns_providers")

_VALIDATORS: dict[type[DnsProvider], jsonschema.Draft202012Validator] = {}


def _validator(cls: type[DnsProvider]) -> jsonschema.Draft202012Validator:
    validator = _VALIDATORS.get(cls)
    if validator is None:
        validator = _VALIDATORS[cls] = jsonschema.Draft202012Validator(cls.config_schema, format_checker=jsonschema.FormatChecker())
    return validator


def provider_class(plugins: PluginHost, type_name: str) -> type[DnsProvider]:
    """The installed class of ``type_name``; 400 naming ``type`` when no plugin provides it."""
    types = plugins.dns_provider_types()
    if type_name not in types:
        raise invalid_field("type", f"no installed DNS provider type {type_name!r}; installed: {', '.join(types) or '(none)'}")
    return types[type_name]


def validate_provider_config(cls: type[DnsProvider], config: dict[str, Any]) -> None:
    """Check ``config`` as stored: the type's schema, and secret fields given as references only.

    Raises 400 naming the field (``config.api_token``). Used by the API and by ``plugins.testing``.
    """
    errors = sorted(_validator(cls).iter_errors(config), key=lambda e: (list(e.absolute_path), e.validator))
    if errors:
        raise schema_error(errors[0], prefix="config")
    for field in cls.secret_fields:
        if field in config and not _is_reference(config[field]):
            raise invalid_field(
                f"config.{field}",
                'give a secret reference {"secret": "path#key"} (store the value with PUT /v1/secrets/{path}), '
                "not the secret itself",
            )
        if field in config:
            check_path(SecretReference.parse(config[field]["secret"]).path, f"config.{field}")


def _is_reference(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"secret"} and isinstance(value["secret"], str)


def get_provider(tenant_id: str, provider_id: str) -> DnsProviderConfig:
    try:
        return DnsProviderConfig.get((DnsProviderConfig.tenant == tenant_id) & (DnsProviderConfig.id == provider_id))
    except peewee.DoesNotExist:
        raise not_found("DNS provider") from None


def _name_taken(name: str) -> ApiError:
    return ApiError("already_exists", f"a DNS provider named {name!r} already exists", {"field": "name"})


def create_provider(plugins: PluginHost, tenant_id: str, body: dict[str, Any]) -> DnsProviderConfig:
    """Store a new provider after validating its config against its type."""
    cls = provider_class(plugins, body["type"])
    config = body.get("config", {})
    validate_provider_config(cls, config)
    try:
        with write_transaction():
            row = DnsProviderConfig.create(tenant=tenant_id, name=body["name"], type=body["type"], config=config)
    except peewee.IntegrityError:
        raise _name_taken(body["name"]) from None
    log.info("dns provider created", extra={"tenant_id": tenant_id, "provider_id": row.id, "type": row.type})
    return row


def update_provider(plugins: PluginHost, tenant_id: str, provider_id: str, body: dict[str, Any]) -> DnsProviderConfig:
    """Change ``name``, ``type`` and/or ``config``; a given ``config`` replaces the old one whole.

    The result is validated as a whole, so changing ``type`` alone checks the old config against the new type.
    """
    try:
        with write_transaction():
            row = get_provider(tenant_id, provider_id)
            type_name = body.get("type", row.type)
            config = body.get("config", row.config)
            validate_provider_config(provider_class(plugins, type_name), config)
            row.name = body.get("name", row.name)
            row.type = type_name
            row.config = config
            row.updated_at = max(utcnow(), row.updated_at + dt.timedelta(seconds=1))
            row.save()
    except peewee.IntegrityError:
        raise _name_taken(body["name"]) from None
    return row


def delete_provider(tenant_id: str, provider_id: str) -> None:
    with write_transaction():
        get_provider(tenant_id, provider_id).delete_instance()


def resolve_provider(tenant_id: str, provider_id: str, *, plugins: PluginHost, envelope: Any) -> DnsProvider:
    """A ready provider instance for ``provider_id``: secrets resolved from the tenant's store, class constructed.

    For the ACME order driver, at the moment a dns-01 challenge is prepared. Raises 404 for an unknown id,
    422 ``dns_provider_type_unavailable`` when the type's plugin is gone or disabled, 422 ``secret_not_found``
    naming the field when a reference points to nothing, 422 ``dns_provider_misconfigured`` when a resolved
    value does not fit the type (the message never quotes the value).
    """
    row = get_provider(tenant_id, provider_id)
    cls = plugins.dns_provider_types().get(row.type)
    if cls is None:
        raise ApiError(
            "dns_provider_type_unavailable",
            f"DNS provider {row.name!r} has type {row.type!r}, which no installed plugin provides",
            {"rule": "dns_provider_type_unavailable", "type": row.type},
        )
    resolved = dict(row.config)
    for field in cls.secret_fields:
        if _is_reference(resolved.get(field)):
            reference = SecretReference.parse(resolved[field]["secret"])
            resolved[field] = resolve_reference(envelope, tenant_id, reference, f"config.{field}")
    errors = sorted(_validator(cls).iter_errors(resolved), key=lambda e: (list(e.absolute_path), e.validator))
    if errors:
        # Only the field: jsonschema's message quotes the value, which may now be a secret.
        field = ".".join(["config", *(str(p) for p in errors[0].absolute_path)])
        raise ApiError("dns_provider_misconfigured", f"{field}: the resolved value does not fit the {row.type} schema",
                       {"rule": "config_schema", "field": field})
    try:
        return cls(resolved)
    except DnsProviderError as exc:
        raise ApiError("dns_provider_misconfigured", f"DNS provider {row.name!r}: {exc}", {"rule": "provider"}) from None
