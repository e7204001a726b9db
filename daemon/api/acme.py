"""The ACME client over HTTP: accounts, orders, challenges and the http-01 responder. Thin over ``pki.acme_accounts``/``acme_orders``."""

from __future__ import annotations

from typing import Any

import falcon

from ..errors import invalid_field, not_found
from ..pki import acme_accounts, acme_orders
from ..schema.models import AcmeAccount, AcmeChallenge, AcmeOrder
from ..services import Services
from .http import PUBLIC, read_json, rfc3339
from .validation import parse_limit

CHALLENGE_PATH = "/.well-known/acme-challenge/"
ORDER_STATUSES = ("pending", "processing", "valid", "invalid")


def account_view(row: AcmeAccount) -> dict[str, Any]:
    """An account as the API shows it: never its key (nor an EAB HMAC key, which is not even stored)."""
    return {
        "id": row.id,
        "name": row.name,
        "provider": row.provider,
        "environment": row.environment,
        "directory_url": row.directory_url,
        "email": row.email,
        "account_url": row.account_url,
        "eab_kid": row.eab_kid,
        "status": row.status,
        "created_at": rfc3339(row.created_at),
        "updated_at": rfc3339(row.updated_at),
        "deactivated_at": rfc3339(row.deactivated_at) if row.deactivated_at else None,
        "key_rolled_at": rfc3339(row.key_rolled_at) if row.key_rolled_at else None,
    }


class AccountCollection:
    scopes = {"GET": ("pki:read",), "POST": ("pki:admin",)}

    def __init__(self, services: Services):
        self.services = services

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        rows, cursor = acme_accounts.list_accounts(req.context.principal.tenant_id, parse_limit(req.get_param("limit")),
                                                   req.get_param("cursor"))
        resp.media = {"items": [account_view(r) for r in rows], "next_cursor": cursor}

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_json(req, "create_acme_account", self.services.config.max_body_bytes)
        row = acme_accounts.create_account(self.services.plugins, self.services.envelope, req.context.principal.tenant_id, body)
        resp.status = falcon.HTTP_201
        resp.location = f"/v1/pki/acme/accounts/{row.id}"
        resp.media = account_view(row)


class AccountItem:
    scopes = {"GET": ("pki:read",), "DELETE": ("pki:admin",)}

    def __init__(self, services: Services):
        self.services = services

    def on_get(self, req: falcon.Request, resp: falcon.Response, account_id: str) -> None:
        resp.media = account_view(acme_accounts.get_account(req.context.principal.tenant_id, account_id))

    def on_delete(self, req: falcon.Request, resp: falcon.Response, account_id: str) -> None:
        """Deactivate upstream; the record stays (orders refer to it), shown as deactivated."""
        row = acme_accounts.deactivate_account(self.services.envelope, req.context.principal.tenant_id, account_id)
        resp.media = account_view(row)


class AccountKeyRollover:
    """``POST /v1/pki/acme/accounts/{id}/key-rollover``: a fresh account key, at the CA and here (RFC 8555 7.3.5)."""

    scopes = {"POST": ("pki:admin",)}

    def __init__(self, services: Services):
        self.services = services

    def on_post(self, req: falcon.Request, resp: falcon.Response, account_id: str) -> None:
        resp.media = account_view(acme_accounts.rollover_key(self.services.envelope, req.context.principal.tenant_id,
                                                             account_id))


def challenge_view(row: AcmeChallenge) -> dict[str, Any]:
    view: dict[str, Any] = {"id": row.id, "domain": row.domain, "type": row.type, "token": row.token, "status": row.status,
                            "answered_at": rfc3339(row.answered_at) if row.answered_at else None}
    if row.type == "http-01":
        view["http01_path"] = CHALLENGE_PATH + row.token
    elif row.type == "dns-01":
        view["dns01_txt_name"] = acme_orders.dns01_txt_name(row.domain)
        view["dns01_txt_value"] = row.key_authorization
        view["dns01_presented_at"] = rfc3339(row.presented_at) if row.presented_at else None
        # A removal the DNS provider refused, tried again at dns01_cleanup_retry_at (null once given up).
        view["dns01_cleanup_error"] = row.cleanup_error if row.presented_at else None
        view["dns01_cleanup_retry_at"] = rfc3339(row.cleanup_next_at) if row.presented_at and row.cleanup_next_at else None
    elif row.type == "tls-alpn-01":
        # What the TLS listener (ALPN acme-tls/1, SNI = the domain) serves: a certificate whose acmeIdentifier
        # extension holds this value's SHA-256 digest (RFC 8737 3).
        view["tls_alpn01_key_authorization"] = row.key_authorization
    return view


def order_view(row: AcmeOrder, challenges: list[AcmeChallenge] | None = None,
               chain_pem: str | None = None) -> dict[str, Any]:
    """An order as the API shows it; a list passes its page's challenges and chains (no query per order)."""
    if challenges is None:
        challenges, chain_pem = acme_orders.order_challenges(row), acme_orders.order_chain_pem(row)
    return {
        "id": row.id,
        "order_id": row.id,
        "account_id": row.account_id,
        "status": row.status,
        "domains": row.domains,
        "challenge_type": row.challenge_type,
        "dns_provider_id": row.dns_provider_id,
        "dns_manual": row.challenge_type == "dns-01" and row.dns_provider_id is None,
        "key_type": row.key_type,
        "auto_renew": row.auto_renew,
        "certificate_id": row.certificate_id,
        # The issuer chain the CA delivered with the certificate (issuer first), once there is one.
        "chain_pem": chain_pem,
        "error": row.error,
        "attempts": row.attempts,
        "next_attempt_at": rfc3339(row.next_attempt_at) if row.status in acme_orders.ACTIVE_STATUSES else None,
        "challenges": [challenge_view(c) for c in challenges],
        "renewal_of": row.renewal_of_id,
        "renew_after": rfc3339(row.renew_after) if row.renew_after else None,
        "renewal_failures": row.renewal_failures,
        "renewal_error": row.renewal_error,
        # RFC 9773: the CA's suggested renewal window for this order's certificate (when it offers one), and the
        # certificate (its ARI identifier) this order was placed to replace.
        "renewal_window": ({"start": rfc3339(row.renewal_window_start), "end": rfc3339(row.renewal_window_end)}
                           if row.renewal_window_start else None),
        "replaces": row.replaces,
        "created_at": rfc3339(row.created_at),
        "updated_at": rfc3339(row.updated_at),
    }


class Issue:
    """``POST /v1/pki/acme/issue``: place the order and answer at once (202); the background job drives it."""

    scopes = {"POST": ("pki:issue",)}

    def __init__(self, services: Services):
        self.services = services

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_json(req, "acme_issue", self.services.config.max_body_bytes)
        principal = req.context.principal
        row = acme_orders.create_order(self.services.envelope, principal.tenant_id, body, principal.token_id,
                                       plugins=self.services.plugins)
        resp.status = falcon.HTTP_202
        resp.location = f"/v1/pki/acme/orders/{row.id}"
        resp.media = order_view(row)


class OrderCollection:
    scopes = {"GET": ("pki:read",)}

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        status = req.get_param("status")
        if status is not None and status not in ORDER_STATUSES:
            raise invalid_field("status", f"one of {', '.join(ORDER_STATUSES)}")
        rows, cursor = acme_orders.list_orders(req.context.principal.tenant_id, status, req.get_param("account_id"),
                                               parse_limit(req.get_param("limit")), req.get_param("cursor"))
        challenges, chains = acme_orders.page_details(rows)
        resp.media = {"items": [order_view(r, challenges[r.id], chains.get(r.certificate_id)) for r in rows],
                      "next_cursor": cursor}


class OrderItem:
    scopes = {"GET": ("pki:read",)}

    def on_get(self, req: falcon.Request, resp: falcon.Response, order_id: str) -> None:
        resp.media = order_view(acme_orders.get_order(req.context.principal.tenant_id, order_id))


class OrderRefresh:
    scopes = {"POST": ("pki:issue",)}

    def __init__(self, services: Services):
        self.services = services

    def on_post(self, req: falcon.Request, resp: falcon.Response, order_id: str) -> None:
        resp.media = order_view(acme_orders.refresh_order(self.services.envelope, req.context.principal.tenant_id, order_id,
                                                          plugins=self.services.plugins))


class ChallengeComplete:
    """``POST /v1/pki/acme/challenges/{id}/complete``: answer the challenge now (dns-01: without the propagation wait)."""

    scopes = {"POST": ("pki:issue",)}

    def __init__(self, services: Services):
        self.services = services

    def on_post(self, req: falcon.Request, resp: falcon.Response, challenge_id: str) -> None:
        resp.media = order_view(acme_orders.complete_challenge(self.services.envelope, req.context.principal.tenant_id,
                                                               challenge_id, plugins=self.services.plugins))


class Http01Responder:
    """``/.well-known/acme-challenge/{token}``: the key authorization, while its order is unfinished (RFC 8555 8.3)."""

    scopes = {"GET": PUBLIC}

    def on_get(self, req: falcon.Request, resp: falcon.Response, token: str) -> None:
        key_authorization = acme_orders.http01_key_authorization(token)
        if key_authorization is None:
            raise not_found("challenge")
        resp.content_type = "application/octet-stream"
        resp.text = key_authorization


def routes(services: Services) -> list[tuple[str, object]]:
    return [
        ("/v1/pki/acme/accounts", AccountCollection(services)),
        ("/v1/pki/acme/accounts/{account_id}", AccountItem(services)),
        ("/v1/pki/acme/accounts/{account_id}/key-rollover", AccountKeyRollover(services)),
        ("/v1/pki/acme/issue", Issue(services)),
        ("/v1/pki/acme/orders", OrderCollection()),
        ("/v1/pki/acme/orders/{order_id}", OrderItem()),
        ("/v1/pki/acme/orders/{order_id}/refresh", OrderRefresh(services)),
        ("/v1/pki/acme/challenges/{challenge_id}/complete", ChallengeComplete(services)),
        ("/.well-known/acme-challenge/{token}", Http01Responder()),
    ]
