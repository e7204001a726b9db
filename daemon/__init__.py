"""ScaiVault PKI: an HSM-backed PKI daemon."""

__version__ = "0.1.0"
