"""OCSP (RFC 6960): parsing requests, answering them from our records, signing responses with the CA key.

Every CA is its own responder: CA certificates carry digitalSignature (see ``profiles.CA_KEY_USAGE``), so a
response signed with the CA key in the HSM needs no delegated responder certificate (RFC 6960 4.2.2.2). The
responder is named by key (the SHA-1 of the CA's public key), and the CA certificate rides along in ``certs`` so
a client that was given only the root can still check the signature.

Decisions the RFCs leave open:

- A request whose CertID names another issuer, or a hash algorithm we do not offer, is answered ``unknown``
  (2.2: "the responder doesn't know about the certificate being requested").
- A serial this CA never issued is ``unknown``; an expired certificate keeps its status (revoked stays revoked).
- A nonce (RFC 8954) is echoed as sent; one that is empty or longer than 32 octets is refused with
  ``malformedRequest``, as 8954 section 2.1 demands.
- Several requests in one: each gets its own answer, in one signed response; more than
  ``MAX_REQUESTS_PER_QUERY`` is ``malformedRequest``.
- An HSM that cannot sign gives ``tryLater``; HTTP-level problems (media type, size) are HTTP errors.
- ``thisUpdate`` is now (the answer comes from live records); ``nextUpdate`` is the CA's current CRL's next
  update, or now plus the CRL lifetime when there is none yet.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import logging
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from asn1crypto import algos, core, ocsp, x509

from ..config import Config
from ..hsm import HsmError
from ..schema.models import Certificate, CertificateAuthority
from ..times import utc_now
from . import extensions as ext
from .crl import asn1_reason, known_reason
from .crl_publication import ocsp_next_update
from .serials import serial_to_hex
from .signing import Signer, sign_and_verify

__all__ = [
    "MAX_REQUESTS_PER_QUERY",
    "OcspQuery",
    "OcspRequestError",
    "SingleAnswer",
    "build_response",
    "decode_get_request",
    "error_response",
    "issuer_matches",
    "parse_request",
    "respond",
]

log = logging.getLogger("scaivault_pki.ocsp")

MAX_REQUESTS_PER_QUERY: Final = 100
MAX_NONCE_OCTETS: Final = 32
# CertID hash algorithms we match (RFC 6960 uses SHA-1 by default; RFC 5019 clients may send SHA-256).
_CERT_ID_HASHES: Final[frozenset[str]] = frozenset({"sha1", "sha256", "sha384", "sha512"})


class OcspRequestError(ValueError):
    """The request is not a usable OCSP request: the answer is ``malformedRequest``."""


@dataclass(frozen=True)
class OcspQuery:
    """A parsed OCSP request: the CertIDs asked about and the nonce extension to echo."""

    cert_ids: tuple[ocsp.CertId, ...]
    nonce: ocsp.TBSRequestExtension | None


@dataclass(frozen=True)
class SingleAnswer:
    """The status of one CertID."""

    cert_id: ocsp.CertId
    status: str  # good | revoked | unknown
    revoked_at: dt.datetime | None = None  # aware UTC, for revoked
    reason: str | None = None  # RFC 5280 name, for revoked


def decode_get_request(text: str) -> bytes:
    """The DER of a GET request's path segment (RFC 6960 A.1: base64, then URL-encoded).

    Servers hand us the path percent-decoded already; a client that encoded twice still works because a
    remaining ``%`` is decoded once more. The URL-safe alphabet and missing padding are accepted too.
    """
    if "%" in text:
        text = urllib.parse.unquote(text)
    text = text.strip()
    if not text:
        raise OcspRequestError("empty request")
    padded = text + "=" * (-len(text) % 4)
    try:
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(padded.encode("ascii"))
        return base64.b64decode(padded.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise OcspRequestError("the request in the URL is not base64") from None


def parse_request(der: bytes) -> OcspQuery:
    """Parse and check an OCSP request; ``OcspRequestError`` says why it cannot be answered."""
    try:
        request = ocsp.OCSPRequest.load(der, strict=True)
        tbs = request["tbs_request"]
        if tbs["version"].native != "v1":
            raise OcspRequestError("unsupported OCSP request version")
        cert_ids = []
        for single in tbs["request_list"]:
            cert_id = single["req_cert"]
            cert_id.native  # noqa: B018 - parse every field now, so bad encodings are refused here
            cert_ids.append(cert_id)
        nonce = None
        for extension in tbs["request_extensions"] or []:
            if extension["extn_id"].native == "nonce":
                value = extension["extn_value"].parsed.native
                if not isinstance(value, bytes) or not 1 <= len(value) <= MAX_NONCE_OCTETS:
                    raise OcspRequestError(f"the nonce must be 1 to {MAX_NONCE_OCTETS} octets (RFC 8954)")
                nonce = extension
            elif extension["critical"].native:
                raise OcspRequestError(f"unsupported critical request extension {extension['extn_id'].dotted}")
    except OcspRequestError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError) as exc:
        # asn1crypto reports malformed DER with any of these.
        raise OcspRequestError(f"not a DER OCSP request: {exc}") from None
    if not cert_ids:
        raise OcspRequestError("the request lists no certificates")
    if len(cert_ids) > MAX_REQUESTS_PER_QUERY:
        raise OcspRequestError(f"at most {MAX_REQUESTS_PER_QUERY} certificates per request")
    return OcspQuery(tuple(cert_ids), nonce)


def issuer_matches(cert_id: ocsp.CertId, ca_certificate: x509.Certificate) -> bool:
    """Whether ``cert_id`` names ``ca_certificate`` as issuer (name hash and key hash, RFC 6960 4.1.1)."""
    algorithm = cert_id["hash_algorithm"]["algorithm"].native
    if algorithm not in _CERT_ID_HASHES:
        return False
    name_hash = hashlib.new(algorithm, ca_certificate.subject.dump()).digest()
    # The key hash covers the subjectPublicKey BIT STRING value, without tag, length and unused-bits octet.
    key_hash = hashlib.new(algorithm, ca_certificate.public_key["public_key"].contents[1:]).digest()
    return cert_id["issuer_name_hash"].native == name_hash and cert_id["issuer_key_hash"].native == key_hash


def _generalized(value: dt.datetime) -> core.GeneralizedTime:
    return core.GeneralizedTime(value.astimezone(dt.timezone.utc).replace(microsecond=0))


def _single_response(answer: SingleAnswer, this_update: dt.datetime, next_update: dt.datetime) -> ocsp.SingleResponse:
    if answer.status == "revoked":
        assert answer.revoked_at is not None
        info: dict[str, Any] = {"revocation_time": _generalized(answer.revoked_at)}
        if answer.reason and answer.reason != "unspecified":
            info["revocation_reason"] = asn1_reason(answer.reason)
        status = ocsp.CertStatus(name="revoked", value=ocsp.RevokedInfo(info))
    else:
        status = ocsp.CertStatus(name=answer.status, value=core.Null())
    return ocsp.SingleResponse(
        {
            # Echo the CertID exactly as asked (hash algorithm parameters included) so clients match it.
            "cert_id": ocsp.CertId.load(answer.cert_id.dump()),
            "cert_status": status,
            "this_update": _generalized(this_update),
            "next_update": _generalized(next_update),
        }
    )


def build_response(
    answers: Sequence[SingleAnswer],
    *,
    responder_certificate: x509.Certificate,
    signer: Signer,
    produced_at: dt.datetime,
    this_update: dt.datetime,
    next_update: dt.datetime,
    nonce: ocsp.TBSRequestExtension | None = None,
) -> bytes:
    """A successful, signed ``OCSPResponse`` (DER) answering ``answers``."""
    response_data: dict[str, Any] = {
        "version": "v1",
        "responder_id": ocsp.ResponderId(
            name="by_key", value=ext.key_identifier_for(responder_certificate.public_key)
        ),
        "produced_at": _generalized(produced_at),
        "responses": [_single_response(answer, this_update, next_update) for answer in answers],
    }
    if nonce is not None:
        response_data["response_extensions"] = [
            {"extn_id": "nonce", "critical": False, "extn_value": nonce["extn_value"].parsed}
        ]
    tbs = ocsp.ResponseData(response_data)
    data = tbs.dump()
    signature = sign_and_verify(signer, signer.algorithm, data)
    basic = ocsp.BasicOCSPResponse(
        {
            "tbs_response_data": ocsp.ResponseData.load(data),
            "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": signer.algorithm}),
            "signature": signature,
            "certs": [x509.Certificate.load(responder_certificate.dump())],
        }
    )
    return ocsp.OCSPResponse(
        {
            "response_status": "successful",
            "response_bytes": {"response_type": "basic_ocsp_response", "response": basic},
        }
    ).dump()


def error_response(status: str) -> bytes:
    """An unsigned error response: ``malformed_request``, ``internal_error``, ``try_later`` or ``unauthorized``."""
    return ocsp.OCSPResponse({"response_status": status}).dump()


def _answers(
    ca: CertificateAuthority, ca_certificate: x509.Certificate, cert_ids: Iterable[ocsp.CertId]
) -> list[SingleAnswer]:
    # (CertID, its serial as we store it, or None when the CertID is not about this CA)
    asked = [
        (cert_id, serial_to_hex(cert_id["serial_number"].native)
         if cert_id["serial_number"].native > 0 and issuer_matches(cert_id, ca_certificate) else None)
        for cert_id in cert_ids
    ]
    serials = sorted({serial for _, serial in asked if serial is not None})
    rows = {}
    if serials:
        query = Certificate.select(
            Certificate.serial_number, Certificate.status, Certificate.revoked_at, Certificate.revocation_reason
        ).where((Certificate.ca == ca.id) & (Certificate.serial_number.in_(serials)))
        rows = {row.serial_number: row for row in query}
    answers = []
    for cert_id, serial in asked:
        row = rows.get(serial) if serial is not None else None
        if row is None:
            answers.append(SingleAnswer(cert_id, "unknown"))
        elif row.status == "revoked":
            revoked_at = row.revoked_at.replace(tzinfo=dt.timezone.utc)
            answers.append(SingleAnswer(cert_id, "revoked", revoked_at, known_reason(row.revocation_reason)))
        else:
            answers.append(SingleAnswer(cert_id, "good"))
    return answers


def respond(hsm: Any, config: Config, ca_id: str, request_der: bytes) -> bytes:
    """Answer one OCSP request for the CA ``ca_id`` with an ``OCSPResponse`` (DER).

    Malformed requests get ``malformedRequest``; a CA we do not have, ``unauthorized``; an HSM that cannot sign,
    ``tryLater`` (clients retry or fall back to the CRL). Database errors are raised, like everywhere else, so
    the app answers 503 and the worker reconnects.
    """
    try:
        query = parse_request(request_der)
    except OcspRequestError as exc:
        log.info("ocsp request refused", extra={"ca_id": ca_id, "error": str(exc)})
        return error_response("malformed_request")
    ca = CertificateAuthority.get_or_none(CertificateAuthority.id == ca_id)
    if ca is None:
        return error_response("unauthorized")
    ca_certificate = x509.Certificate.load(ca.certificate_der)
    answers = _answers(ca, ca_certificate, query.cert_ids)
    now = utc_now()
    try:
        signer = hsm.signer(ca.hsm_key_id, ca.signature_algorithm)
        return build_response(
            answers,
            responder_certificate=ca_certificate,
            signer=signer,
            produced_at=now,
            this_update=now,
            next_update=ocsp_next_update(config, ca, now),
            nonce=query.nonce,
        )
    except HsmError as exc:
        log.warning("ocsp answer unavailable", extra={"ca_id": ca_id, "error": str(exc)})
        return error_response("try_later")
