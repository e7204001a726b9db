"""ACME: RFC 9773 renewal information per order, retried dns-01 cleanups, challenges looked up by domain
(tls-alpn-01 handshakes name the domain, not a token), and account key rollover."""

STATEMENTS = [
    # The ARI certificate identifier of the order's certificate, the CA's suggested renewal window (when it
    # offers renewalInfo), when to ask again, and which certificate (ARI identifier) a renewal order replaces.
    "ALTER TABLE acme_orders ADD COLUMN ari_cert_id VARCHAR(255)",
    "ALTER TABLE acme_orders ADD COLUMN renewal_window_start TIMESTAMP",
    "ALTER TABLE acme_orders ADD COLUMN renewal_window_end TIMESTAMP",
    "ALTER TABLE acme_orders ADD COLUMN ari_next_check TIMESTAMP",
    "ALTER TABLE acme_orders ADD COLUMN replaces VARCHAR(255)",
    "CREATE INDEX acme_orders_ari_next_check ON acme_orders (ari_next_check)",
    # A dns-01 record whose removal the provider refused is tried again later, with backoff.
    "ALTER TABLE acme_challenges ADD COLUMN cleanup_attempts INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE acme_challenges ADD COLUMN cleanup_next_at TIMESTAMP",
    "ALTER TABLE acme_challenges ADD COLUMN cleanup_error TEXT",
    "CREATE INDEX acme_challenges_presented_at ON acme_challenges (presented_at)",
    "CREATE INDEX acme_challenges_domain ON acme_challenges (domain, type)",
    # Key rollover (RFC 8555 7.3.5): the new key is sealed here before the CA is asked, so a crash between the
    # CA's change and ours loses nothing; it becomes key_ciphertext once the CA is known to have it.
    "ALTER TABLE acme_accounts ADD COLUMN next_key_ciphertext BYTEA",
    "ALTER TABLE acme_accounts ADD COLUMN next_key_at TIMESTAMP",
    "ALTER TABLE acme_accounts ADD COLUMN key_rolled_at TIMESTAMP",
]
