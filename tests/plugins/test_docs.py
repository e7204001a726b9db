"""The plugin author guide (docs/plugins.md) keeps up with the code: every hook, every member of the ABCs."""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

import pytest

from scaivault_pki.plugins import api, spec
from scaivault_pki.plugins.manager import hook_names

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"


@pytest.fixture(scope="module")
def guide() -> str:
    return GUIDE.read_text()


def documented_hooks(text: str) -> list[str]:
    return re.findall(r"^### `(scaivault_pki_\w+)`$", text, flags=re.MULTILINE)


@pytest.mark.parametrize("hook", hook_names())
def test_every_hook_has_a_section(guide, hook):
    assert hook in documented_hooks(guide), f"docs/plugins.md has no '### `{hook}`' section"
    section = guide.split(f"### `{hook}`", 1)[1].split("\n### ", 1)[0]
    assert "Added in" in section, f"the section of {hook} does not say which version added it"
    signature = inspect.signature(getattr(spec, hook))
    for parameter in signature.parameters:
        assert parameter in section, f"the section of {hook} does not mention its argument {parameter!r}"


def test_no_section_for_a_hook_that_does_not_exist(guide):
    assert sorted(documented_hooks(guide)) == hook_names()


@pytest.mark.parametrize("hook", hook_names())
def test_every_hookspec_is_typed_and_says_what_its_return_means(hook):
    function = getattr(spec, hook)
    doc = inspect.getdoc(function) or ""
    assert ".. versionadded::" in doc and ":return:" in doc, hook
    annotations = inspect.get_annotations(function)
    assert "return" in annotations and set(inspect.signature(function).parameters) <= set(annotations), hook


@pytest.mark.parametrize("cls", [api.DnsProvider, api.AcmeCaBackend])
def test_every_member_of_the_base_classes_is_documented(guide, cls):
    members = {name for name in vars(cls) if not name.startswith("_")} | set(inspect.get_annotations(cls))
    for name in sorted(members):
        assert f"`{name}" in guide, f"docs/plugins.md does not mention {cls.__name__}.{name}"


def test_every_event_field_is_documented(guide):
    for field in dataclasses.fields(api.CertificateEvent):
        assert f"`{field.name}`" in guide, field.name


def test_the_helpers_are_documented(guide):
    for name in api.__all__:
        assert f"`{name}" in guide, name


def test_python_examples_compile(guide):
    blocks = re.findall(r"```python\n(.*?)```", guide, flags=re.DOTALL)
    assert blocks
    for block in blocks:
        compile(block, str(GUIDE), "exec")
