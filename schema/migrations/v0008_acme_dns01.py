"""dns-01 for ACME orders: the order's DNS provider, and per challenge when its TXT record went up and until when
its propagation may take."""

STATEMENTS = [
    "ALTER TABLE acme_orders ADD COLUMN dns_provider_id VARCHAR(36)",
    "ALTER TABLE acme_challenges ADD COLUMN presented_at TIMESTAMP",
    "ALTER TABLE acme_challenges ADD COLUMN propagation_deadline TIMESTAMP",
]
