"""ACME client (issue 7): accounts at ACME CAs, orders and their challenges.

``acme_accounts.key_ciphertext`` is the account's EC P-256 private key (PKCS#8 DER) sealed with the envelope
(HSM-held key-encryption key), bound to ``acme-account:{id}``. EAB HMAC keys are used once, at registration, and
never stored. ``acme_orders.renew_after`` is when the renewal job next renews a valid order's certificate
(null: not to be renewed, or a renewal order is under way); ``renewal_of`` links a renewal to the order it renews.
``ca_bundle_pem`` is only set for custom directories with their own trust (tests, private CAs).
"""

STATEMENTS = [
    """CREATE TABLE acme_accounts (
        id VARCHAR(36) NOT NULL PRIMARY KEY,
        tenant_id VARCHAR(36) NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        name VARCHAR(128) NOT NULL,
        provider VARCHAR(64) NOT NULL,
        environment VARCHAR(16) NOT NULL,
        directory_url VARCHAR(2048) NOT NULL,
        email VARCHAR(255) NOT NULL,
        account_url VARCHAR(2048) NOT NULL,
        eab_kid VARCHAR(256),
        ca_bundle_pem TEXT,
        key_ciphertext BYTEA NOT NULL,
        status VARCHAR(16) NOT NULL,
        created_at TIMESTAMP NOT NULL,
        updated_at TIMESTAMP NOT NULL,
        deactivated_at TIMESTAMP
    )""",
    "CREATE UNIQUE INDEX acme_accounts_tenant_id_name ON acme_accounts (tenant_id, name)",
    "CREATE INDEX acme_accounts_tenant_id_created_at_id ON acme_accounts (tenant_id, created_at, id)",
    """CREATE TABLE acme_orders (
        id VARCHAR(36) NOT NULL PRIMARY KEY,
        tenant_id VARCHAR(36) NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        account_id VARCHAR(36) NOT NULL REFERENCES acme_accounts (id) ON DELETE RESTRICT,
        status VARCHAR(16) NOT NULL,
        domains TEXT NOT NULL,
        challenge_type VARCHAR(16) NOT NULL,
        key_type VARCHAR(8) NOT NULL,
        auto_renew BOOLEAN NOT NULL,
        order_url VARCHAR(2048) NOT NULL,
        finalize_url VARCHAR(2048) NOT NULL,
        csr_pem TEXT NOT NULL,
        key_ciphertext BYTEA NOT NULL,
        certificate_id VARCHAR(36) REFERENCES certificates (id) ON DELETE SET NULL,
        error TEXT,
        attempts INTEGER NOT NULL,
        next_attempt_at TIMESTAMP NOT NULL,
        requested_by VARCHAR(36),
        renewal_of VARCHAR(36) REFERENCES acme_orders (id) ON DELETE SET NULL,
        renew_after TIMESTAMP,
        renewal_failures INTEGER NOT NULL,
        renewal_error TEXT,
        created_at TIMESTAMP NOT NULL,
        updated_at TIMESTAMP NOT NULL
    )""",
    "CREATE INDEX acme_orders_renew_after ON acme_orders (renew_after)",
    "CREATE INDEX acme_orders_tenant_id_created_at_id ON acme_orders (tenant_id, created_at, id)",
    "CREATE INDEX acme_orders_status_next_attempt_at ON acme_orders (status, next_attempt_at)",
    """CREATE TABLE acme_challenges (
        id VARCHAR(36) NOT NULL PRIMARY KEY,
        order_id VARCHAR(36) NOT NULL REFERENCES acme_orders (id) ON DELETE CASCADE,
        domain VARCHAR(255) NOT NULL,
        type VARCHAR(16) NOT NULL,
        token VARCHAR(255) NOT NULL,
        key_authorization VARCHAR(512) NOT NULL,
        url VARCHAR(2048) NOT NULL,
        authorization_url VARCHAR(2048) NOT NULL,
        status VARCHAR(16) NOT NULL,
        answered_at TIMESTAMP,
        active BOOLEAN NOT NULL,
        created_at TIMESTAMP NOT NULL
    )""",
    "CREATE INDEX acme_challenges_order_id ON acme_challenges (order_id)",
    "CREATE INDEX acme_challenges_token ON acme_challenges (token)",
]
