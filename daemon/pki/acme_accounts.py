"""ACME accounts: registration at a CA backend, listing, key rollover, and deactivation (the record is kept).

The account key is generated here (EC P-256), sealed under the HSM-held key-encryption key bound to
``acme-account:{id}``, and never returned. An EAB HMAC key, literal or a secret reference, is used for the
registration only and never stored; only the key id is kept, for the record.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import jsonschema
import peewee

from ..api.validation import schema_error
from ..errors import ApiError, invalid_field, not_found
from ..paging import paginate
from ..plugins.api import AcmeCaBackend
from ..plugins.manager import PluginHost
from ..schema.db import write_transaction
from ..schema.models import AcmeAccount, new_id, utcnow
from ..secret_store import SecretReference, check_path, resolve_reference
from . import acme_client

log = logging.getLogger("scaivault_pki.acme")

#: A pending key rollover older than this is taken as interrupted (the CA answers within its network timeout);
#: a younger one is still in flight, and its request's own outcome decides.
ROLLOVER_STALE_AFTER = dt.timedelta(seconds=2 * acme_client.NETWORK_TIMEOUT)

# Body fields that are the backend's settings (validated against its config_schema).
_BACKEND_FIELDS = ("environment", "directory_url", "ca_bundle", "eab_kid", "eab_hmac_key")


def account_context(account_id: str) -> bytes:
    """The envelope's associated data: a sealed account key opens only on its own row."""
    return f"acme-account:{account_id}".encode()


def backend_class(plugins: PluginHost, provider: str) -> type[AcmeCaBackend]:
    """The installed backend ``provider``; 400 naming ``provider`` when no plugin provides it."""
    backends = plugins.acme_ca_backends()
    if provider not in backends:
        raise invalid_field("provider", f"no installed ACME CA backend {provider!r}; installed: {', '.join(backends) or '(none)'}")
    return backends[provider]


def _backend(plugins: PluginHost, envelope: Any, tenant_id: str, body: dict[str, Any]) -> tuple[AcmeCaBackend, dict[str, Any]]:
    """The backend for ``body`` with its settings validated and the EAB key resolved."""
    cls = backend_class(plugins, body["provider"])
    config = {k: body[k] for k in _BACKEND_FIELDS if k in body}
    validator = jsonschema.Draft202012Validator(cls.config_schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (list(e.absolute_path), e.validator))
    if errors:
        error = errors[0]
        if error.validator == "additionalProperties":
            field = next(k for k in config if k not in cls.config_schema.get("properties", {}))
            raise invalid_field(field, f"not accepted by provider {cls.type_name!r}")
        if error.validator == "dependentRequired":
            # "'eab_hmac_key' is a dependency of 'eab_kid'": the missing field, then the one that needs it.
            quoted = error.message.split("'")
            raise ApiError("missing_field", f"{quoted[1]}: required with {quoted[3]}", {"field": quoted[1]})
        if error.validator == "required":
            missing = error.message.split("'")[1]
            raise ApiError("missing_field", f"{missing}: required by provider {cls.type_name!r}", {"field": missing})
        raise schema_error(error)
    resolved = dict(config)
    hmac = config.get("eab_hmac_key")
    if isinstance(hmac, dict):
        reference = SecretReference.parse(hmac["secret"])
        check_path(reference.path, "eab_hmac_key")
        resolved["eab_hmac_key"] = resolve_reference(envelope, tenant_id, reference, "eab_hmac_key")
    return cls(resolved), resolved


def get_account(tenant_id: str, account_id: str) -> AcmeAccount:
    try:
        return AcmeAccount.get((AcmeAccount.tenant == tenant_id) & (AcmeAccount.id == account_id))
    except peewee.DoesNotExist:
        raise not_found("ACME account") from None


def list_accounts(tenant_id: str, limit: int, cursor: str | None) -> tuple[list[AcmeAccount], str | None]:
    return paginate(AcmeAccount.select().where(AcmeAccount.tenant == tenant_id), AcmeAccount, limit, cursor)


def open_account_key(envelope: Any, account: AcmeAccount) -> Any:
    """The account's private key (for signing requests to its CA)."""
    return acme_client.load_account_key(envelope.open(account.key_ciphertext, account_context(account.id)))


def connect_account(envelope: Any, account: AcmeAccount) -> acme_client.Connection:
    """A client acting as ``account`` at its CA; 502 ``acme_upstream_error`` when the directory is unreachable.

    A key rollover left unfinished (a crash between the CA's change and ours) is settled first.
    """
    if account.next_key_ciphertext is not None and account.next_key_at <= utcnow() - ROLLOVER_STALE_AFTER:
        account = _settle_rollover(envelope, account)
    try:
        return acme_client.connect(account.directory_url, open_account_key(envelope, account),
                                   account_url=account.account_url, ca_bundle_pem=account.ca_bundle_pem)
    except acme_client.AcmeUpstreamError as exc:
        raise ApiError("acme_upstream_error", str(exc)) from exc


def create_account(plugins: PluginHost, envelope: Any, tenant_id: str, body: dict[str, Any]) -> AcmeAccount:
    """Register a new account at the backend's CA and store it (key sealed)."""
    if AcmeAccount.get_or_none((AcmeAccount.tenant == tenant_id) & (AcmeAccount.name == body["name"])) is not None:
        raise _name_taken(body["name"])
    backend, config = _backend(plugins, envelope, tenant_id, body)
    environment = config.get("environment", "production")
    key = acme_client.generate_account_key()
    try:
        conn = acme_client.connect(backend.directory_url, key, ca_bundle_pem=config.get("ca_bundle"))
        eab = (config["eab_kid"], config["eab_hmac_key"]) if "eab_kid" in config else None
        if eab is None and (backend.eab_required or conn.eab_required):
            raise ApiError("policy_violation", f"the CA of provider {backend.type_name!r} requires External Account "
                           "Binding: give eab_kid and eab_hmac_key", {"rule": "eab_required", "field": "eab_kid"})
        regr = acme_client.register(conn, body["email"], eab)
    except acme_client.AcmeUpstreamError as exc:
        raise ApiError("acme_upstream_error", str(exc)) from exc
    account_id = new_id()
    sealed = envelope.seal(acme_client.account_key_der(key), account_context(account_id))
    try:
        with write_transaction():
            row = AcmeAccount.create(
                id=account_id, tenant=tenant_id, name=body["name"], provider=backend.type_name, environment=environment,
                directory_url=backend.directory_url, email=body["email"], account_url=regr.uri,
                eab_kid=config.get("eab_kid"), ca_bundle_pem=config.get("ca_bundle"), key_ciphertext=sealed,
                status="valid",
            )
    except peewee.IntegrityError:
        # Registered upstream but lost the name race: the unused upstream account is harmless (it holds nothing).
        raise _name_taken(body["name"]) from None
    log.info("acme account registered", extra={"tenant_id": tenant_id, "account_id": row.id, "provider": row.provider})
    return row


def rollover_key(envelope: Any, tenant_id: str, account_id: str) -> AcmeAccount:
    """Replace the account's key with a fresh one at the CA and here (RFC 8555 7.3.5), e.g. on a schedule or after
    a suspected exposure. The new key is sealed and stored as pending before the CA is asked, so a crash between
    the CA's change and ours is settled on the next use (:func:`_settle_rollover`); a refusal drops it."""
    account = get_account(tenant_id, account_id)
    if account.status != "valid":
        raise ApiError("invalid_state", "the ACME account is deactivated", {"status": account.status})
    conn = connect_account(envelope, account)
    new_key = acme_client.generate_account_key()
    sealed = envelope.seal(acme_client.account_key_der(new_key), account_context(account.id))
    with write_transaction():
        claimed = AcmeAccount.update(next_key_ciphertext=sealed, next_key_at=utcnow(), updated_at=utcnow()).where(
            (AcmeAccount.id == account.id) & AcmeAccount.next_key_ciphertext.is_null()).execute()
    if claimed != 1:
        raise ApiError("conflict", "a key rollover of this account is already in progress", {"account_id": account.id})
    try:
        acme_client.change_key(conn, new_key)
    except acme_client.AcmeUpstreamError as exc:
        with write_transaction():
            AcmeAccount.update(next_key_ciphertext=None, next_key_at=None).where(AcmeAccount.id == account.id).execute()
        raise ApiError("acme_upstream_error", str(exc)) from exc
    _promote_next_key(account)
    log.info("acme account key rolled over", extra={"tenant_id": tenant_id, "account_id": account.id})
    return get_account(tenant_id, account_id)


def _promote_next_key(account: AcmeAccount) -> None:
    now = utcnow()
    with write_transaction():
        AcmeAccount.update(key_ciphertext=AcmeAccount.next_key_ciphertext, next_key_ciphertext=None, next_key_at=None,
                           key_rolled_at=now, updated_at=now).where(
            (AcmeAccount.id == account.id) & AcmeAccount.next_key_ciphertext.is_null(False)).execute()


def _settle_rollover(envelope: Any, account: AcmeAccount) -> AcmeAccount:
    """Finish or forget an interrupted rollover (pending for longer than ``ROLLOVER_STALE_AFTER``, so not one in
    flight in another worker): ask the CA which account the pending key belongs to."""
    pending = acme_client.load_account_key(envelope.open(account.next_key_ciphertext, account_context(account.id)))
    try:
        owner = acme_client.account_url_for_key(account.directory_url, pending, ca_bundle_pem=account.ca_bundle_pem)
    except acme_client.AcmeUpstreamError as exc:
        raise ApiError("acme_upstream_error", str(exc)) from exc
    if owner == account.account_url:
        _promote_next_key(account)
        log.info("acme account key rollover completed after an interruption", extra={"account_id": account.id})
    else:
        with write_transaction():
            AcmeAccount.update(next_key_ciphertext=None, next_key_at=None).where(AcmeAccount.id == account.id).execute()
        log.info("acme account key rollover had not reached the CA: dropped", extra={"account_id": account.id})
    return AcmeAccount.get_by_id(account.id)


def deactivate_account(envelope: Any, tenant_id: str, account_id: str) -> AcmeAccount:
    """Deactivate the account at its CA, then mark the record deactivated. A second call changes nothing."""
    account = get_account(tenant_id, account_id)
    if account.status == "deactivated":
        return account
    conn = connect_account(envelope, account)
    try:
        acme_client.deactivate(conn)
    except acme_client.AcmeUpstreamError as exc:
        raise ApiError("acme_upstream_error", str(exc)) from exc
    with write_transaction():
        now = utcnow()
        AcmeAccount.update(status="deactivated", deactivated_at=now, updated_at=now).where(
            (AcmeAccount.id == account.id) & (AcmeAccount.status == "valid")).execute()
    log.info("acme account deactivated", extra={"tenant_id": tenant_id, "account_id": account.id})
    return get_account(tenant_id, account_id)


def _name_taken(name: str) -> ApiError:
    return ApiError("already_exists", f"an ACME account named {name!r} already exists", {"field": "name"})
