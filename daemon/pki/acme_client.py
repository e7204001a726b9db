"""The daemon's side of RFC 8555 over certbot's ``acme`` package (``ClientV2``): connect, register, deactivate.

Account keys are EC P-256 (ES256). A directory with its own trust (``ca_bundle``, custom CAs and tests only) is
verified against that PEM instead of the system's store. Errors from the CA become :class:`AcmeUpstreamError`,
whose message (the CA's problem document) is shown to API users.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import josepy as jose
import requests
from acme import challenges, crypto_util, messages
from acme import client as acme_client
from acme import errors as acme_errors
from acme import jws as acme_jws
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .. import __version__

USER_AGENT = f"scaivault-pki/{__version__}"
NETWORK_TIMEOUT = 30


@challenges.ChallengeResponse.register
class TLSALPN01Response(challenges.KeyAuthorizationChallengeResponse):
    """The (empty) answer to a tls-alpn-01 challenge: ``acme`` 5.x no longer ships one."""

    typ = "tls-alpn-01"


@challenges.Challenge.register
class TLSALPN01(challenges.KeyAuthorizationChallenge):
    """RFC 8737 tls-alpn-01. Registered with ``acme`` so authorizations parse it like http-01 and dns-01; what it
    must serve (a certificate carrying the key authorization's digest) is built by ``pki.acme_tls_alpn``."""

    response_cls = TLSALPN01Response
    typ = response_cls.typ

    def validation(self, account_key: jose.JWK, **unused_kwargs: object) -> str:
        """The key authorization (the listener puts its SHA-256 digest into the acmeIdentifier extension)."""
        return self.key_authorization(account_key)


class AcmeUpstreamError(Exception):
    """The ACME CA refused a request or could not be reached; the message says which and why (no secrets)."""


def generate_account_key() -> ec.EllipticCurvePrivateKey:
    """A fresh EC P-256 account key."""
    return ec.generate_private_key(ec.SECP256R1())


def account_key_der(key: ec.EllipticCurvePrivateKey) -> bytes:
    """PKCS#8 DER of ``key`` (what gets sealed)."""
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def load_account_key(der: bytes) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_der_private_key(der, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("an ACME account key must be an EC key")
    return key


_bundle_dir: str | None = None
_bundle_files: dict[str, str] = {}
_bundle_lock = threading.Lock()


def _bundle_path(ca_bundle_pem: str) -> str:
    # requests wants a file. One per distinct bundle, in a directory private to this process (mkdtemp: 0700), so
    # nobody else on the host can plant a file there for us to trust.
    global _bundle_dir
    digest = hashlib.sha256(ca_bundle_pem.encode()).hexdigest()
    with _bundle_lock:
        if digest not in _bundle_files:
            if _bundle_dir is None:
                _bundle_dir = tempfile.mkdtemp(prefix="scaivault-acme-ca-")
            path = Path(_bundle_dir) / f"{digest}.pem"
            path.write_text(ca_bundle_pem)
            _bundle_files[digest] = str(path)
        return _bundle_files[digest]


def describe(exc: BaseException) -> str:
    """What went wrong, for API users and logs: the CA's problem document, or the network failure."""
    if isinstance(exc, messages.Error):
        return f"{exc.typ}: {exc.detail}" if exc.detail else str(exc.typ)
    if isinstance(exc, requests.RequestException):
        return f"cannot reach the ACME CA: {type(exc).__name__}"
    return f"{type(exc).__name__}: {exc}"


@dataclass
class Connection:
    """A ``ClientV2`` bound to one account key (and, once known, the account's URL)."""

    client: acme_client.ClientV2
    key: jose.JWKEC

    @property
    def eab_required(self) -> bool:
        return bool(self.client.external_account_required())


def connect(directory_url: str, key: ec.EllipticCurvePrivateKey, *, account_url: str | None = None,
            ca_bundle_pem: str | None = None) -> Connection:
    """Fetch the directory and return a client signing with ``key`` (as account ``account_url`` when given)."""
    jwk = jose.JWKEC(key=key)
    account = messages.RegistrationResource(uri=account_url, body=messages.Registration()) if account_url else None
    verify: bool | str = _bundle_path(ca_bundle_pem) if ca_bundle_pem else True
    net = acme_client.ClientNetwork(jwk, account=account, alg=jose.ES256, verify_ssl=verify,  # type: ignore[arg-type]
                                    user_agent=USER_AGENT, timeout=NETWORK_TIMEOUT)
    try:
        directory = acme_client.ClientV2.get_directory(directory_url, net)
    except (messages.Error, acme_errors.Error, requests.RequestException, ValueError) as exc:
        raise AcmeUpstreamError(f"cannot read the ACME directory {directory_url}: {describe(exc)}") from exc
    return Connection(acme_client.ClientV2(directory, net), jwk)


def register(conn: Connection, email: str, eab: tuple[str, str] | None) -> messages.RegistrationResource:
    """Create the account: agree to the CA's terms of service, contact ``email``, EAB (kid, HMAC key) if given."""
    binding = None
    if eab is not None:
        binding = messages.ExternalAccountBinding.from_data(
            account_public_key=conn.key.public_key(), kid=eab[0], hmac_key=eab[1], directory=conn.client.directory
        )
    registration = messages.NewRegistration.from_data(
        email=email, terms_of_service_agreed=True, external_account_binding=binding
    )
    try:
        regr = conn.client.new_account(registration)
    except (messages.Error, acme_errors.Error, requests.RequestException) as exc:
        raise AcmeUpstreamError(f"the ACME CA refused the registration: {describe(exc)}") from exc
    return _without_eab(regr)


def _without_eab(regr: messages.RegistrationResource) -> messages.RegistrationResource:
    # acme 5.x sends the registration body back on update/deactivate; the CA echoes externalAccountBinding in it,
    # and sending that again is refused. The binding is only meaningful in newAccount, so drop it.
    return regr.update(body=regr.body.update(external_account_binding=None))


def change_key(conn: Connection, new_key: ec.EllipticCurvePrivateKey) -> None:
    """Roll the connection's account over to ``new_key`` (RFC 8555 7.3.5; ``acme`` has no helper for it).

    The inner JWS, signed by the new key with its ``jwk`` and the keyChange URL (no nonce), carries the account
    URL and the old key; the outer one is the usual request signed by the old key.
    """
    regr = conn.client.net.account
    if regr is None:
        raise ValueError("change_key needs a connection made with account_url")
    try:
        url = conn.client.directory["keyChange"]
    except KeyError:
        raise AcmeUpstreamError("the ACME CA offers no key rollover (no keyChange in its directory)") from None
    payload = json.dumps({"account": regr.uri, "oldKey": conn.key.public_key().to_partial_json()}).encode()
    # acme's JWS puts alg, jwk (no kid given) and url in the protected header; with no nonce, none is there.
    inner = acme_jws.JWS.sign(payload, key=jose.JWKEC(key=new_key), alg=jose.ES256, nonce=None, url=url)
    try:
        conn.client.net.post(url, inner, new_nonce_url=conn.client.directory["newNonce"])
    except (messages.Error, acme_errors.Error, requests.RequestException) as exc:
        raise AcmeUpstreamError(f"the ACME CA refused the key rollover: {describe(exc)}") from exc


def account_url_for_key(directory_url: str, key: ec.EllipticCurvePrivateKey, *,
                        ca_bundle_pem: str | None = None) -> str | None:
    """The URL of the account ``key`` belongs to at the CA (newAccount with onlyReturnExisting), None if none."""
    conn = connect(directory_url, key, ca_bundle_pem=ca_bundle_pem)
    try:
        regr = conn.client.new_account(messages.NewRegistration(only_return_existing=True))
    except messages.Error as exc:
        if exc.code == "accountDoesNotExist":
            return None
        raise AcmeUpstreamError(f"the ACME CA could not look the account up: {describe(exc)}") from exc
    except acme_errors.ConflictError as exc:  # acme raises this with the existing account's URL
        return str(exc.location)
    except (acme_errors.Error, requests.RequestException) as exc:
        raise AcmeUpstreamError(f"the ACME CA could not look the account up: {describe(exc)}") from exc
    return regr.uri


def deactivate(conn: Connection) -> None:
    """Deactivate the connection's account at the CA (RFC 8555 7.3.6); the CA then refuses it for good."""
    regr = conn.client.net.account
    if regr is None:
        raise ValueError("deactivate needs a connection made with account_url")
    try:
        conn.client.deactivate_registration(_without_eab(regr))
    except (messages.Error, acme_errors.Error, requests.RequestException) as exc:
        raise AcmeUpstreamError(f"the ACME CA refused to deactivate the account: {describe(exc)}") from exc


# -- RFC 9773: renewal information and ``replaces`` -----------------------------------------------------------

#: RFC 9773 4.3.3: a Retry-After under a minute counts as a minute, over a day as a day.
ARI_MIN_RETRY = dt.timedelta(minutes=1)
ARI_MAX_RETRY = dt.timedelta(days=1)
#: When the CA sends no Retry-After with renewal information: ask again in six hours (RFC 9773 4.3.3's example).
ARI_DEFAULT_RETRY = dt.timedelta(hours=6)


class NewOrderReplacing(messages.NewOrder):
    """A newOrder body with RFC 9773's ``replaces`` (``acme`` 5.x cannot send it)."""

    replaces: str | None = jose.field("replaces", omitempty=True)


@dataclass(frozen=True)
class RenewalWindow:
    """The CA's suggested renewal window for one certificate, and when to ask again (naive UTC, as stored)."""

    start: dt.datetime
    end: dt.datetime
    next_check: dt.datetime
    explanation_url: str | None


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def ari_cert_id(certificate: asn1_x509.Certificate) -> str | None:
    """The certificate's RFC 9773 4.1 identifier: base64url(AKI keyIdentifier) "." base64url(serial's DER content).

    None for a certificate without an authority key identifier (no CA we talk to issues those).
    """
    key_id = certificate.authority_key_identifier
    if key_id is None:
        return None
    return f"{_b64url(key_id)}.{_b64url(certificate['tbs_certificate']['serial_number'].contents)}"


def renewal_info_url(conn: Connection) -> str | None:
    """The directory's ``renewalInfo`` URL, None when the CA does not offer renewal information."""
    try:
        url = conn.client.directory["renewalInfo"]
    except KeyError:
        return None
    return str(url) if url else None


def retry_after_utc(response: requests.Response, default: dt.timedelta | None = None) -> dt.datetime | None:
    """The response's Retry-After (seconds or an HTTP date) as naive UTC; ``now + default`` (or None) without one."""
    if "Retry-After" not in response.headers:
        return _naive_utc_now() + default if default is not None else None
    # acme's parser handles both forms, in local naive time.
    local = acme_client.ClientV2.retry_after(response, 1)
    return local.astimezone(dt.timezone.utc).replace(tzinfo=None)


def _naive_utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)


def _naive_utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value.replace(microsecond=0)


def fetch_renewal_info(conn: Connection, cert_id: str) -> RenewalWindow | None:
    """GET the certificate's renewal information (RFC 9773 4.2); None when the CA offers none.

    The next check follows Retry-After, clamped to [1 minute, 1 day]. A malformed window (end not after start)
    is refused like a network failure: :class:`AcmeUpstreamError`.
    """
    base = renewal_info_url(conn)
    if base is None:
        return None
    url = f"{base.rstrip('/')}/{cert_id}"
    try:
        response = conn.client.net.get(url, content_type="application/json")
        info = messages.RenewalInfo.from_json(response.json())
    except (messages.Error, acme_errors.Error, requests.RequestException, ValueError, jose.DeserializationError) as exc:
        raise AcmeUpstreamError(f"cannot read the renewal information {url}: {describe(exc)}") from exc
    start, end = _naive_utc(info.suggested_window.start), _naive_utc(info.suggested_window.end)
    if end <= start:
        raise AcmeUpstreamError(f"the renewal information {url} has an empty window ({start} to {end})")
    now = _naive_utc_now()
    asked = retry_after_utc(response, ARI_DEFAULT_RETRY) or now + ARI_DEFAULT_RETRY
    next_check = min(max(asked, now + ARI_MIN_RETRY), now + ARI_MAX_RETRY)
    explanation = response.json().get("explanationURL")
    return RenewalWindow(start, end, next_check, explanation if isinstance(explanation, str) else None)


def new_order(conn: Connection, csr_pem: bytes, replaces: str | None = None) -> messages.OrderResource:
    """Place an order for the CSR's names; with ``replaces`` (an ARI identifier) when the CA offers renewal info.

    A CA that refuses ``replaces`` as already replaced (RFC 9773 5: ``alreadyReplaced``) gets the order again
    without it: the certificate is still due for renewal, only the link is lost.
    """
    if replaces is None or renewal_info_url(conn) is None:
        return conn.client.new_order(csr_pem)
    csr = x509.load_pem_x509_csr(csr_pem)
    dns_names, ip_addresses = crypto_util.get_identifiers_from_x509(csr.subject, csr.extensions)
    identifiers = [messages.Identifier(typ=messages.IDENTIFIER_FQDN, value=name) for name in dns_names]
    identifiers += [messages.Identifier(typ=messages.IDENTIFIER_IP, value=str(ip)) for ip in ip_addresses]
    try:
        response = conn.client.net.post(conn.client.directory["newOrder"],
                                        NewOrderReplacing(identifiers=tuple(identifiers), replaces=replaces),
                                        new_nonce_url=conn.client.directory["newNonce"])
    except messages.Error as exc:
        if exc.code == "alreadyReplaced":
            return conn.client.new_order(csr_pem)
        raise
    body = messages.Order.from_json(response.json())
    authorizations = [conn.client.poll(messages.AuthorizationResource(uri=url, body=messages.Authorization()))[0]
                      for url in body.authorizations]
    return messages.OrderResource(body=body, uri=response.headers.get("Location"), authorizations=authorizations,
                                  csr_pem=csr_pem)
