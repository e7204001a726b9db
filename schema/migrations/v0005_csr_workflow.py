"""The CSR approval workflow (issue 5): requests, whose keys may live in the HSM, and their recorded history.

``csr_requests.status`` only changes through a conditional UPDATE (``WHERE status = <expected>``), together with a
``csr_transitions`` row in the same transaction; the unique (csr_id, seq) index makes a second writer that raced
past the status check fail rather than fork the history.
"""

STATEMENTS = [
    """CREATE TABLE csr_requests (
        id VARCHAR(36) NOT NULL PRIMARY KEY,
        tenant_id VARCHAR(36) NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        status VARCHAR(16) NOT NULL,
        csr_der BYTEA NOT NULL,
        subject TEXT NOT NULL,
        subject_fields TEXT NOT NULL,
        common_name VARCHAR(64) NULL,
        sans TEXT NOT NULL,
        key_type VARCHAR(8) NOT NULL,
        key_size INTEGER NOT NULL,
        hsm_key_id VARCHAR(64) NULL UNIQUE,
        requested_by VARCHAR(36) NOT NULL,
        approved_by VARCHAR(36) NULL,
        approved_at TIMESTAMP NULL,
        rejected_by VARCHAR(36) NULL,
        rejected_at TIMESTAMP NULL,
        reason TEXT NULL,
        certificate_id VARCHAR(36) NULL REFERENCES certificates (id) ON DELETE SET NULL,
        created_at TIMESTAMP NOT NULL,
        updated_at TIMESTAMP NOT NULL
    )""",
    "CREATE INDEX csr_requests_tenant_id_created_at_id ON csr_requests (tenant_id, created_at, id)",
    "CREATE INDEX csr_requests_tenant_id_status_created_at_id ON csr_requests (tenant_id, status, created_at, id)",
    "CREATE INDEX csr_requests_certificate_id ON csr_requests (certificate_id)",
    """CREATE TABLE csr_transitions (
        id VARCHAR(36) NOT NULL PRIMARY KEY,
        csr_id VARCHAR(36) NOT NULL REFERENCES csr_requests (id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        from_status VARCHAR(16) NULL,
        to_status VARCHAR(16) NOT NULL,
        actor VARCHAR(36) NOT NULL,
        reason TEXT NULL,
        created_at TIMESTAMP NOT NULL
    )""",
    "CREATE UNIQUE INDEX csr_transitions_csr_id_seq ON csr_transitions (csr_id, seq)",
]
