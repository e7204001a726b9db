"""A minimal tenant-scoped secret store: string maps by path, sealed at rest under the HSM-held key.

Each secret is one row whose ``ciphertext`` is the AES-256-GCM envelope (``Envelope.seal``) over the JSON of its
data, with ``secret:{tenant_id}:{path}`` as associated data: a blob copied to another tenant's or path's row does
not open. Paths, versions and times are plain (lists show them); values exist in clear only in the request that
writes them, the one that reads them, and at use time (``resolve_reference``). Never logged.

(Named ``secret_store`` rather than ``secrets`` so it is never confused with the standard library's module.)
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any

import peewee

from .errors import ApiError, invalid_field, not_found
from .paging import paginate
from .plugins.api import SECRET_PATH_PATTERN
from .schema.db import write_transaction
from .schema.models import Secret, utcnow

log = logging.getLogger("scaivault_pki.secrets")

MAX_PATH_LENGTH = 255
MAX_PATH_DEPTH = 8
_PATH = re.compile(f"^{SECRET_PATH_PATTERN}$")


@dataclass(frozen=True)
class SecretReference:
    """``path#key``: one value inside one secret."""

    path: str
    key: str

    @classmethod
    def parse(cls, text: str) -> SecretReference:
        path, _, key = text.partition("#")
        return cls(path, key)

    def __str__(self) -> str:
        return f"{self.path}#{self.key}"


def check_path(path: str, field: str = "path") -> str:
    """``path`` if it is a valid secret path (segments of ``[A-Za-z0-9._-]``, no ``.``/``..``); 400 otherwise."""
    if len(path) > MAX_PATH_LENGTH:
        raise invalid_field(field, f"at most {MAX_PATH_LENGTH} characters")
    if not _PATH.match(path):
        raise invalid_field(field, "segments of letters, digits, '.', '_' and '-', separated by '/'")
    segments = path.split("/")
    if len(segments) > MAX_PATH_DEPTH:
        raise invalid_field(field, f"at most {MAX_PATH_DEPTH} segments")
    if any(segment in (".", "..") for segment in segments):
        raise invalid_field(field, "'.' and '..' are not path segments here")
    return path


def secret_context(tenant_id: str, path: str) -> bytes:
    """The envelope's associated data: a sealed secret opens only for its own tenant and path."""
    return f"secret:{tenant_id}:{path}".encode()


def _get(tenant_id: str, path: str) -> Secret:
    try:
        return Secret.get((Secret.tenant == tenant_id) & (Secret.path == path))
    except peewee.DoesNotExist:
        raise not_found("secret") from None


def put_secret(envelope: Any, tenant_id: str, path: str, data: dict[str, str]) -> tuple[Secret, bool]:
    """Create or replace the secret at ``path``; returns the row and whether it was created.

    Sealing happens before the transaction (an HSM round trip should not hold the write lock).
    """
    check_path(path)
    ciphertext = envelope.seal(json.dumps(data, sort_keys=True).encode("utf-8"), secret_context(tenant_id, path))
    now = utcnow()
    with write_transaction():
        row = Secret.get_or_none((Secret.tenant == tenant_id) & (Secret.path == path))
        created = row is None
        if created:
            row = Secret.create(tenant=tenant_id, path=path, ciphertext=ciphertext, version=1, created_at=now, updated_at=now)
        else:
            row.ciphertext = ciphertext
            row.version += 1
            row.updated_at = max(now, row.updated_at)
            row.save()
    log.info("secret written", extra={"tenant_id": tenant_id, "path": path, "version": row.version})
    return row, created


def read_secret(envelope: Any, tenant_id: str, path: str) -> tuple[Secret, dict[str, str]]:
    """The secret's row and its data (decrypted)."""
    check_path(path)
    row = _get(tenant_id, path)
    return row, _open(envelope, row)


def _open(envelope: Any, row: Secret) -> dict[str, str]:
    return json.loads(envelope.open(row.ciphertext, secret_context(row.tenant_id, row.path)))


def delete_secret(tenant_id: str, path: str) -> None:
    """Delete the secret; DNS providers referring to it fail at use time with ``secret_not_found``."""
    check_path(path)
    with write_transaction():
        _get(tenant_id, path).delete_instance()
    log.info("secret deleted", extra={"tenant_id": tenant_id, "path": path})


def list_secrets(tenant_id: str, prefix: str, limit: int, cursor: str | None) -> tuple[list[Secret], str | None]:
    """A page of the tenant's secrets whose path starts with ``prefix`` (plain string prefix)."""
    if len(prefix) > MAX_PATH_LENGTH:
        raise invalid_field("prefix", f"at most {MAX_PATH_LENGTH} characters")
    query = Secret.select(Secret.id, Secret.tenant, Secret.path, Secret.version, Secret.created_at, Secret.updated_at)
    query = query.where(Secret.tenant == tenant_id)
    if prefix:
        # SUBSTR rather than LIKE: '_' is allowed in paths and is a LIKE wildcard; SUBSTR is exact everywhere.
        query = query.where(peewee.fn.SUBSTR(Secret.path, 1, len(prefix)) == prefix)
    return paginate(query, Secret, limit, cursor)


def resolve_reference(envelope: Any, tenant_id: str, reference: SecretReference, field: str) -> str:
    """The value a reference points to; 422 ``secret_not_found`` naming ``field`` when path or key is missing."""
    row = Secret.get_or_none((Secret.tenant == tenant_id) & (Secret.path == reference.path))
    data = _open(envelope, row) if row is not None else {}
    if reference.key not in data:
        what = "secret" if row is None else "key in the secret"
        raise ApiError(
            "secret_not_found",
            f"{field}: refers to {reference}, but that {what} does not exist; store it with PUT /v1/secrets/{reference.path}",
            {"rule": "secret_not_found", "field": field, "secret": str(reference)},
        )
    return data[reference.key]
