"""The WSGI application: ``create_app(services)`` wires thin resources over injected services."""

from __future__ import annotations

import logging

import falcon
import peewee

from .api import cas, certificates, health, roles
from .api import csr
from .api import dns_providers, secrets
from .api import revocation
from .api import trust
from .api import acme
from .api.middleware import Authentication, DatabaseConnection, RequestContext
from .errors import ERROR_STATUS, ApiError
from .hsm import HsmError
from .services import Services

log = logging.getLogger("scaivault_pki.app")


# Each API module adds its own routes with a ``routes(services)`` function; list new modules here.
ROUTE_MODULES: tuple = (csr, dns_providers, secrets, revocation, trust, acme,)


def routes(services: Services) -> list[tuple[str, object]]:
    """Every route the daemon serves. Each resource declares its scopes per method (see middleware)."""
    extra = [route for module in ROUTE_MODULES for route in module.routes(services)]
    return extra + [
        ("/v1/sys/health", health.Health(services)),
        ("/v1/pki/ca", cas.CaCollection(services)),
        ("/v1/pki/ca/{ca_id}", cas.CaItem()),
        ("/v1/pki/ca/{ca_id}/certificate", cas.CaCertificatePem()),
        ("/v1/pki/ca/{ca_id}/certificate.der", cas.CaCertificateDer()),
        ("/v1/pki/roles", roles.RoleCollection(services)),
        ("/v1/pki/roles/{name}", roles.RoleItem(services)),
        ("/v1/pki/issue/{role}", certificates.Issue(services)),
        ("/v1/pki/sign/{role}", certificates.Sign(services)),
        ("/v1/pki/certificates", certificates.CertificateCollection()),
        ("/v1/pki/certificates/{certificate_id}", certificates.CertificateItem(services)),
        ("/v1/pki/certificates/{certificate_id}/pem", certificates.CertificatePem()),
        ("/v1/pki/certificates/{certificate_id}/renew", certificates.CertificateRenew(services)),
        ("/v1/pki/certificates/{certificate_id}/private-key", certificates.CertificatePrivateKey(services)),
    ]


_HTTP_STATUS_CODES = {status: code for code, status in reversed(list(ERROR_STATUS.items()))}


def _send(resp: falcon.Response, error: ApiError) -> None:
    resp.status = error.status
    resp.content_type = falcon.MEDIA_JSON
    resp.media = error.to_body()


def _api_error(req, resp, ex: ApiError, params) -> None:
    _send(resp, ex)


def _hsm_error(req, resp, ex: HsmError, params) -> None:
    log.warning("hsm unavailable", extra={"request_id": getattr(req.context, "request_id", None), "error": str(ex)})
    _send(resp, ApiError("hsm_unavailable", f"HSM unavailable: {ex}"))


def _database_error(req, resp, ex: peewee.PeeweeException, params) -> None:
    log.warning("database unavailable", extra={"request_id": getattr(req.context, "request_id", None), "error": str(ex)})
    _send(resp, ApiError("database_unavailable", "database unavailable; try again later"))


def _http_error(req, resp, ex: falcon.HTTPError, params) -> None:
    """Falcon's own errors (no route, wrong method, bad media) in our error shape."""
    code = _HTTP_STATUS_CODES.get(ex.status_code, "invalid_request")
    message = ex.description or ex.title or "request refused"
    error = ApiError(code, message)
    resp.status = ex.status_code
    resp.content_type = falcon.MEDIA_JSON
    resp.media = error.to_body()
    for name, value in (ex.headers or {}).items():
        resp.set_header(name, value)


def _unexpected(req, resp, ex: Exception, params) -> None:
    # Our bug: log it with its trace, tell the client only that it happened and which request it was.
    log.exception("unhandled error", extra={"request_id": getattr(req.context, "request_id", None)})
    _send(resp, ApiError("internal_error", f"internal error; quote request id {getattr(req.context, 'request_id', '?')}"))


def create_app(services: Services) -> falcon.App:
    app = falcon.App(middleware=[RequestContext(), DatabaseConnection(), Authentication()])
    app.req_options.strip_url_path_trailing_slash = True
    for template, resource in routes(services):
        app.add_route(template, resource)
    # Most specific last wins in falcon's lookup by type; register the catch-all first.
    app.add_error_handler(Exception, _unexpected)
    app.add_error_handler(falcon.HTTPError, _http_error)
    app.add_error_handler(peewee.OperationalError, _database_error)
    app.add_error_handler(peewee.InterfaceError, _database_error)
    app.add_error_handler(HsmError, _hsm_error)
    app.add_error_handler(ApiError, _api_error)
    return app
