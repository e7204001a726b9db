"""JSON-over-HTTPS plumbing shared by the built-in cloud DNS providers.

Every provider that speaks plain HTTPS goes through :class:`JsonApi`, so they all get the same guarantees:
a timeout on every call, HTTP errors, unreachable hosts and malformed responses turned into
:class:`~scaivault_pki.plugins.api.DnsProviderError`, and messages that never carry a credential (a message
only names the provider, the method, the path and the API's own error text with any known secret blanked
out). :class:`OAuth2Token` adds the bearer tokens Google and Azure hand out from their token endpoints.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from scaivault_pki.plugins.api import PROPAGATION_CONFIG_PROPERTIES, DnsProviderError, secret_or_string

__all__ = [
    "BASE_URL_SCHEMA",
    "DEFAULT_TIMEOUT",
    "JsonApi",
    "JsonResponse",
    "OAuth2Token",
    "oauth_error_detail",
    "path_segment",
    "safe_detail",
]

T = TypeVar("T")

#: (connect, read) seconds. DNS APIs answer in well under a second; a stuck call must not hold an ACME order.
DEFAULT_TIMEOUT: tuple[float, float] = (10.0, 30.0)
#: The API's own error text is useful ("Invalid zone identifier"), but a page of HTML is not.
_MAX_DETAIL = 200
_REDACTED = "[redacted]"

#: JSON Schema of an overridable API or token endpoint URL. HTTPS anywhere; plain HTTP only to a loopback
#: address (a local test server or an authenticating proxy on the host), so a typo can never send a
#: credential over the network in clear text.
BASE_URL_SCHEMA: dict[str, Any] = {
    "type": "string",
    "maxLength": 2048,
    "pattern": r"^(https://[^\s/?#]+|http://(127\.[0-9]+\.[0-9]+\.[0-9]+|localhost|\[::1\])(:[0-9]+)?)(/[^\s?#]*)?$",
}


@dataclass(frozen=True)
class JsonResponse:
    """A response the caller accepted: its status and parsed JSON body (``None`` when empty)."""

    status: int
    body: Any
    headers: Mapping[str, str]


def safe_detail(text: str, secrets: Iterable[str]) -> str:
    """An API's error text fit for an error message: every known secret blanked out, at most 200 characters."""
    for secret in secrets:
        # Short strings would blank out ordinary words; real credentials are long.
        if len(secret) >= 6:
            text = text.replace(secret, _REDACTED)
    return text[:_MAX_DETAIL]


def path_segment(text: str) -> str:
    """``text`` percent-encoded as one URL path segment (a name or id from config or an API never adds a /).

    ``@`` stays: it is a legal path character and Azure names a zone apex record set ``@``.
    """
    return urllib.parse.quote(str(text), safe="@")


class JsonApi:
    """One provider's JSON API under ``base_url``.

    :param provider: the provider's ``type_name``, the first word of every error message.
    :param base_url: scheme, host and path prefix (no trailing slash needed).
    :param auth: returns the authentication headers for the next call (called per request, so a bearer token
        can be refreshed); ``None`` for an unauthenticated endpoint.
    :param secrets: credential strings never to be repeated in an error message.
    :param error_detail: pulls the API's error text out of an error response's JSON body.
    :param timeout: ``(connect, read)`` seconds for every call.
    :param token_endpoint: this is an OAuth 2.0 token endpoint, where any 4xx (``invalid_grant`` is a 400)
        means the credentials were refused.
    """

    def __init__(
        self,
        provider: str,
        base_url: str,
        *,
        auth: Callable[[], Mapping[str, str]] | None = None,
        secrets: Iterable[str] = (),
        error_detail: Callable[[Any], str | None] | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        token_endpoint: bool = False,
    ) -> None:
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self._auth = auth
        self._secrets = tuple(secrets)
        self._error_detail = error_detail
        self._timeout = timeout
        self._token_endpoint = token_endpoint
        self._session = requests.Session()
        # Proxies from the environment are honoured, but requests would also replace our Authorization
        # header with ~/.netrc credentials for a matching host; a no-op session auth switches that lookup off.
        self._session.auth = lambda request: request
        self._host = urllib.parse.urlsplit(self.base_url).netloc or self.base_url

    def url(self, path: str) -> str:
        """The absolute URL of ``path``.

        An absolute URL (a "next page" link from a response) is accepted only under ``base_url``: the call
        carries our credentials, and an API response must not be able to send them to another host.
        """
        if path.startswith(("https://", "http://")):
            if not (path == self.base_url or path.startswith((self.base_url + "/", self.base_url + "?"))):
                raise DnsProviderError(f"{self.provider}: refusing to follow a link away from {self._host}")
            return path
        return f"{self.base_url}/{path.lstrip('/')}" if path else self.base_url

    def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        form: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        accept: Collection[int] = (),
    ) -> JsonResponse:
        """Make one call and return its parsed response.

        Any 2xx status is success; statuses in ``accept`` (404 for "already gone", 412 for a lost race) are
        returned to the caller too. Anything else raises :class:`DnsProviderError`.
        """
        request_headers = {"Accept": "application/json"}
        if self._auth is not None:
            request_headers.update(self._auth())
        request_headers.update(headers or {})
        where = f"{method} {urllib.parse.urlsplit(self.url(path)).path}"
        try:
            response = self._session.request(
                method,
                self.url(path),
                params=params,
                json=json,
                data=form,
                headers=request_headers,
                timeout=self._timeout,
                allow_redirects=False,
            )
        except requests.Timeout as exc:
            raise DnsProviderError(f"{self.provider}: {where} timed out talking to {self._host}") from exc
        except requests.RequestException as exc:
            raise DnsProviderError(
                f"{self.provider}: {where}: cannot reach {self._host} ({type(exc).__name__})"
            ) from exc
        body = self._parse(response, where)
        if 200 <= response.status_code < 300 or response.status_code in accept:
            return JsonResponse(response.status_code, body, response.headers)
        raise self.refused(method, path, response.status_code, body)

    def refused(self, method: str, path: str, status: int, body: Any) -> DnsProviderError:
        """The error for an HTTP error response: provider, call, status and the API's (redacted) reason."""
        where = f"{method} {urllib.parse.urlsplit(self.url(path)).path}"
        detail = self._error_detail(body) if self._error_detail is not None and body is not None else None
        refused_credentials = status in (401, 403) or (self._token_endpoint and 400 <= status < 500)
        reason = "authentication failed, " if refused_credentials else ""
        message = f"{self.provider}: {where} refused: {reason}HTTP {status}"
        if detail:
            message += f" ({safe_detail(str(detail), self._secrets)})"
        return DnsProviderError(message)

    def _parse(self, response: requests.Response, where: str) -> Any:
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            if 200 <= response.status_code < 300:
                raise DnsProviderError(f"{self.provider}: {where}: the response is not JSON") from None
            return None  # an error page from a proxy: the status code says enough

    def field(self, body: Any, *keys: str | int, kind: type[T]) -> T:
        """``body[keys[0]][keys[1]]...``, checked to be a ``kind``.

        A missing key or a wrong type means the API is not what this provider speaks (wrong ``base_url``,
        changed API): a :class:`DnsProviderError`, not a ``KeyError`` deep inside the daemon.
        """
        value = body
        for key in keys:
            try:
                value = value[key]
            except (KeyError, IndexError, TypeError):
                raise self.unexpected(".".join(map(str, keys))) from None
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.unexpected(".".join(map(str, keys)))
        return value

    def unexpected(self, what: str) -> DnsProviderError:
        """The error for a response that lacks ``what`` or has it in the wrong shape."""
        return DnsProviderError(f"{self.provider}: unexpected response from {self._host}: bad or missing {what}")


class OAuth2Token:
    """An OAuth 2.0 access token from a token endpoint, reused until shortly before it expires.

    :param endpoint: the token endpoint (its ``base_url`` is the full token URL).
    :param form: builds the form of a token request (called per request, so a signed JWT assertion is fresh).
    """

    #: Fetch a new token this many seconds before the old one expires, so no call races the expiry.
    REFRESH_MARGIN = 60.0

    def __init__(self, endpoint: JsonApi, form: Callable[[], Mapping[str, str]]) -> None:
        self._endpoint = endpoint
        self._form = form
        self._token: str | None = None
        self._expires_at = 0.0

    def headers(self) -> dict[str, str]:
        """``{"Authorization": "Bearer ..."}`` with a valid token, fetching one when needed."""
        if self._token is None or time.monotonic() >= self._expires_at:
            response = self._endpoint.call("POST", "", form=self._form())
            self._token = self._endpoint.field(response.body, "access_token", kind=str)
            lifetime = response.body.get("expires_in", 3600)
            # Azure's v1 endpoints send expires_in as a string; both forms are seconds.
            try:
                seconds = float(lifetime)
            except (TypeError, ValueError):
                raise self._endpoint.unexpected("expires_in") from None
            self._expires_at = time.monotonic() + max(0.0, seconds - self.REFRESH_MARGIN)
        return {"Authorization": f"Bearer {self._token}"}


def oauth_error_detail(body: Any) -> str | None:
    """The ``error`` code of an RFC 6749 error response (``invalid_client``).

    Only the code: ``error_description`` texts quote client ids and tenant details that help nobody reading
    an ACME order's error.
    """
    if isinstance(body, Mapping) and isinstance(body.get("error"), str):
        return body["error"]
    return None


def api_token_config_schema(title: str, token_description: str, default_base_url: str) -> dict[str, Any]:
    """The config schema of a provider that authenticates with one API token and has an overridable base URL."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": title,
        "type": "object",
        "properties": {
            "api_token": {**secret_or_string(maxLength=512), "description": token_description},
            "base_url": {**BASE_URL_SCHEMA, "description": f"API base URL (default {default_base_url})"},
            **PROPAGATION_CONFIG_PROPERTIES,
        },
        "required": ["api_token"],
        "additionalProperties": False,
    }


def api_token_client(
    type_name: str,
    config: Mapping[str, Any],
    default_base_url: str,
    header: Callable[[str], dict[str, str]],
    error_detail: Callable[[Any], str | None],
) -> JsonApi:
    """A ``JsonApi`` for a provider configured by ``api_token_config_schema``; the token is redacted from errors."""
    token = str(config["api_token"])
    return JsonApi(
        type_name,
        config.get("base_url", default_base_url),
        auth=lambda: header(token),
        secrets=(token,),
        error_detail=error_detail,
    )

