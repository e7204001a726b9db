"""Request schemas of the REST API, in one place (JSON Schema, draft 2020-12).

Resources validate bodies against these, and the OpenAPI document is built from them, so what the fuzzer is
told and what the daemon enforces cannot drift apart. Cross-field rules (an RSA key size with ``key_type: ec``)
live in the service functions, which name the field they refuse.
"""

from __future__ import annotations

from typing import Any

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

# Every body the API accepts, by operation name (the OpenAPI operationId).
REQUEST_SCHEMAS: dict[str, dict[str, Any]] = {
    "create_ca": CA_CREATE,
}
