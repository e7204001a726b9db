"""Request schemas of the REST API, in one place (JSON Schema, draft 2020-12).

Resources validate bodies against these, and the OpenAPI document is built from them, so what the fuzzer is
told and what the daemon enforces cannot drift apart. Cross-field rules (an RSA key size with ``key_type: ec``)
live in the service functions, which name the field they refuse.
"""

from __future__ import annotations

from typing import Any

from ..plugins.api import SECRET_KEY_PATTERN, SECRET_REFERENCE_SCHEMA

NAME = {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]*$"}

SUBJECT_FIELDS: dict[str, Any] = {
    "organization": {"type": "string", "minLength": 1, "maxLength": 64},
    "ou": {"type": "string", "minLength": 1, "maxLength": 64},
    "country": {"type": "string", "pattern": "^[A-Z]{2}$"},
    "locality": {"type": "string", "minLength": 1, "maxLength": 128},
    "province": {"type": "string", "minLength": 1, "maxLength": 128},
}

CA_CREATE: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "common_name", "ca_type"],
    "properties": {
        "name": NAME,
        "common_name": {"type": "string", "minLength": 1, "maxLength": 64},
        "ca_type": {"enum": ["root", "intermediate"]},
        "parent_ca_id": {"type": "string", "minLength": 1, "maxLength": 64},
        "key_type": {"enum": ["rsa", "ec"]},
        "key_size": {"type": "integer", "enum": [2048, 3072, 4096, 256, 384]},
        "validity_days": {"type": "integer", "minimum": 1, "maximum": 36500},
        "max_path_length": {"type": "integer", "minimum": 0, "maximum": 16},
        **SUBJECT_FIELDS,
    },
}

DURATION = {
    "description": "a duration: '90d', '720h', '1h30m', '45s' or integer seconds",
    "oneOf": [{"type": "string", "minLength": 1, "maxLength": 32}, {"type": "integer", "minimum": 1}],
}
STRINGS = {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 255}, "maxItems": 100}

ROLE_SETTINGS: dict[str, Any] = {
    "ca_id": {"type": "string", "minLength": 1, "maxLength": 64},
    "allowed_domains": STRINGS,
    "allow_bare_domains": {"type": "boolean"},
    "allow_subdomains": {"type": "boolean"},
    "allow_glob_domains": {"type": "boolean"},
    "allow_wildcard_certificates": {"type": "boolean"},
    "allow_localhost": {"type": "boolean"},
    "allow_any_name": {"type": "boolean"},
    "enforce_hostnames": {"type": "boolean"},
    "allow_ip_sans": {"type": "boolean"},
    "allowed_ip_sans_cidr": STRINGS,
    "allowed_uri_sans": STRINGS,
    "require_cn": {"type": "boolean"},
    "ttl": {"oneOf": [DURATION, {"type": "null"}]},
    "max_ttl": DURATION,
    "not_before_duration": DURATION,
    "key_type": {"enum": ["rsa", "ec", "any"]},
    "key_bits": {"type": "integer", "enum": [0, 2048, 3072, 4096, 256, 384]},
    "key_usage": {"type": "array", "items": {"type": "string"}, "maxItems": 9},
    "ext_key_usage": {"type": "array", "items": {"type": "string"}, "maxItems": 20},
    "store_private_keys": {"type": "boolean"},
    **SUBJECT_FIELDS,
}

ROLE_CREATE: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "ca_id"],
    "properties": {"name": NAME, **ROLE_SETTINGS},
}

ROLE_UPDATE: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": ROLE_SETTINGS,
}

NAMES_REQUEST: dict[str, Any] = {
    "alt_names": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 253}, "maxItems": 100},
    "ip_sans": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 64}, "maxItems": 100},
    "uri_sans": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 2048}, "maxItems": 100},
}

SAN_OVERRIDE: dict[str, Any] = {
    "description": "replaces the names the CSR asks for",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "dns": NAMES_REQUEST["alt_names"],
        "ip": NAMES_REQUEST["ip_sans"],
        "uri": NAMES_REQUEST["uri_sans"],
    },
}

ISSUE: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["common_name"],
    "properties": {
        "common_name": {"type": "string", "minLength": 1, "maxLength": 253},
        "ttl": DURATION,
        **NAMES_REQUEST,
    },
}

SIGN: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["csr_pem"],
    "properties": {
        "csr_pem": {"type": "string", "minLength": 1, "maxLength": 65536},
        "ttl": DURATION,
        "san": SAN_OVERRIDE,
    },
}

CERTIFICATE_UPDATE: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": {
        "tags": {
            "type": "object",
            "maxProperties": 50,
            "propertyNames": {"minLength": 1, "maxLength": 64},
            "additionalProperties": {"type": "string", "maxLength": 256},
        },
        "description": {"type": "string", "maxLength": 1024},
    },
}

RENEW: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"ttl": DURATION},
}

# Every body the API accepts, by operation name (the OpenAPI operationId).
REQUEST_SCHEMAS: dict[str, dict[str, Any]] = {
    "create_ca": CA_CREATE,
    "create_role": ROLE_CREATE,
    "update_role": ROLE_UPDATE,
    "issue": ISSUE,
    "sign": SIGN,
    "update_certificate": CERTIFICATE_UPDATE,
    "renew_certificate": RENEW,
}

# The CSR approval workflow (pki.csr_workflow).
REASON = {"type": "string", "minLength": 1, "maxLength": 1024}
CSR_SAN_EMAILS = {"type": "array", "items": {"type": "string", "minLength": 3, "maxLength": 255}, "maxItems": 100}

CSR_CREATE: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["subject", "key_type"],
    "properties": {
        "subject": {
            "description": "an RFC 4514 string ('CN=svc.example.com,O=Example') or an object of subject fields",
            "oneOf": [
                {"type": "string", "maxLength": 1024},
                {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"common_name": {"type": "string", "minLength": 1, "maxLength": 64}, **SUBJECT_FIELDS},
                },
            ],
        },
        "san_dns": NAMES_REQUEST["alt_names"],
        "san_ip": NAMES_REQUEST["ip_sans"],
        "san_email": CSR_SAN_EMAILS,
        "key_type": {"enum": ["rsa", "ec"]},
        "key_size": {"type": "integer", "enum": [2048, 3072, 4096, 256, 384]},
    },
}

CSR_IMPORT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["csr_pem"],
    "properties": {"csr_pem": SIGN["properties"]["csr_pem"]},
}

CSR_APPROVE: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"reason": REASON},
}

CSR_REJECT: dict[str, Any] = {**CSR_APPROVE, "required": ["reason"]}

CSR_SIGN: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["ca_id"],
    "properties": {
        "ca_id": {"type": "string", "minLength": 1, "maxLength": 64},
        "validity_days": {"type": "integer", "minimum": 1, "maximum": 3650},
        "san": {**SAN_OVERRIDE, "properties": {**SAN_OVERRIDE["properties"], "email": CSR_SAN_EMAILS}},
    },
}

REQUEST_SCHEMAS.update(
    {
        "create_csr": CSR_CREATE,
        "import_csr": CSR_IMPORT,
        "approve_csr": CSR_APPROVE,
        "reject_csr": CSR_REJECT,
        "sign_csr": CSR_SIGN,
    }
)

# The secret store and DNS providers (issue 6). Provider configs are checked again against their type's schema.

SECRET_PUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["data"],
    "properties": {
        "data": {
            "description": "string values by key; replaces the secret's data whole",
            "type": "object",
            "minProperties": 1,
            "maxProperties": 100,
            "propertyNames": {"pattern": f"^{SECRET_KEY_PATTERN}$"},
            "additionalProperties": {"type": "string", "maxLength": 65536},
        }
    },
}

DNS_PROVIDER_TYPE = {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,63}$"}
DNS_PROVIDER_CONFIG = {
    "description": "the type's settings (see GET /v1/pki/dns-providers/types); secrets as {\"secret\": \"path#key\"}",
    "type": "object",
    "maxProperties": 64,
}

DNS_PROVIDER_CREATE: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "type", "config"],
    "properties": {"name": NAME, "type": DNS_PROVIDER_TYPE, "config": DNS_PROVIDER_CONFIG},
}

DNS_PROVIDER_UPDATE: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": DNS_PROVIDER_CREATE["properties"],
}

REQUEST_SCHEMAS.update(
    {
        "put_secret": SECRET_PUT,
        "create_dns_provider": DNS_PROVIDER_CREATE,
        "update_dns_provider": DNS_PROVIDER_UPDATE,
    }
)

# Trust anchors, import and validate (pki.trust). PEM fields are bounded well below max_body_bytes; a chain or
# CRL bundle is refused beyond 20 items by the service.
PEM_TEXT = {"type": "string", "minLength": 1, "maxLength": 65536}
PEM_BUNDLE = {"type": "string", "minLength": 1, "maxLength": 524288}

TRUST_ANCHOR_CREATE: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "certificate_pem"],
    "properties": {"name": NAME, "certificate_pem": PEM_TEXT},
}

TRUST_ANCHOR_CRL: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["crl_pem"],
    "properties": {"crl_pem": PEM_BUNDLE, "issuer_chain_pem": PEM_BUNDLE},
}

CERTIFICATE_IMPORT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["certificate_pem"],
    "properties": {
        "certificate_pem": PEM_TEXT,
        "private_key_pem": PEM_TEXT,
        "chain_pem": PEM_BUNDLE,
        "ca_id": {"type": "string", "minLength": 1, "maxLength": 64},
    },
}

CERTIFICATE_VALIDATE: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["certificate_pem"],
    "properties": {
        "certificate_pem": PEM_TEXT,
        "chain_pem": PEM_BUNDLE,
        "crls_pem": PEM_BUNDLE,
        "check_revocation": {"type": "boolean"},
        "validation_time": {"type": "string", "minLength": 1, "maxLength": 64},
        "hostname": {"type": "string", "minLength": 1, "maxLength": 255},
    },
}

REQUEST_SCHEMAS.update(
    {
        "create_trust_anchor": TRUST_ANCHOR_CREATE,
        "add_trust_anchor_crl": TRUST_ANCHOR_CRL,
        "import_certificate": CERTIFICATE_IMPORT,
        "validate_certificate": CERTIFICATE_VALIDATE,
    }
)

# Revocation (pki.revocation). Reasons are RFC 5280 names, checked by the service to name removeFromCRL's refusal.
REVOCATION_REASON = {"type": "string", "minLength": 1, "maxLength": 64}

REVOKE: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "serial_number": {"type": "string", "minLength": 1, "maxLength": 128},
        "ca_id": {"type": "string", "minLength": 1, "maxLength": 64},
        "certificate_pem": {"type": "string", "minLength": 1, "maxLength": 65536},
        "reason": REVOCATION_REASON,
        "use_acme": {"type": "boolean"},
    },
}

REVOKE_CA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"reason": REVOCATION_REASON},
}

REQUEST_SCHEMAS.update({"revoke": REVOKE, "revoke_ca": REVOKE_CA})

# ACME accounts (pki.acme_accounts). The backend's own schema checks environment/directory_url/EAB per provider.
ACME_ACCOUNT_CREATE: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "provider", "email"],
    "properties": {
        "name": NAME,
        "provider": {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,63}$"},
        "environment": {"enum": ["production", "staging"]},
        "email": {"type": "string", "minLength": 3, "maxLength": 254, "pattern": "^[^@\\s,:<>]+@[A-Za-z0-9.-]+$"},
        "directory_url": {"type": "string", "minLength": 1, "maxLength": 2048},
        "ca_bundle": {"type": "string", "minLength": 1, "maxLength": 262144},
        "eab_kid": {"type": "string", "minLength": 1, "maxLength": 256},
        "eab_hmac_key": {"oneOf": [{"type": "string", "minLength": 1, "maxLength": 512}, SECRET_REFERENCE_SCHEMA]},
    },
}

REQUEST_SCHEMAS.update({"create_acme_account": ACME_ACCOUNT_CREATE})

ACME_ISSUE: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["account_id", "domains"],
    "properties": {
        "account_id": {"type": "string", "minLength": 1, "maxLength": 64},
        "domains": {"type": "array", "minItems": 1, "maxItems": 100,
                    "items": {"type": "string", "minLength": 1, "maxLength": 255}},
        "challenge_type": {"enum": ["http-01", "dns-01", "tls-alpn-01"]},
        "dns_provider_id": {"type": "string", "minLength": 1, "maxLength": 64},
        "dns_manual": {"type": "boolean"},
        "auto_renew": {"type": "boolean"},
        "key_type": {"enum": ["ec", "rsa"]},
    },
}

REQUEST_SCHEMAS.update({"acme_issue": ACME_ISSUE})
