"""Trust anchors, imported certificates' chains and external CRLs (issue 4)."""

STATEMENTS: list[str] = []
