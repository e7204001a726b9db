"""A software implementation of the ``Signer`` protocol, for tests only.

Production signing happens in the HSM; this stands in for it with in-memory
pyca ``cryptography`` keys so the certificate builder can be exercised without
a token.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from asn1crypto import keys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from scaivault_pki.pki.profiles import signature_algorithm_for
from scaivault_pki.pki.signing import SIGNATURE_ALGORITHMS

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
_CURVES: dict[int, type[ec.EllipticCurve]] = {256: ec.SECP256R1, 384: ec.SECP384R1}


@dataclass
class SoftwareSigner:
    """Holds a private key in memory and signs like the HSM signer would."""

    private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    algorithm: str
    public_key_info: keys.PublicKeyInfo = field(init=False)

    def __post_init__(self) -> None:
        if self.algorithm not in SIGNATURE_ALGORITHMS:
            raise ValueError(f"unsupported algorithm {self.algorithm!r}")
        der = self.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public_key_info = keys.PublicKeyInfo.load(der)

    @classmethod
    def generate(cls, key_type: str, key_size: int, algorithm: str | None = None) -> SoftwareSigner:
        """Generate a fresh RSA (``key_size`` bits) or EC (P-256/P-384) key.

        ``algorithm`` defaults to our profile's choice for the key.
        """
        private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
        if key_type == "rsa":
            private_key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
        elif key_type == "ec":
            private_key = ec.generate_private_key(_CURVES[key_size]())
        else:
            raise ValueError(f"unsupported key type {key_type!r}")
        return cls(private_key, algorithm or signature_algorithm_for(key_type, key_size))

    @property
    def public_key(self) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
        """The pyca public key, for verifying signatures in tests."""
        return self.private_key.public_key()

    def sign(self, data: bytes) -> bytes:
        """Sign ``data``: PKCS#1 v1.5 for RSA, DER Ecdsa-Sig-Value for ECDSA."""
        key_algorithm, digest_name = SIGNATURE_ALGORITHMS[self.algorithm]
        digest = _HASHES[digest_name]()
        if key_algorithm == "rsa":
            assert isinstance(self.private_key, rsa.RSAPrivateKey)
            return self.private_key.sign(data, padding.PKCS1v15(), digest)
        assert isinstance(self.private_key, ec.EllipticCurvePrivateKey)
        return self.private_key.sign(data, ec.ECDSA(digest))
