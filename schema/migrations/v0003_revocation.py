"""Revocation, CRLs, OCSP and background-job leases (issue 4)."""

STATEMENTS: list[str] = []
