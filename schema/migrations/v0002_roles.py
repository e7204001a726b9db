"""Roles, and what issuance records on certificates: renewal lineage and who asked."""

STATEMENTS = [
    """CREATE TABLE roles (
        id VARCHAR(36) NOT NULL PRIMARY KEY,
        tenant_id VARCHAR(36) NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        name VARCHAR(128) NOT NULL,
        ca_id VARCHAR(36) NOT NULL REFERENCES certificate_authorities (id) ON DELETE RESTRICT,
        config TEXT NOT NULL,
        created_at TIMESTAMP NOT NULL,
        updated_at TIMESTAMP NOT NULL
    )""",
    "CREATE UNIQUE INDEX roles_tenant_id_name ON roles (tenant_id, name)",
    "CREATE INDEX roles_ca_id ON roles (ca_id)",
    "ALTER TABLE certificates ADD COLUMN renewed_from_id VARCHAR(36) NULL REFERENCES certificates (id) ON DELETE SET NULL",
    "ALTER TABLE certificates ADD COLUMN requested_by VARCHAR(36) NULL",
    "CREATE INDEX certificates_tenant_id_ca_id ON certificates (tenant_id, ca_id)",
]
