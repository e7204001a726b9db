"""Trust anchors, imported certificates' chains and external CRLs (issue 4)."""

STATEMENTS = [
    """CREATE TABLE trust_anchors (
        id VARCHAR(36) NOT NULL PRIMARY KEY,
        tenant_id VARCHAR(36) NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        name VARCHAR(128) NOT NULL,
        subject TEXT NOT NULL,
        certificate_der BYTEA NOT NULL,
        fingerprint_sha256 VARCHAR(64) NOT NULL,
        not_before TIMESTAMP NOT NULL,
        not_after TIMESTAMP NOT NULL,
        created_at TIMESTAMP NOT NULL
    )""",
    "CREATE UNIQUE INDEX trust_anchors_tenant_id_name ON trust_anchors (tenant_id, name)",
    "CREATE UNIQUE INDEX trust_anchors_tenant_id_fingerprint_sha256 ON trust_anchors (tenant_id, fingerprint_sha256)",
    "CREATE INDEX trust_anchors_tenant_id_created_at_id ON trust_anchors (tenant_id, created_at, id)",
    """CREATE TABLE trust_anchor_crls (
        id VARCHAR(36) NOT NULL PRIMARY KEY,
        tenant_id VARCHAR(36) NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        trust_anchor_id VARCHAR(36) NOT NULL REFERENCES trust_anchors (id) ON DELETE CASCADE,
        issuer_key VARCHAR(64) NOT NULL,
        issuer TEXT NOT NULL,
        crl_der BYTEA NOT NULL,
        crl_number VARCHAR(50) NULL,
        this_update TIMESTAMP NOT NULL,
        next_update TIMESTAMP NULL,
        created_at TIMESTAMP NOT NULL,
        updated_at TIMESTAMP NOT NULL
    )""",
    "CREATE UNIQUE INDEX trust_anchor_crls_trust_anchor_id_issuer_key ON trust_anchor_crls (trust_anchor_id, issuer_key)",
    "CREATE INDEX trust_anchor_crls_tenant_id ON trust_anchor_crls (tenant_id)",
    """CREATE TABLE certificate_chains (
        id VARCHAR(36) NOT NULL PRIMARY KEY,
        certificate_id VARCHAR(36) NOT NULL UNIQUE REFERENCES certificates (id) ON DELETE CASCADE,
        chain_pem TEXT NOT NULL,
        created_at TIMESTAMP NOT NULL
    )""",
]
