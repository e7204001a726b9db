"""Signature algorithms and the :class:`Signer` handed to the certificate code.

All algorithms live in ONE table (:data:`_ALGORITHMS`): PKCS#11 mechanism,
optional software pre-hash and output encoding.  Names are asn1crypto
``SignedDigestAlgorithm`` names so that the certificate code can use them as-is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

from asn1crypto.algos import DSASignature, SignedDigestAlgorithm
from asn1crypto.core import Null
from asn1crypto.keys import PublicKeyInfo
from pkcs11 import Mechanism

if TYPE_CHECKING:
    from .token import Token

__all__ = ["SIGNATURE_ALGORITHMS", "Signer"]

KeyType = Literal["rsa", "ec"]


@dataclass(frozen=True)
class _Algorithm:
    """How one named signature algorithm maps onto PKCS#11."""

    name: str
    key_type: KeyType
    mechanism: Mechanism
    # hashlib name when the digest is computed in software, None when the
    # mechanism hashes inside the token.
    prehash: str | None
    encoding: Literal["pkcs1", "ecdsa_der"]


# RSA uses the combined CKM_SHAxxx_RSA_PKCS mechanisms rather than CKM_RSA_PKCS
# over a DigestInfo built here: the token then constructs the DigestInfo itself
# (no hand-rolled ASN.1 on the signing path), and HSM key policies
# (CKA_ALLOWED_MECHANISMS) usually allow these while forbidding raw CKM_RSA_PKCS,
# which signs arbitrary padded blobs.  Certificates and CRLs are small, so
# sending the whole TBS to the token costs nothing.
#
# ECDSA hashes in software because SoftHSM (and many HSMs) lack
# CKM_ECDSA_SHA256/384/512; CKM_ECDSA signs the digest and returns raw r||s,
# which X.509 needs DER-encoded as Ecdsa-Sig-Value.
_ALGORITHMS: Mapping[str, _Algorithm] = MappingProxyType(
    {
        a.name: a
        for a in (
            _Algorithm("sha256_rsa", "rsa", Mechanism.SHA256_RSA_PKCS, None, "pkcs1"),
            _Algorithm("sha384_rsa", "rsa", Mechanism.SHA384_RSA_PKCS, None, "pkcs1"),
            _Algorithm("sha512_rsa", "rsa", Mechanism.SHA512_RSA_PKCS, None, "pkcs1"),
            _Algorithm("sha256_ecdsa", "ec", Mechanism.ECDSA, "sha256", "ecdsa_der"),
            _Algorithm("sha384_ecdsa", "ec", Mechanism.ECDSA, "sha384", "ecdsa_der"),
            _Algorithm("sha512_ecdsa", "ec", Mechanism.ECDSA, "sha512", "ecdsa_der"),
        )
    }
)

#: Names accepted by :meth:`Token.signer`, in table order.
SIGNATURE_ALGORITHMS: tuple[str, ...] = tuple(_ALGORITHMS)


def resolve_algorithm(name: str, key_type: str | None = None) -> _Algorithm:
    """Look up ``name`` in the table; ValueError if unknown or not for ``key_type``."""
    try:
        algorithm = _ALGORITHMS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unsupported signature algorithm {name!r}; "
            f"supported: {', '.join(SIGNATURE_ALGORITHMS)}"
        ) from None
    if key_type is not None and algorithm.key_type != key_type:
        raise ValueError(
            f"signature algorithm {name!r} needs an {algorithm.key_type.upper()} key, "
            f"but the key is {key_type.upper()}"
        )
    return algorithm


def _truncate_digest(digest: bytes, order_bits: int) -> bytes:
    # FIPS 186-4 6.4: ECDSA uses the leftmost order_bits bits of the hash.
    # PKCS#11 says CKM_ECDSA truncates by itself, but some tokens answer
    # CKR_DATA_LEN_RANGE instead, so do it here (e.g. sha512_ecdsa on P-256).
    if len(digest) * 8 <= order_bits:
        return digest
    value = int.from_bytes(digest, "big") >> (len(digest) * 8 - order_bits)
    return value.to_bytes((order_bits + 7) // 8, "big")


class Signer:
    """Signs with one private key of a :class:`Token` under one algorithm.

    Obtain instances from :meth:`Token.signer`; they are cached there, are
    cheap to keep, and are safe to share between threads (every PKCS#11 call
    goes through the token's lock).
    """

    def __init__(
        self,
        token: Token,
        key_id: str,
        algorithm: str,
        public_key_info: PublicKeyInfo,
    ) -> None:
        self._token = token
        self._spec = resolve_algorithm(algorithm, public_key_info.algorithm)
        self._key_id = key_id
        self._public_key_info = public_key_info
        self._order_bits = public_key_info.bit_size if self._spec.key_type == "ec" else 0

    @property
    def algorithm(self) -> str:
        """asn1crypto SignedDigestAlgorithm name, e.g. ``"sha256_ecdsa"``."""
        return self._spec.name

    @property
    def key_id(self) -> str:
        """Lower-case hex CKA_ID of the key pair."""
        return self._key_id

    @property
    def public_key_info(self) -> PublicKeyInfo:
        """SubjectPublicKeyInfo of the key pair."""
        return self._public_key_info

    @property
    def algorithm_identifier(self) -> SignedDigestAlgorithm:
        """The AlgorithmIdentifier to put next to the signature.

        RFC 4055 requires explicit NULL parameters for RSA; RFC 5758 requires
        them absent for ECDSA.
        """
        if self._spec.key_type == "rsa":
            return SignedDigestAlgorithm({"algorithm": self._spec.name, "parameters": Null()})
        return SignedDigestAlgorithm({"algorithm": self._spec.name})

    def sign(self, data: bytes) -> bytes:
        """Sign ``data`` (e.g. a DER TBSCertificate).

        Returns the bytes that go into the X.509 signature BIT STRING: a
        PKCS#1 v1.5 signature for RSA, a DER Ecdsa-Sig-Value for ECDSA.
        Raises :class:`HsmError` subclasses when the token cannot sign.
        """
        spec = self._spec
        if spec.prehash is not None:
            # Hash outside the token lock: other threads may use the token meanwhile.
            payload = _truncate_digest(hashlib.new(spec.prehash, data).digest(), self._order_bits)
        else:
            payload = bytes(data)
        raw = self._token._sign_with_key(self._key_id, spec.mechanism, payload)
        if spec.encoding == "ecdsa_der":
            der: bytes = DSASignature.from_p1363(raw).dump()
            return der
        return raw

    def __repr__(self) -> str:
        return f"<Signer key_id={self._key_id} algorithm={self._spec.name}>"
