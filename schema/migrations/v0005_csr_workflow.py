"""The CSR approval workflow (issue 5)."""

STATEMENTS: list[str] = []
