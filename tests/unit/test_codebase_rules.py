"""Rules of the code base that a reviewer would otherwise have to remember."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIRS = {"daemon": "scaivault_pki", "hsm": "scaivault_pki.hsm", "schema": "scaivault_pki.schema",
                "plugins": "scaivault_pki.plugins"}


def python_files(folder: str):
    return sorted((ROOT / folder).rglob("*.py"))


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_every_package_folder_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert config["package-dir"] == {v: k for k, v in PACKAGE_DIRS.items()}
    listed = set(config["packages"])
    found = set()
    for folder, package in PACKAGE_DIRS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((package, *relative)))
    assert found == listed


def test_no_bare_top_level_imports():
    for folder in PACKAGE_DIRS:
        for path in python_files(folder):
            bare = {m for m in imported_modules(path) if m.split(".")[0] in PACKAGE_DIRS}
            assert not bare, f"{path.relative_to(ROOT)} imports {bare}; use scaivault_pki.* or relative imports"


def test_only_hsm_touches_pkcs11():
    for folder in ("daemon", "schema", "plugins"):
        for path in python_files(folder):
            assert not any(m.split(".")[0] == "pkcs11" for m in imported_modules(path)), path


def test_services_and_policy_know_nothing_of_http():
    for folder in ("daemon/pki", "schema", "hsm"):
        for path in python_files(folder):
            assert "falcon" not in {m.split(".")[0] for m in imported_modules(path)}, path
