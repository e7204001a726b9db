"""Secret store and DNS providers (issue 6)."""

STATEMENTS: list[str] = []
