"""Secret store and DNS providers (issue 6).

``secrets.ciphertext`` is an AES-256-GCM envelope (HSM-held key) over the JSON of the secret's data, bound to
``secret:{tenant_id}:{path}``; nothing else about a secret's value is stored. ``dns_providers.config`` holds the
provider's settings with secret references (``{"secret": "path#key"}``), never resolved values.
"""

STATEMENTS = [
    """CREATE TABLE secrets (
        id VARCHAR(36) NOT NULL PRIMARY KEY,
        tenant_id VARCHAR(36) NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        path VARCHAR(255) NOT NULL,
        ciphertext BYTEA NOT NULL,
        version INTEGER NOT NULL,
        created_at TIMESTAMP NOT NULL,
        updated_at TIMESTAMP NOT NULL
    )""",
    "CREATE UNIQUE INDEX secrets_tenant_id_path ON secrets (tenant_id, path)",
    "CREATE INDEX secrets_tenant_id_created_at_id ON secrets (tenant_id, created_at, id)",
    """CREATE TABLE dns_providers (
        id VARCHAR(36) NOT NULL PRIMARY KEY,
        tenant_id VARCHAR(36) NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        name VARCHAR(128) NOT NULL,
        type VARCHAR(64) NOT NULL,
        config TEXT NOT NULL,
        created_at TIMESTAMP NOT NULL,
        updated_at TIMESTAMP NOT NULL
    )""",
    "CREATE UNIQUE INDEX dns_providers_tenant_id_name ON dns_providers (tenant_id, name)",
    "CREATE INDEX dns_providers_tenant_id_created_at_id ON dns_providers (tenant_id, created_at, id)",
]
