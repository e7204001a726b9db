"""The signing seam between the certificate builder and the key holder.

The builder never sees a private key: it produces an unsigned ``TbsCertificate``
and hands its DER encoding to a :class:`Signer`.  In production the signer is
implemented by the HSM layer; tests use a software signer.  Both only have to
satisfy the structural :class:`Signer` protocol defined here, so this module
must not import the HSM layer.
"""

from __future__ import annotations

from typing import Final, Protocol, runtime_checkable

from asn1crypto import keys
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

__all__ = [
    "SIGNATURE_ALGORITHMS",
    "SignatureVerificationError",
    "Signer",
    "check_signer_algorithm",
    "sign_and_verify",
    "verify_signature",
]

#: Supported asn1crypto ``SignedDigestAlgorithm`` names, mapped to the
#: ``PublicKeyInfo.algorithm`` of the key that can produce them and the digest.
#: Only RSA PKCS#1 v1.5 and ECDSA are supported: RSA-PSS is deliberately left
#: out because the CA/B Forum BR and many relying parties restrict its
#: parameter encodings, and we have no need for it.
SIGNATURE_ALGORITHMS: Final[dict[str, tuple[str, str]]] = {
    "sha256_rsa": ("rsa", "sha256"),
    "sha384_rsa": ("rsa", "sha384"),
    "sha512_rsa": ("rsa", "sha512"),
    "sha256_ecdsa": ("ec", "sha256"),
    "sha384_ecdsa": ("ec", "sha384"),
    "sha512_ecdsa": ("ec", "sha512"),
}

_HASHES: Final[dict[str, type[hashes.HashAlgorithm]]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


@runtime_checkable
class Signer(Protocol):
    """Something that can sign with one CA key.

    ``algorithm`` is an asn1crypto ``SignedDigestAlgorithm`` name (one of
    :data:`SIGNATURE_ALGORITHMS`); ``public_key_info`` is the public half of
    the signing key.  ``sign`` hashes ``data`` itself and returns the final
    signature bytes: the PKCS#1 v1.5 signature for RSA, or the DER encoded
    ``Ecdsa-Sig-Value`` for ECDSA.
    """

    # Read-only properties rather than plain attributes so that an
    # implementation exposing them as properties (as the HSM signer does)
    # satisfies the protocol under mypy; plain attributes still do too.
    @property
    def algorithm(self) -> str:
        """asn1crypto ``SignedDigestAlgorithm`` name, e.g. ``"sha256_ecdsa"``."""
        ...

    @property
    def public_key_info(self) -> keys.PublicKeyInfo:
        """SubjectPublicKeyInfo of the signing key."""
        ...

    def sign(self, data: bytes) -> bytes:
        """Return the signature of ``data`` (which the signer hashes)."""
        ...


def check_signer_algorithm(algorithm: str, public_key_info: keys.PublicKeyInfo) -> None:
    """Raise ``ValueError`` unless ``algorithm`` is supported and fits the key type.

    Catching an RSA algorithm paired with an EC key here gives a clear error
    instead of an HSM failure or, worse, a certificate nobody can verify.
    """
    if algorithm not in SIGNATURE_ALGORITHMS:
        raise ValueError(
            f"signature algorithm {algorithm!r} is not supported; "
            f"expected one of {sorted(SIGNATURE_ALGORITHMS)}"
        )
    key_algorithm, _ = SIGNATURE_ALGORITHMS[algorithm]
    if public_key_info.algorithm != key_algorithm:
        raise ValueError(
            f"signature algorithm {algorithm!r} needs a {key_algorithm} key, "
            f"but the signer's key is {public_key_info.algorithm}"
        )


def verify_signature(
    public_key_info: keys.PublicKeyInfo, algorithm: str, data: bytes, signature: bytes
) -> bool:
    """Return whether ``signature`` over ``data`` verifies with ``public_key_info``.

    Used after every signing operation: an HSM that signs with the wrong key
    object (e.g. a mislabelled key) would otherwise produce certificates that
    look fine but fail validation at relying parties.
    """
    check_signer_algorithm(algorithm, public_key_info)
    _, digest_name = SIGNATURE_ALGORITHMS[algorithm]
    digest = _HASHES[digest_name]()
    public_key = serialization.load_der_public_key(public_key_info.dump())
    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, data, padding.PKCS1v15(), digest)
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, data, ec.ECDSA(digest))
        else:  # pragma: no cover - check_signer_algorithm rejects other key types
            return False
    except InvalidSignature:
        return False
    return True


class SignatureVerificationError(RuntimeError):
    """The signer returned a signature that does not verify with its own public key."""


def sign_and_verify(signer: Signer, declared_algorithm: str, data: bytes, *, verify: bool = True) -> bytes:
    """Have ``signer`` sign ``data`` (a DER TBS structure) and return the signature bytes.

    ``declared_algorithm`` is the algorithm the TBS names (certificate, CRL and OCSP response alike); it must
    be the signer's. With ``verify`` (the default) the signature is checked against the signer's public key
    first, so an HSM signing with the wrong key object raises :class:`SignatureVerificationError` instead of
    producing something no relying party accepts.
    """
    if declared_algorithm != signer.algorithm:
        raise ValueError(
            f"TBS signature algorithm {declared_algorithm!r} does not match the "
            f"signer's algorithm {signer.algorithm!r}"
        )
    check_signer_algorithm(signer.algorithm, signer.public_key_info)
    signature = signer.sign(data)
    if not isinstance(signature, bytes) or not signature:
        raise SignatureVerificationError("signer returned no signature bytes")
    if verify and not verify_signature(signer.public_key_info, signer.algorithm, data, signature):
        raise SignatureVerificationError("signature does not verify with the signer's public key")
    return signature
