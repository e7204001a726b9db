"""Local stand-ins for the cloud DNS APIs the built-in providers speak, for tests.

Each server is a real HTTP server on ``127.0.0.1`` (a free port) in a thread. It keeps state (zones and
records), checks authentication the way the real API does (a bearer token, Hetzner's ``Auth-API-Token``, an
OAuth token it issued itself after checking a signed JWT or a client secret), refuses what the real API
refuses (wrong shapes, a stale ETag, a deletion that does not match), and records every request so tests can
assert the calls that reach the API: method, path, query, headers and JSON body.

For Route 53, moto's own server (``moto_server``) is the API: :func:`moto_route53` starts it with IAM
authentication (SigV4 signatures checked) and :class:`RecordingProxy` sits in front of it to record the
requests.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import itertools
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

JsonBody = Any
Reply = tuple[int, JsonBody, dict[str, str]]


@dataclass(frozen=True)
class RecordedRequest:
    """One request as it reached the server."""

    method: str
    path: str  # percent-decoded, without the query
    query: dict[str, list[str]]
    headers: dict[str, str]  # names in lower case
    body: bytes

    @property
    def json(self) -> Any:
        """The body parsed as JSON (``None`` when empty)."""
        return json.loads(self.body) if self.body else None

    @property
    def form(self) -> dict[str, str]:
        """The body parsed as ``application/x-www-form-urlencoded``."""
        return dict(urllib.parse.parse_qsl(self.body.decode()))

    def arg(self, name: str) -> str | None:
        """The first value of query parameter ``name``."""
        values = self.query.get(name)
        return values[0] if values else None


class HttpError(Exception):
    """Raised by a route to answer with an error status and JSON body."""

    def __init__(self, status: int, body: JsonBody, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


Route = tuple[str, "re.Pattern[str]", Callable[..., Reply]]


class LocalApiServer:
    """Base of the fake APIs: threading HTTP server, router, request log. Use as a context manager."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.lock = threading.RLock()
        self._routes: list[Route] = []
        self._before_next: dict[str, Callable[[], None]] = {}
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------------------------
    def __enter__(self) -> LocalApiServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Listen on a free loopback port and serve in a daemon thread."""
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # Headers and body go out in two writes; without this, Nagle's algorithm and the client's
                # delayed ACK add 40 ms to every keep-alive request.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                split = urllib.parse.urlsplit(self.path)
                request = RecordedRequest(
                    method=self.command,
                    path=urllib.parse.unquote(split.path),
                    query=urllib.parse.parse_qs(split.query, keep_blank_values=True),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                status, payload, headers = server.dispatch(request, raw_target=self.path)
                data = (
                    b""
                    if payload is None
                    else (payload if isinstance(payload, bytes) else json.dumps(payload).encode())
                )
                self.send_response(status)
                if data and not any(name.lower() == "content-type" for name in headers):
                    self.send_header("Content-Type", "application/json")
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

        httpd = self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        # A short poll interval makes stop() quick; the servers are idle between tests anyway.
        self._thread = threading.Thread(
            target=lambda: httpd.serve_forever(poll_interval=0.05), name=type(self).__name__, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    # -- routing ----------------------------------------------------------------------------------------------
    def route(self, method: str, pattern: str, handler: Callable[..., Reply]) -> None:
        """Serve ``method`` on paths matching ``pattern`` (named groups become keyword arguments)."""
        self._routes.append((method, re.compile(pattern + r"\Z"), handler))

    def before_next(self, method: str, action: Callable[[], None]) -> None:
        """Run ``action`` once, just before the next ``method`` request is handled (to stage a race)."""
        with self.lock:
            self._before_next[method] = action

    def dispatch(self, request: RecordedRequest, raw_target: str) -> Reply:
        """Record the request and answer it from the first matching route."""
        with self.lock:
            self.requests.append(request)
            action = self._before_next.pop(request.method, None)
            if action is not None:
                action()
            for method, pattern, handler in self._routes:
                match = pattern.match(request.path)
                if match and method == request.method:
                    try:
                        return handler(request, **match.groupdict())
                    except HttpError as exc:
                        return exc.status, exc.body, exc.headers
            return 404, {"error": f"no route for {request.method} {request.path}"}, {}

    def calls(self, method: str | None = None, path: str | None = None) -> list[RecordedRequest]:
        """Recorded requests, optionally only those with this method and/or a path matching this regex."""
        with self.lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method) and (path is None or re.fullmatch(path, r.path))
            ]

    @staticmethod
    def bearer(request: RecordedRequest) -> str | None:
        """The bearer token of the request, if any."""
        header = request.headers.get("authorization", "")
        return header[len("Bearer ") :] if header.startswith("Bearer ") else None


def _require(condition: bool, status: int, body: JsonBody) -> None:
    if not condition:
        raise HttpError(status, body)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# ---------------------------------------------------------------------------------------------------------------
# Cloudflare API v4
# ---------------------------------------------------------------------------------------------------------------


class CloudflareApi(LocalApiServer):
    """Cloudflare API v4 under ``/client/v4``: zones by name, DNS records (one per value)."""

    PREFIX = "/client/v4"

    def __init__(self, api_token: str, zones: Mapping[str, str]) -> None:
        """``zones``: zone name -> zone id."""
        super().__init__()
        self.api_token = api_token
        self.zones = dict(zones)
        self.records: dict[str, dict[str, Any]] = {}  # record id -> record
        p = self.PREFIX
        self.route("GET", rf"{p}/zones", self._list_zones)
        self.route("GET", rf"{p}/zones/(?P<zone_id>[^/]+)/dns_records", self._list_records)
        self.route("POST", rf"{p}/zones/(?P<zone_id>[^/]+)/dns_records", self._create_record)
        self.route("DELETE", rf"{p}/zones/(?P<zone_id>[^/]+)/dns_records/(?P<record_id>[^/]+)", self._delete_record)

    @property
    def base_url(self) -> str:
        """What a provider config's ``base_url`` must be."""
        return self.url + self.PREFIX

    @staticmethod
    def _error(status: int, code: int, message: str) -> HttpError:
        return HttpError(
            status, {"success": False, "errors": [{"code": code, "message": message}], "messages": [], "result": None}
        )

    def _auth(self, request: RecordedRequest, zone_id: str | None = None) -> None:
        if self.bearer(request) != self.api_token:
            raise self._error(403, 10000, "Authentication error")
        if zone_id is not None and zone_id not in self.zones.values():
            raise self._error(404, 7003, "Could not route to /zones/..., perhaps your object identifier is invalid?")

    @staticmethod
    def _ok(result: Any, **extra: Any) -> Reply:
        return 200, {"success": True, "errors": [], "messages": [], "result": result, **extra}, {}

    def _list_zones(self, request: RecordedRequest) -> Reply:
        self._auth(request)
        name = request.arg("name")
        found = [
            {"id": zid, "name": zname, "status": "active"} for zname, zid in self.zones.items() if name in (None, zname)
        ]
        return self._ok(
            found,
            result_info={"page": 1, "per_page": 20, "count": len(found), "total_count": len(found), "total_pages": 1},
        )

    def txt_values(self, fqdn: str) -> list[str]:
        """The TXT contents stored at ``fqdn`` (in creation order; duplicates show up twice)."""
        with self.lock:
            return [r["content"] for r in self.records.values() if r["type"] == "TXT" and r["name"] == fqdn]

    def _list_records(self, request: RecordedRequest, zone_id: str) -> Reply:
        self._auth(request, zone_id)
        page = int(request.arg("page") or 1)
        per_page = int(request.arg("per_page") or 100)
        wanted = {k: request.arg(k) for k in ("type", "name", "content") if request.arg(k) is not None}
        found = [
            r for r in self.records.values() if r["zone_id"] == zone_id and all(r[k] == v for k, v in wanted.items())
        ]
        total_pages = max(1, -(-len(found) // per_page))
        chunk = found[(page - 1) * per_page : page * per_page]
        return self._ok(
            chunk,
            result_info={
                "page": page,
                "per_page": per_page,
                "count": len(chunk),
                "total_count": len(found),
                "total_pages": total_pages,
            },
        )

    def _create_record(self, request: RecordedRequest, zone_id: str) -> Reply:
        self._auth(request, zone_id)
        body = request.json
        _require(
            isinstance(body, dict),
            400,
            {"success": False, "errors": [{"code": 9207, "message": "Request body is invalid."}]},
        )
        zone_name = next(n for n, i in self.zones.items() if i == zone_id)
        ok = (
            body.get("type") == "TXT"
            and isinstance(body.get("name"), str)
            and (body["name"] == zone_name or body["name"].endswith("." + zone_name))
            and isinstance(body.get("content"), str)
            and _is_int(body.get("ttl"))
            and (body["ttl"] == 1 or 60 <= body["ttl"] <= 86400)
        )
        if not ok:
            raise self._error(400, 9000, "DNS record invalid")
        if any(
            r["zone_id"] == zone_id
            and r["type"] == "TXT"
            and r["name"] == body["name"]
            and r["content"] == body["content"]
            for r in self.records.values()
        ):
            raise self._error(400, 81058, "An identical record already exists.")
        record = {
            "id": uuid.uuid4().hex,
            "zone_id": zone_id,
            "zone_name": zone_name,
            "type": "TXT",
            "name": body["name"],
            "content": body["content"],
            "ttl": body["ttl"],
            "proxied": False,
        }
        self.records[record["id"]] = record
        return self._ok(record)

    def _delete_record(self, request: RecordedRequest, zone_id: str, record_id: str) -> Reply:
        self._auth(request, zone_id)
        if self.records.get(record_id, {}).get("zone_id") != zone_id:
            raise self._error(404, 81044, "Record does not exist.")
        del self.records[record_id]
        return self._ok({"id": record_id})


# ---------------------------------------------------------------------------------------------------------------
# DigitalOcean API v2
# ---------------------------------------------------------------------------------------------------------------


class DigitalOceanApi(LocalApiServer):
    """DigitalOcean API v2 under ``/v2``: domains and their records (names relative to the domain)."""

    def __init__(self, api_token: str, domains: list[str], per_page_cap: int = 200) -> None:
        super().__init__()
        self.api_token = api_token
        self.domains = list(domains)
        self.records: dict[int, dict[str, Any]] = {}
        self.per_page_cap = per_page_cap
        self._ids = itertools.count(3350000)
        self.route("GET", r"/v2/domains/(?P<domain>[^/]+)", self._get_domain)
        self.route("GET", r"/v2/domains/(?P<domain>[^/]+)/records", self._list_records)
        self.route("POST", r"/v2/domains/(?P<domain>[^/]+)/records", self._create_record)
        self.route("DELETE", r"/v2/domains/(?P<domain>[^/]+)/records/(?P<record_id>[0-9]+)", self._delete_record)

    @property
    def base_url(self) -> str:
        """What a provider config's ``base_url`` must be."""
        return self.url + "/v2"

    def _auth(self, request: RecordedRequest, domain: str | None = None) -> None:
        if self.bearer(request) != self.api_token:
            raise HttpError(401, {"id": "unauthorized", "message": "Unable to authenticate you"})
        if domain is not None and domain not in self.domains:
            raise HttpError(404, {"id": "not_found", "message": "The resource you were accessing could not be found."})

    def txt_values(self, fqdn: str) -> list[str]:
        """The TXT data stored at ``fqdn``."""
        with self.lock:
            return [r["data"] for r in self.records.values() if r["type"] == "TXT" and self._fqdn(r) == fqdn]

    @staticmethod
    def _fqdn(record: Mapping[str, Any]) -> str:
        return record["domain"] if record["name"] == "@" else f"{record['name']}.{record['domain']}"

    def _get_domain(self, request: RecordedRequest, domain: str) -> Reply:
        self._auth(request, domain)
        return 200, {"domain": {"name": domain, "ttl": 1800, "zone_file": ""}}, {}

    def _list_records(self, request: RecordedRequest, domain: str) -> Reply:
        self._auth(request, domain)
        per_page = min(int(request.arg("per_page") or 20), self.per_page_cap)
        page = int(request.arg("page") or 1)
        found = [
            {k: v for k, v in r.items() if k != "domain"}
            for r in self.records.values()
            if r["domain"] == domain
            and request.arg("type") in (None, r["type"])
            # DigitalOcean's name filter takes the fully qualified name.
            and request.arg("name") in (None, self._fqdn(r))
        ]
        chunk = found[(page - 1) * per_page : page * per_page]
        links: dict[str, Any] = {}
        if page * per_page < len(found):
            query = {k: v[0] for k, v in request.query.items()} | {"page": str(page + 1)}
            links["pages"] = {"next": f"{self.base_url}/domains/{domain}/records?{urllib.parse.urlencode(query)}"}
        return 200, {"domain_records": chunk, "links": links, "meta": {"total": len(found)}}, {}

    def _create_record(self, request: RecordedRequest, domain: str) -> Reply:
        self._auth(request, domain)
        body = request.json
        ok = (
            isinstance(body, dict)
            and body.get("type") == "TXT"
            and isinstance(body.get("name"), str)
            # The name is relative: a fully qualified one would make "x.example.com.example.com".
            and not body["name"].endswith(domain)
            and isinstance(body.get("data"), str)
            and _is_int(body.get("ttl"))
            and body["ttl"] >= 30
        )
        _require(ok, 422, {"id": "unprocessable_entity", "message": "invalid record"})
        record = {
            "id": next(self._ids),
            "domain": domain,
            "type": "TXT",
            "name": body["name"],
            "data": body["data"],
            "ttl": body["ttl"],
            "priority": None,
            "port": None,
            "weight": None,
            "flags": None,
            "tag": None,
        }
        self.records[record["id"]] = record
        return 201, {"domain_record": {k: v for k, v in record.items() if k != "domain"}}, {}

    def _delete_record(self, request: RecordedRequest, domain: str, record_id: str) -> Reply:
        self._auth(request, domain)
        record = self.records.get(int(record_id))
        _require(
            record is not None and record["domain"] == domain,
            404,
            {"id": "not_found", "message": "The resource you were accessing could not be found."},
        )
        del self.records[int(record_id)]
        return 204, None, {}


# ---------------------------------------------------------------------------------------------------------------
# Hetzner DNS Console API
# ---------------------------------------------------------------------------------------------------------------


class HetznerApi(LocalApiServer):
    """Hetzner DNS API under ``/api/v1``: zones by name, records by zone id (names relative to the zone)."""

    def __init__(self, api_token: str, zones: Mapping[str, str], per_page_cap: int = 100) -> None:
        """``zones``: zone name -> zone id."""
        super().__init__()
        self.api_token = api_token
        self.zones = dict(zones)
        self.records: dict[str, dict[str, Any]] = {}
        self.per_page_cap = per_page_cap
        self.route("GET", r"/api/v1/zones", self._list_zones)
        self.route("GET", r"/api/v1/records", self._list_records)
        self.route("POST", r"/api/v1/records", self._create_record)
        self.route("DELETE", r"/api/v1/records/(?P<record_id>[^/]+)", self._delete_record)

    @property
    def base_url(self) -> str:
        """What a provider config's ``base_url`` must be."""
        return self.url + "/api/v1"

    def _auth(self, request: RecordedRequest) -> None:
        if request.headers.get("auth-api-token") != self.api_token:
            raise HttpError(401, {"message": "Invalid authentication credentials"})

    def txt_values(self, fqdn: str) -> list[str]:
        """The TXT values stored at ``fqdn``."""
        with self.lock:
            names = {zid: name for name, zid in self.zones.items()}
            return [
                r["value"]
                for r in self.records.values()
                if r["type"] == "TXT"
                and (names[r["zone_id"]] if r["name"] == "@" else f"{r['name']}.{names[r['zone_id']]}") == fqdn
            ]

    @staticmethod
    def _pagination(page: int, per_page: int, total: int) -> dict[str, Any]:
        return {
            "pagination": {
                "page": page,
                "per_page": per_page,
                "last_page": max(1, -(-total // per_page)),
                "total_entries": total,
            }
        }

    def _list_zones(self, request: RecordedRequest) -> Reply:
        self._auth(request)
        name = request.arg("name")
        found = [{"id": zid, "name": zname, "ttl": 86400} for zname, zid in self.zones.items() if name in (None, zname)]
        if name is not None and not found:
            raise HttpError(404, {"zones": [], "error": {"message": "zone not found", "code": 404}})
        return 200, {"zones": found, "meta": self._pagination(1, 100, len(found))}, {}

    def _list_records(self, request: RecordedRequest) -> Reply:
        self._auth(request)
        zone_id = request.arg("zone_id")
        _require(
            zone_id in self.zones.values(), 404, {"records": [], "error": {"message": "zone not found", "code": 404}}
        )
        per_page = min(int(request.arg("per_page") or 100), self.per_page_cap)
        page = int(request.arg("page") or 1)
        found = [r for r in self.records.values() if r["zone_id"] == zone_id]
        return (
            200,
            {
                "records": found[(page - 1) * per_page : page * per_page],
                "meta": self._pagination(page, per_page, len(found)),
            },
            {},
        )

    def _create_record(self, request: RecordedRequest) -> Reply:
        self._auth(request)
        body = request.json
        ok = (
            isinstance(body, dict)
            and body.get("zone_id") in self.zones.values()
            and body.get("type") == "TXT"
            and isinstance(body.get("name"), str)
            and not any(body["name"].endswith(z) for z in self.zones)  # relative names only
            and isinstance(body.get("value"), str)
            and _is_int(body.get("ttl"))
        )
        _require(ok, 422, {"record": {}, "error": {"message": "422 Unprocessable Entity: invalid record", "code": 422}})
        record = {
            "id": uuid.uuid4().hex,
            "zone_id": body["zone_id"],
            "type": "TXT",
            "name": body["name"],
            "value": body["value"],
            "ttl": body["ttl"],
            "created": "2026-01-01 00:00:00 +0000 UTC",
            "modified": "2026-01-01 00:00:00 +0000 UTC",
        }
        self.records[record["id"]] = record
        return 200, {"record": record}, {}

    def _delete_record(self, request: RecordedRequest, record_id: str) -> Reply:
        self._auth(request)
        _require(record_id in self.records, 404, {"error": {"message": "record not found", "code": 404}})
        del self.records[record_id]
        return 200, {}, {}


# ---------------------------------------------------------------------------------------------------------------
# Google Cloud DNS v1 and Google's OAuth 2.0 token endpoint (JWT bearer grant)
# ---------------------------------------------------------------------------------------------------------------


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_service_account_key(project_id: str, client_email: str, token_uri: str) -> tuple[str, rsa.RSAPublicKey]:
    """A service-account key file (JSON text, as Google hands it out) and the matching public key."""
    from cryptography.hazmat.primitives import serialization

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    key_file = {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": secrets.token_hex(20),
        "private_key": pem.decode(),
        "client_email": client_email,
        "client_id": "1" + "0" * 20,
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
    }
    return json.dumps(key_file), key.public_key()


def _google_error(code: int, status: str, message: str) -> HttpError:
    """An error the way Google APIs word it."""
    return HttpError(code, {"error": {"code": code, "message": message, "status": status}})


class GoogleCloudDnsApi(LocalApiServer):
    """Cloud DNS v1 under ``/dns/v1`` plus a token endpoint at ``/token`` that checks RS256 JWT assertions."""

    SCOPE = "https://www.googleapis.com/auth/ndev.clouddns.readwrite"

    def __init__(self, project: str, client_email: str, public_key: rsa.RSAPublicKey, zones: Mapping[str, str]) -> None:
        """``zones``: DNS name (``example.com``) -> managed zone name."""
        super().__init__()
        self.project = project
        self.client_email = client_email
        self.public_key = public_key
        self.zones = {f"{dns}.": name for dns, name in zones.items()}
        self.rrsets: dict[tuple[str, str, str], dict[str, Any]] = {}  # (zone, name, type) -> rrset
        self.access_tokens: set[str] = set()
        self.jwt_claims: list[dict[str, Any]] = []
        self._change_ids = itertools.count(1)
        zone_path = r"/dns/v1/projects/(?P<project>[^/]+)/managedZones/(?P<zone>[^/]+)"
        self.route("POST", r"/token", self._token)
        self.route("GET", r"/dns/v1/projects/(?P<project>[^/]+)/managedZones", self._list_zones)
        self.route("GET", zone_path + "/rrsets", self._list_rrsets)
        self.route("POST", zone_path + "/changes", self._change)

    @property
    def base_url(self) -> str:
        """What a provider config's ``base_url`` must be."""
        return self.url + "/dns/v1"

    @property
    def token_uri(self) -> str:
        """What a provider config's ``token_uri`` must be."""
        return self.url + "/token"

    def _token(self, request: RecordedRequest) -> Reply:
        invalid = HttpError(400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
        form = request.form
        _require(
            form.get("grant_type") == "urn:ietf:params:oauth:grant-type:jwt-bearer",
            400,
            {"error": "unsupported_grant_type"},
        )
        try:
            header_b64, claims_b64, signature_b64 = form["assertion"].split(".")
            header = json.loads(_b64url_decode(header_b64))
            claims = json.loads(_b64url_decode(claims_b64))
            self.public_key.verify(
                _b64url_decode(signature_b64),
                f"{header_b64}.{claims_b64}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except (KeyError, ValueError, InvalidSignature):
            raise invalid from None
        now = time.time()
        ok = (
            header.get("alg") == "RS256"
            and claims.get("iss") == self.client_email
            and claims.get("aud") == self.token_uri
            and self.SCOPE in str(claims.get("scope", "")).split()
            and claims.get("iat", 0) <= now + 60
            and now < claims.get("exp", 0) <= claims["iat"] + 3600
        )
        if not ok:
            raise invalid
        self.jwt_claims.append(claims)
        token = "ya29." + secrets.token_urlsafe(32)
        self.access_tokens.add(token)
        return 200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}, {}

    def _auth(self, request: RecordedRequest, project: str, zone: str | None = None) -> None:
        if self.bearer(request) not in self.access_tokens:
            raise _google_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
        if project != self.project or (zone is not None and zone not in self.zones.values()):
            raise _google_error(
                404, "NOT_FOUND", f"The 'parameters.managedZone' resource named '{zone}' does not exist."
            )

    def txt_values(self, fqdn: str) -> list[str]:
        """The TXT rrdatas stored at ``fqdn`` (as stored: quoted presentation form)."""
        with self.lock:
            return [
                d
                for (_, name, rtype), rrset in self.rrsets.items()
                if name == fqdn + "." and rtype == "TXT"
                for d in rrset["rrdatas"]
            ]

    def _list_zones(self, request: RecordedRequest, project: str) -> Reply:
        self._auth(request, project)
        dns_name = request.arg("dnsName")
        zones = [
            {"kind": "dns#managedZone", "name": name, "dnsName": dns, "visibility": "public"}
            for dns, name in self.zones.items()
            if dns_name in (None, dns)
        ]
        # Like Google: an empty list is left out of the JSON.
        return 200, ({"managedZones": zones} if zones else {}), {}

    def _list_rrsets(self, request: RecordedRequest, project: str, zone: str) -> Reply:
        self._auth(request, project, zone)
        found = [
            {"kind": "dns#resourceRecordSet", **rrset}
            for (z, name, rtype), rrset in self.rrsets.items()
            if z == zone and request.arg("name") in (None, name) and request.arg("type") in (None, rtype)
        ]
        return 200, ({"rrsets": found} if found else {}), {}

    @staticmethod
    def _valid_rrset(rrset: Any) -> bool:
        return (
            isinstance(rrset, dict)
            and set(rrset) <= {"name", "type", "ttl", "rrdatas", "kind"}
            and isinstance(rrset.get("name"), str)
            and rrset["name"].endswith(".")
            and rrset.get("type") == "TXT"
            and _is_int(rrset.get("ttl"))
            and isinstance(rrset.get("rrdatas"), list)
            and bool(rrset["rrdatas"])
            # Cloud DNS stores TXT data in presentation form: quoted character-strings.
            and all(isinstance(d, str) and d.startswith('"') and d.endswith('"') for d in rrset["rrdatas"])
        )

    def _change(self, request: RecordedRequest, project: str, zone: str) -> Reply:
        self._auth(request, project, zone)
        body = request.json
        bad = _google_error(400, "INVALID_ARGUMENT", "Invalid value for 'entity.change'")
        if not isinstance(body, dict) or set(body) - {"additions", "deletions", "kind"}:
            raise bad
        additions, deletions = body.get("additions", []), body.get("deletions", [])
        if not all(self._valid_rrset(r) for r in [*additions, *deletions]) or not (additions or deletions):
            raise bad
        keys = [(zone, r["name"], r["type"]) for r in deletions]
        for index, (key, rrset) in enumerate(zip(keys, deletions, strict=True)):
            current = self.rrsets.get(key)
            if current is None:
                raise _google_error(
                    404,
                    "NOT_FOUND",
                    f"The 'entity.change.deletions[{index}]' resource named '{rrset['name']} (TXT)' does not exist.",
                )
            if {k: rrset[k] for k in ("ttl", "rrdatas")} != {k: current[k] for k in ("ttl", "rrdatas")}:
                raise _google_error(
                    412, "FAILED_PRECONDITION", f"Precondition not met for 'entity.change.deletions[{index}]'"
                )
        for index, rrset in enumerate(additions):
            key = (zone, rrset["name"], rrset["type"])
            if key in self.rrsets and key not in keys:
                raise _google_error(
                    409,
                    "ALREADY_EXISTS",
                    f"The resource 'entity.change.additions[{index}]' named '{rrset['name']} (TXT)' already exists",
                )
        for key in keys:
            del self.rrsets[key]
        for rrset in additions:
            self.rrsets[(zone, rrset["name"], rrset["type"])] = {
                k: rrset[k] for k in ("name", "type", "ttl", "rrdatas")
            }
        return (
            200,
            {
                "kind": "dns#change",
                "id": str(next(self._change_ids)),
                "status": "done",
                "additions": additions,
                "deletions": deletions,
            },
            {},
        )


# ---------------------------------------------------------------------------------------------------------------
# Azure Resource Manager (Microsoft.Network/dnsZones) and the Microsoft identity platform token endpoint
# ---------------------------------------------------------------------------------------------------------------


def _arm_error(status: int, code: str, message: str) -> HttpError:
    """An error the way Azure Resource Manager words it."""
    return HttpError(status, {"error": {"code": code, "message": message}})


class AzureDnsApi(LocalApiServer):
    """ARM DNS zones and TXT record sets (ETags, api-version) plus ``/{tenant}/oauth2/v2.0/token``."""

    API_VERSION = "2018-05-01"

    def __init__(
        self,
        tenant_id: str,
        client_id: str,
        client_secret: str,
        subscription_id: str,
        resource_group: str,
        zones: list[str],
    ) -> None:
        super().__init__()
        self.tenant_id, self.client_id, self.client_secret = tenant_id, client_id, client_secret
        self.subscription_id, self.resource_group = subscription_id, resource_group
        self.zones = list(zones)
        self.record_sets: dict[tuple[str, str], dict[str, Any]] = {}  # (zone, relative name) -> record set
        self.access_tokens: set[str] = set()
        zones_path = r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.Network/dnsZones"
        self.route("POST", r"/(?P<tenant>[^/]+)/oauth2/v2\.0/token", self._token)
        self.route("GET", zones_path + r"/(?P<zone>[^/]+)", self._get_zone)
        set_path = zones_path + r"/(?P<zone>[^/]+)/TXT/(?P<name>[^/]+)"
        self.route("GET", set_path, self._get_set)
        self.route("PUT", set_path, self._put_set)
        self.route("DELETE", set_path, self._delete_set)

    @property
    def scope(self) -> str:
        """The scope a token request must ask for: this ARM endpoint's ``/.default``."""
        return self.url + "/.default"

    def _token(self, request: RecordedRequest, tenant: str) -> Reply:
        form = request.form
        _require(
            tenant == self.tenant_id,
            400,
            {"error": "invalid_request", "error_description": "AADSTS90002: Tenant not found."},
        )
        _require(form.get("grant_type") == "client_credentials", 400, {"error": "unsupported_grant_type"})
        _require(form.get("scope") == self.scope, 400, {"error": "invalid_scope"})
        ok = form.get("client_id") == self.client_id and form.get("client_secret") == self.client_secret
        _require(
            ok, 401, {"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."}
        )
        token = "eyJ0eXAi." + secrets.token_urlsafe(32)
        self.access_tokens.add(token)
        return 200, {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}, {}

    def _check(self, request: RecordedRequest, sub: str, rg: str, zone: str) -> None:
        if self.bearer(request) not in self.access_tokens:
            raise _arm_error(401, "InvalidAuthenticationToken", "The access token is invalid.")
        _require(
            request.arg("api-version") == self.API_VERSION,
            400,
            {"error": {"code": "InvalidApiVersionParameter", "message": "The api-version is invalid."}},
        )
        if sub != self.subscription_id or rg != self.resource_group or zone not in self.zones:
            raise _arm_error(
                404,
                "ResourceNotFound",
                f"The Resource 'Microsoft.Network/dnszones/{zone}' under resource group '{rg}' was not found.",
            )

    def _arm_id(self, zone: str, name: str | None = None) -> str:
        group = f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
        base = f"{group}/providers/Microsoft.Network/dnszones/{zone}"
        return base if name is None else f"{base}/TXT/{name}"

    def txt_values(self, fqdn: str) -> list[str]:
        """The TXT values stored at ``fqdn`` (each value's strings joined)."""
        with self.lock:
            return [
                "".join(record["value"])
                for (zone, name), rset in self.record_sets.items()
                if (zone if name == "@" else f"{name}.{zone}") == fqdn
                for record in rset["properties"]["TXTRecords"]
            ]

    def _get_zone(self, request: RecordedRequest, sub: str, rg: str, zone: str) -> Reply:
        self._check(request, sub, rg, zone)
        return (
            200,
            {
                "id": self._arm_id(zone),
                "name": zone,
                "type": "Microsoft.Network/dnszones",
                "location": "global",
                "properties": {"zoneType": "Public"},
            },
            {},
        )

    def _get_set(self, request: RecordedRequest, sub: str, rg: str, zone: str, name: str) -> Reply:
        self._check(request, sub, rg, zone)
        rset = self.record_sets.get((zone, name))
        _require(
            rset is not None,
            404,
            {
                "error": {
                    "code": "NotFound",
                    "message": f"The resource record '{name}' does not exist in resource group '{rg}'.",
                }
            },
        )
        return 200, rset, {"ETag": rset["etag"]}

    def _precondition(self, request: RecordedRequest, current: Mapping[str, Any] | None) -> None:
        failed = _arm_error(
            412, "PreconditionFailed", "The condition specified using HTTP conditional header(s) is not met."
        )
        if_match, if_none_match = request.headers.get("if-match"), request.headers.get("if-none-match")
        if if_none_match == "*" and current is not None:
            raise failed
        if if_match is not None and (current is None or current["etag"] != if_match):
            raise failed

    def _put_set(self, request: RecordedRequest, sub: str, rg: str, zone: str, name: str) -> Reply:
        self._check(request, sub, rg, zone)
        body = request.json
        properties = body.get("properties") if isinstance(body, dict) else None
        ok = (
            isinstance(properties, dict)
            and _is_int(properties.get("TTL"))
            and isinstance(properties.get("TXTRecords"), list)
            and all(
                isinstance(r, dict)
                and isinstance(r.get("value"), list)
                and all(isinstance(s, str) and len(s) <= 255 for s in r["value"])
                for r in properties["TXTRecords"]
            )
        )
        _require(ok, 400, {"error": {"code": "BadRequest", "message": "The request is invalid."}})
        current = self.record_sets.get((zone, name))
        self._precondition(request, current)
        etag = str(uuid.uuid4())
        fqdn = f"{zone}." if name == "@" else f"{name}.{zone}."
        rset = {
            "id": self._arm_id(zone, name),
            "name": name,
            "type": "Microsoft.Network/dnszones/TXT",
            "etag": etag,
            "properties": {
                "TTL": properties["TTL"],
                "fqdn": fqdn,
                "provisioningState": "Succeeded",
                "TXTRecords": properties["TXTRecords"],
            },
        }
        self.record_sets[(zone, name)] = rset
        return (200 if current else 201), rset, {"ETag": etag}

    def _delete_set(self, request: RecordedRequest, sub: str, rg: str, zone: str, name: str) -> Reply:
        self._check(request, sub, rg, zone)
        current = self.record_sets.get((zone, name))
        self._precondition(request, current)
        if current is None:
            return 204, None, {}
        del self.record_sets[(zone, name)]
        return 200, None, {}


# ---------------------------------------------------------------------------------------------------------------
# Route 53: moto's server behind a recording proxy
# ---------------------------------------------------------------------------------------------------------------


_SIGV4 = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>[0-9]{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request, "
    r"SignedHeaders=(?P<signed>[a-z0-9;-]+), Signature=(?P<signature>[0-9a-f]{64})\Z"
)


class RecordingProxy(LocalApiServer):
    """Forwards every request unchanged (Host header included) to ``target``, and records it.

    With ``sigv4_keys`` (access key id -> secret) it first checks each request's AWS Signature Version 4 the
    way AWS does (a request that is unsigned, signed with an unknown key, for another service, too old, or
    with the wrong secret gets AWS's 403 error document). moto checks signatures itself only when IAM
    authentication is on, and then wrongly refuses every signed GET on a REST API such as Route 53 (it
    hashes the query string as the payload), so the check lives here.
    """

    def __init__(self, target: str, sigv4_keys: Mapping[str, str] | None = None, service: str = "route53") -> None:
        super().__init__()
        self.target = urllib.parse.urlsplit(target)
        self.sigv4_keys = dict(sigv4_keys or {})
        self.service = service

    def dispatch(self, request: RecordedRequest, raw_target: str) -> Reply:
        """Record, check the signature, then forward to the target and relay its answer."""
        with self.lock:
            self.requests.append(request)
        if self.sigv4_keys:
            refusal = self._check_sigv4(request, raw_target)
            if refusal is not None:
                return refusal
        connection = http.client.HTTPConnection(self.target.hostname, self.target.port, timeout=30)
        try:
            connection.putrequest(request.method, raw_target, skip_host=True, skip_accept_encoding=True)
            for name, value in request.headers.items():
                connection.putheader(name, value)
            connection.endheaders(request.body)
            response = connection.getresponse()
            body = response.read()
            hop_by_hop = ("content-length", "transfer-encoding", "connection", "server", "date")
            headers = {k: v for k, v in response.getheaders() if k.lower() not in hop_by_hop}
            return response.status, body, headers
        finally:
            connection.close()

    @staticmethod
    def _aws_error(code: str, message: str) -> Reply:
        body = (
            '<?xml version="1.0"?>\n<ErrorResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/">'
            f"<Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>"
            f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
        )
        return 403, body.encode(), {"Content-Type": "text/xml"}

    def _check_sigv4(self, request: RecordedRequest, raw_target: str) -> Reply | None:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        match = _SIGV4.match(request.headers.get("authorization", ""))
        if match is None:
            return self._aws_error("MissingAuthenticationToken", "Missing Authentication Token")
        secret = self.sigv4_keys.get(match["key"])
        if secret is None:
            return self._aws_error("InvalidClientTokenId", "The security token included in the request is invalid.")
        stamp = request.headers.get("x-amz-date", "")
        try:
            signed_at = time.mktime(time.strptime(stamp, "%Y%m%dT%H%M%SZ")) - time.timezone
        except ValueError:
            return self._aws_error("IncompleteSignature", "X-Amz-Date is missing or malformed")
        if (
            abs(time.time() - signed_at) > 300
            or not stamp.startswith(match["date"])
            or match["service"] != self.service
        ):
            return self._aws_error("SignatureDoesNotMatch", "Signature expired or credential scope is wrong")
        signed = match["signed"].split(";")
        if "host" not in signed:
            return self._aws_error("SignatureDoesNotMatch", "The Host header must be signed")
        aws_request = AWSRequest(
            method=request.method,
            url=f"http://{request.headers['host']}{raw_target}",
            data=request.body,
            headers={name: value for name, value in request.headers.items() if name in signed},
        )
        aws_request.context["timestamp"] = stamp
        signer = SigV4Auth(Credentials(match["key"], secret), match["service"], match["region"])
        expected = signer.signature(
            signer.string_to_sign(aws_request, signer.canonical_request(aws_request)), aws_request
        )
        if expected != match["signature"]:
            return self._aws_error(
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class MotoRoute53:
    """A running moto server with hosted zones, and the one access key the signing proxy accepts."""

    url: str
    access_key_id: str
    secret_access_key: str
    zone_ids: dict[str, str] = field(default_factory=dict)

    def client(self) -> Any:
        """A boto3 Route 53 client straight to moto (for test setup and checks; bypasses the proxy)."""
        import boto3

        return boto3.client(
            "route53",
            region_name="us-east-1",
            endpoint_url=self.url,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
        )

    def proxy(self) -> RecordingProxy:
        """A (not yet started) recording proxy in front of moto that checks SigV4 with this access key."""
        return RecordingProxy(self.url, sigv4_keys={self.access_key_id: self.secret_access_key})

    def txt_values(self, fqdn: str) -> list[str]:
        """The TXT values at ``fqdn`` as Route 53 stores them (quoted), read through the API."""
        values: list[str] = []
        client = self.client()
        for zone_id in self.zone_ids.values():
            for rrset in client.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]:
                if rrset["Name"] == fqdn + "." and rrset["Type"] == "TXT":
                    values += [r["Value"] for r in rrset["ResourceRecords"]]
        return values


@contextlib.contextmanager
def moto_route53(zones: list[str]) -> Iterator[MotoRoute53]:
    """Start ``moto_server`` on a free loopback port with the hosted ``zones`` and yield it, with a fresh
    random access key for :meth:`MotoRoute53.proxy` to accept; the server is stopped on exit."""
    import requests

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    moto_server = Path(sys.executable).with_name("moto_server")
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1"}
    process = subprocess.Popen(
        [str(moto_server), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{url}/moto-api/", timeout=1)
                break
            except requests.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.1)
        access_key_id = "AKIA" + secrets.token_hex(8).upper()
        moto = MotoRoute53(url, access_key_id, secrets.token_urlsafe(30))
        client = moto.client()
        for index, zone in enumerate(zones):
            created = client.create_hosted_zone(Name=zone + ".", CallerReference=f"test-{index}")
            moto.zone_ids[zone] = created["HostedZone"]["Id"].rsplit("/", 1)[-1]
        yield moto
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
