"""Revocation, CRLs, OCSP and background-job leases (issue 4).

- ``certificate_authorities.crl_dirty``: set in the transaction that revokes something under the CA, cleared in
  the transaction that publishes its next CRL; the background job rebuilds dirty CAs within seconds.
- ``crls``: every full and delta CRL we published, so every worker and node serves the same bytes. CRL numbers
  are unique per CA (full and delta CRLs share one sequence, RFC 5280 5.2.3).
- ``job_leases``: one row per background job; the worker holding an unexpired lease is the only one running it.
- An index for the CRL and OCSP lookups of revoked certificates per CA.
"""

STATEMENTS = [
    "ALTER TABLE certificate_authorities ADD COLUMN crl_dirty BOOLEAN NOT NULL DEFAULT FALSE",
    """CREATE TABLE crls (
        id VARCHAR(36) NOT NULL PRIMARY KEY,
        ca_id VARCHAR(36) NOT NULL REFERENCES certificate_authorities (id) ON DELETE CASCADE,
        number BIGINT NOT NULL,
        kind VARCHAR(8) NOT NULL,
        base_number BIGINT NULL,
        this_update TIMESTAMP NOT NULL,
        next_update TIMESTAMP NOT NULL,
        der BYTEA NOT NULL,
        created_at TIMESTAMP NOT NULL
    )""",
    "CREATE UNIQUE INDEX crls_ca_id_number ON crls (ca_id, number)",
    "CREATE INDEX crls_ca_id_kind_number ON crls (ca_id, kind, number)",
    """CREATE TABLE job_leases (
        name VARCHAR(64) NOT NULL PRIMARY KEY,
        holder VARCHAR(128) NOT NULL,
        expires_at TIMESTAMP NOT NULL
    )""",
    "CREATE INDEX certificates_ca_id_status ON certificates (ca_id, status)",
]
