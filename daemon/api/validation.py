"""Reading JSON bodies and query parameters, with 4xx errors that name the field at fault."""

from __future__ import annotations

import json
from typing import Any

import jsonschema

from ..errors import ApiError
from ..schema.api import REQUEST_SCHEMAS

_VALIDATORS = {
    name: jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    for name, schema in REQUEST_SCHEMAS.items()
}

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100


def _field_path(error: jsonschema.ValidationError, prefix: str = "") -> str:
    return ".".join(filter(None, [prefix, *(str(p) for p in error.absolute_path)]))


def schema_error(error: jsonschema.ValidationError, prefix: str = "") -> ApiError:
    """Turn the first schema violation into a 400 that names the field (under ``prefix``, for nested documents)."""
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else "?"
        field = ".".join(filter(None, [_field_path(error, prefix), missing]))
        return ApiError("missing_field", f"{field}: is required", {"field": field})
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        field = ".".join(filter(None, [_field_path(error, prefix), extra[0] if extra else "?"]))
        return ApiError("unknown_field", f"{field}: is not a known field", {"field": field})
    field = _field_path(error, prefix) or "(body)"
    return ApiError("invalid_field", f"{field}: {error.message}", {"field": field})


def parse_body(raw: bytes, schema_name: str) -> dict[str, Any]:
    """Decode a JSON body and check it against the named request schema."""
    try:
        body = json.loads(raw.decode("utf-8")) if raw else None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError("invalid_json", f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError("invalid_json", "request body must be a JSON object")
    errors = sorted(_VALIDATORS[schema_name].iter_errors(body), key=lambda e: (list(e.absolute_path), e.validator))
    if errors:
        raise schema_error(errors[0])
    return body


def parse_limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_LIMIT
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise ApiError("invalid_field", f"limit: must be an integer from 1 to {MAX_LIMIT}", {"field": "limit"})
    return int(value)
