"""Roles: named issuance policies bound to one CA. Stored as a settings document, checked by ``RolePolicy``."""

from __future__ import annotations

import datetime as dt
from typing import Any

import peewee

from ..durations import format_duration, parse_duration
from ..errors import ApiError, invalid_field, not_found
from ..schema.db import write_transaction
from ..schema.models import Role, utcnow
from . import extensions as ext
from .authorities import get_ca
from .policy import RolePolicy

# Vault's defaults where Vault has one; a role without a choice issues 30-day serverAuth+clientAuth certs.
ROLE_DEFAULTS: dict[str, Any] = {
    "allowed_domains": [],
    "allow_bare_domains": False,
    "allow_subdomains": False,
    "allow_glob_domains": False,
    "allow_wildcard_certificates": True,
    "allow_localhost": True,
    "allow_any_name": False,
    "enforce_hostnames": True,
    "allow_ip_sans": True,
    "allowed_ip_sans_cidr": [],
    "allowed_uri_sans": [],
    "require_cn": True,
    "ttl": None,
    "max_ttl": "30d",
    "not_before_duration": "30s",
    "key_type": "rsa",
    "key_bits": 0,
    "key_usage": [],
    "ext_key_usage": ["server_auth", "client_auth"],
    "store_private_keys": False,
    "organization": None,
    "ou": None,
    "country": None,
    "locality": None,
    "province": None,
}

POLICY_FIELDS = (
    "allowed_domains", "allow_bare_domains", "allow_subdomains", "allow_glob_domains",
    "allow_wildcard_certificates", "allow_localhost", "allow_any_name", "enforce_hostnames", "allow_ip_sans",
    "allowed_ip_sans_cidr", "allowed_uri_sans", "require_cn", "ttl", "max_ttl", "key_type", "key_bits",
)

# Vault spells usages in CamelCase; we accept that and our snake_case names, and store snake_case.
_KEY_USAGE_ALIASES = {
    "digitalsignature": "digital_signature",
    "contentcommitment": "non_repudiation",
    "nonrepudiation": "non_repudiation",
    "keyencipherment": "key_encipherment",
    "dataencipherment": "data_encipherment",
    "keyagreement": "key_agreement",
    "encipheronly": "encipher_only",
    "decipheronly": "decipher_only",
}
_EXT_KEY_USAGE_ALIASES = {
    "serverauth": "server_auth",
    "clientauth": "client_auth",
    "codesigning": "code_signing",
    "emailprotection": "email_protection",
    "timestamping": "time_stamping",
    "ocspsigning": "ocsp_signing",
}
_LEAF_KEY_USAGES = {"digital_signature", "non_repudiation", "key_encipherment", "data_encipherment",
                    "key_agreement", "encipher_only", "decipher_only"}


def _canonical_usage(field: str, values: list[str], aliases: dict[str, str], allowed: set[str] | None) -> list[str]:
    out: list[str] = []
    for value in values:
        key = value.replace("_", "").replace("-", "").lower()
        name = aliases.get(key, value if value in aliases.values() else None)
        if name is None and allowed is None and _is_oid(value):
            name = value
        if name is None or (allowed is not None and name not in allowed):
            raise invalid_field(field, f"unknown usage {value!r}")
        if name not in out:
            out.append(name)
    return out


def _is_oid(value: str) -> bool:
    parts = value.split(".")
    return len(parts) >= 2 and all(p.isascii() and p.isdigit() for p in parts)


def normalise_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """A role's full settings document: defaults filled in, durations and usages in canonical form.

    Raises 400 naming the field for anything the policy cannot use.
    """
    out = {**ROLE_DEFAULTS, **settings}
    for field in ("ttl", "max_ttl", "not_before_duration"):
        if out[field] is not None:
            try:
                out[field] = format_duration(parse_duration(out[field]))
            except ValueError as exc:
                raise ApiError("invalid_duration", f"{field}: {exc}", {"field": field}) from None
    out["key_usage"] = _canonical_usage("key_usage", out["key_usage"], _KEY_USAGE_ALIASES, _LEAF_KEY_USAGES)
    out["ext_key_usage"] = _canonical_usage("ext_key_usage", out["ext_key_usage"], _EXT_KEY_USAGE_ALIASES, None)
    if out["key_type"] == "ec" and {"key_encipherment", "data_encipherment"} & set(out["key_usage"]):
        raise invalid_field("key_usage", "an EC key cannot encipher; drop key_encipherment/data_encipherment")
    try:
        ext.extended_key_usage(out["ext_key_usage"]) if out["ext_key_usage"] else None
    except ValueError as exc:
        raise invalid_field("ext_key_usage", str(exc)) from None
    policy = _policy_or_400(out)
    # Store what the policy will match on: lower-case A-labels, canonical CIDRs.
    out["allowed_domains"] = list(policy.allowed_domains)
    out["allowed_ip_sans_cidr"] = list(policy.allowed_ip_sans_cidr)
    if parse_duration(out["not_before_duration"]) > dt.timedelta(hours=1):
        raise invalid_field("not_before_duration", "at most 1h: backdating is for clock skew only")
    return out


def _policy_or_400(settings: dict[str, Any]) -> RolePolicy:
    fields = {k: settings[k] for k in POLICY_FIELDS}
    for name in ("ttl", "max_ttl"):
        fields[name] = parse_duration(fields[name]) if fields[name] is not None else None
    try:
        return RolePolicy.from_mapping(fields)
    except ValueError as exc:
        message = str(exc)
        field = message.split(":", 1)[0] if ":" in message else "role"
        raise invalid_field(field, message.split(":", 1)[-1].strip()) from None


_POLICIES: dict[tuple[str, dt.datetime], RolePolicy] = {}
_POLICY_CACHE_SIZE = 1024


def role_policy(role: Role) -> RolePolicy:
    """The role's policy, built once per role version and process (issuance is the hot path).

    ``updated_at`` strictly increases on every update (see ``update_role``), so it versions the settings.
    """
    key = (role.id, role.updated_at)
    policy = _POLICIES.get(key)
    if policy is None:
        if len(_POLICIES) >= _POLICY_CACHE_SIZE:
            _POLICIES.clear()
        policy = _POLICIES[key] = _policy_or_400(role.config)
    return policy


def get_role(tenant_id: str, name: str) -> Role:
    try:
        return Role.get((Role.tenant == tenant_id) & (Role.name == name))
    except peewee.DoesNotExist:
        raise not_found("role") from None


def _settings_from_body(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in ("name", "ca_id")}


def create_role(tenant_id: str, body: dict[str, Any]) -> Role:
    ca = get_ca(tenant_id, body["ca_id"])
    settings = normalise_settings(_settings_from_body(body))
    try:
        with write_transaction():
            return Role.create(tenant=tenant_id, name=body["name"], ca=ca, config=settings)
    except peewee.IntegrityError:
        raise ApiError("already_exists", f"a role named {body['name']!r} already exists", {"field": "name"}) from None


def update_role(tenant_id: str, name: str, body: dict[str, Any]) -> Role:
    """Apply a partial update; fields left out keep their values."""
    with write_transaction():
        role = get_role(tenant_id, name)
        if "ca_id" in body:
            role.ca = get_ca(tenant_id, body["ca_id"])
        role.config = normalise_settings({**role.config, **_settings_from_body(body)})
        role.updated_at = max(utcnow(), role.updated_at + dt.timedelta(seconds=1))
        role.save()
    return role


def delete_role(tenant_id: str, name: str) -> None:
    with write_transaction():
        get_role(tenant_id, name).delete_instance()
