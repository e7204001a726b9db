"""Finding plugins, checking them at start, and calling their hooks.

Plugins come from one place, the ``scaivault_pki.plugins`` entry-point group; the built-ins are registered there
too (``builtin``), so disabling, listing and error reporting work the same for every plugin. Everything a plugin
can get wrong is found when the daemon starts (:func:`load_plugins`), not when a hook first fires: an import
error, a misspelled hook (``check_pending``), a registration hook returning something that is not a valid
provider class, two plugins claiming one ``type_name``.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import jsonschema
import pluggy
from pluggy import HookImpl

from . import spec
from .api import AcmeCaBackend, DnsProvider

log = logging.getLogger("scaivault_pki.plugins")

ENTRY_POINT_GROUP = "scaivault_pki.plugins"

TYPE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

_Registered = TypeVar("_Registered", DnsProvider, AcmeCaBackend)


class PluginError(Exception):
    """A plugin cannot be used: it failed to import, implements an unknown hook, or registered something invalid.

    Raised at start; the daemon refuses to run rather than run without a plugin the operator installed.
    """


@dataclass(frozen=True)
class PluginInfo:
    """One loaded plugin: its entry-point name and the distribution that provides it."""

    name: str
    distribution: str | None
    version: str | None


class PluginHost:
    """The daemon's view of its plugins: registered types by name, and event hooks fired safely.

    Build it with :func:`load_plugins`. Share one per process.
    """

    def __init__(self, manager: pluggy.PluginManager) -> None:
        self.manager = manager
        self._info: dict[str, PluginInfo] = {}
        self._dns_types: dict[str, tuple[type[DnsProvider], str]] = {}
        self._acme_types: dict[str, tuple[type[AcmeCaBackend], str]] = {}

    # -- loading ---------------------------------------------------------------------------------------

    def register(self, plugin: object, name: str, distribution: importlib.metadata.Distribution | None = None) -> None:
        """Register ``plugin`` under ``name`` and re-check every plugin; :class:`PluginError` if it is invalid.

        On error the plugin is unregistered again, so the host stays as it was.
        """
        self._add(plugin, name, distribution)
        try:
            self.check()
        except PluginError:
            self.unregister(name)
            raise

    def _add(self, plugin: object, name: str, distribution: importlib.metadata.Distribution | None) -> None:
        try:
            self.manager.register(plugin, name=name)
        except (pluggy.PluginValidationError, ValueError) as exc:
            raise PluginError(f"plugin {name!r}: {exc}") from exc
        self._info[name] = _plugin_info(name, distribution)

    def unregister(self, name: str) -> None:
        """Remove the plugin registered as ``name`` (tests and embedders; the daemon never unloads)."""
        self.manager.unregister(name=name)
        self._info.pop(name, None)
        self.check()

    def check(self) -> None:
        """Verify hook names (``check_pending``) and rebuild the type registries; :class:`PluginError` if invalid."""
        try:
            self.manager.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"{exc} (misspelled hook? known hooks: {', '.join(hook_names())})") from exc
        for hook_name in (*EVENT_HOOKS, *REGISTRATION_HOOKS):
            for impl in self._implementations(hook_name):
                # The host calls implementations one by one (see _call_each), which wrappers do not fit.
                if impl.wrapper or impl.hookwrapper:
                    raise PluginError(f"plugin {impl.plugin_name!r}: {hook_name} cannot be a hook wrapper")
        self._dns_types = self._collect("scaivault_pki_dns_provider_types", DnsProvider)
        self._acme_types = self._collect("scaivault_pki_acme_ca_backends", AcmeCaBackend)

    def _collect(self, hook_name: str, base: type[_Registered]) -> dict[str, tuple[type[_Registered], str]]:
        found: dict[str, tuple[type[_Registered], str]] = {}
        for plugin_name, result in self._call_each(hook_name, {}):
            if not isinstance(result, (list, tuple)):
                raise PluginError(f"plugin {plugin_name!r}: {hook_name} must return a list of classes, got {type(result).__name__}")
            for cls in result:
                check_registered_class(cls, base, f"plugin {plugin_name!r}: {hook_name} returned {cls!r}")
                if cls.type_name in found:
                    other = found[cls.type_name][1]
                    raise PluginError(f"type {cls.type_name!r} is registered by two plugins: {other!r} and {plugin_name!r}")
                found[cls.type_name] = (cls, plugin_name)
        return found

    # -- what plugins registered -----------------------------------------------------------------------

    def plugins(self) -> list[PluginInfo]:
        """The loaded plugins, by name."""
        return [self._info.get(name, PluginInfo(name, None, None)) for name, _ in sorted(self.manager.list_name_plugin())]

    def dns_provider_types(self) -> dict[str, type[DnsProvider]]:
        """Installed DNS provider classes by ``type_name``."""
        return {name: cls for name, (cls, _) in sorted(self._dns_types.items())}

    def dns_provider_plugin(self, type_name: str) -> str:
        """Name of the plugin that registered the DNS provider type ``type_name``."""
        return self._dns_types[type_name][1]

    def acme_ca_backends(self) -> dict[str, type[AcmeCaBackend]]:
        """Installed ACME CA backend classes by ``type_name``."""
        return {name: cls for name, (cls, _) in sorted(self._acme_types.items())}

    # -- calling hooks ---------------------------------------------------------------------------------

    def _implementations(self, hook_name: str) -> list[HookImpl]:
        """The implementations of ``hook_name`` in the order pluggy calls them (last registered first)."""
        return list(reversed(getattr(self.manager.hook, hook_name).get_hookimpls()))

    def _call_each(self, hook_name: str, kwargs: dict[str, Any]) -> Iterator[tuple[str, Any]]:
        """Call a registration hook's implementations one by one, yielding (plugin name, result).

        One by one (not through ``manager.hook``) so an error names the plugin that caused it.
        """
        for impl in self._implementations(hook_name):
            try:
                result = _call(impl, kwargs)
            except Exception as exc:
                raise PluginError(f"plugin {impl.plugin_name!r}: {hook_name} raised {type(exc).__name__}: {exc}") from exc
            yield impl.plugin_name, result

    def fire(self, hook_name: str, **kwargs: Any) -> list[str]:
        """Call an event hook on every plugin; a plugin that raises is logged (with its name) and skipped.

        Returns the names of the plugins that failed. Never raises for a plugin's error: events are
        notifications after the fact, and the issuance or revocation they report is already committed.
        """
        if hook_name not in EVENT_HOOKS:
            raise ValueError(f"{hook_name!r} is not an event hook")
        failed: list[str] = []
        for impl in self._implementations(hook_name):
            try:
                _call(impl, kwargs)
            except Exception as exc:  # a plugin's bug must not break the daemon's operation
                failed.append(impl.plugin_name)
                log.error(
                    "plugin hook failed",
                    exc_info=exc,
                    extra={"plugin": impl.plugin_name, "hook": hook_name, "error": f"{type(exc).__name__}: {exc}"},
                )
        return failed


#: Hooks that register types; called once at start (and after :meth:`PluginHost.register`).
REGISTRATION_HOOKS = ("scaivault_pki_dns_provider_types", "scaivault_pki_acme_ca_backends")

#: Hooks that report something that happened; fired with :meth:`PluginHost.fire`.
EVENT_HOOKS = (
    "scaivault_pki_certificate_issued",
    "scaivault_pki_certificate_renewed",
    "scaivault_pki_certificate_revoked",
    "scaivault_pki_certificate_expiring",
)


def hook_names() -> list[str]:
    """Every hook the daemon specifies (the names in :mod:`scaivault_pki.plugins.spec`)."""
    return sorted(name for name, value in vars(spec).items() if hasattr(value, spec.PROJECT_NAME + "_spec"))


def _call(impl: HookImpl, kwargs: dict[str, Any]) -> Any:
    # As pluggy does: an implementation receives only the arguments it declares.
    return impl.function(**{name: kwargs[name] for name in (*impl.argnames, *impl.kwargnames) if name in kwargs})


def check_registered_class(cls: Any, base: type = DnsProvider, where: str | None = None) -> None:
    """Raise :class:`PluginError` unless ``cls`` is a class the host can use as a ``base`` type.

    A concrete subclass with a valid ``type_name``, a valid draft 2020-12 object schema, and ``secret_fields``
    that are properties of it accepting a secret reference. ``where`` starts the error message.
    """
    where = where or repr(cls)
    if not (inspect.isclass(cls) and issubclass(cls, base)):
        raise PluginError(f"{where}, which is not a subclass of {base.__name__}")
    if inspect.isabstract(cls):
        raise PluginError(f"{where}, which leaves abstract methods unimplemented: {', '.join(sorted(cls.__abstractmethods__))}")
    type_name = getattr(cls, "type_name", None)
    if not isinstance(type_name, str) or not TYPE_NAME.match(type_name):
        raise PluginError(f"{where}, whose type_name {type_name!r} is not [a-z][a-z0-9_]* (at most 64)")
    schema = getattr(cls, "config_schema", None)
    if not isinstance(schema, dict):
        raise PluginError(f"{where}, whose config_schema is not a JSON Schema object")
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise PluginError(f"{where}, whose config_schema is invalid: {exc.message}") from exc
    if schema.get("type") != "object":
        raise PluginError(f"{where}, whose config_schema does not describe an object")
    properties = schema.get("properties", {})
    secret_fields = getattr(cls, "secret_fields", ())
    if not isinstance(secret_fields, tuple) or any(f not in properties for f in secret_fields):
        raise PluginError(f"{where}, whose secret_fields {secret_fields!r} are not all properties of its config_schema")
    for field in secret_fields:
        # The stored config holds references, so the field's schema must accept one (see secret_or_string).
        if not jsonschema.Draft202012Validator(properties[field]).is_valid({"secret": "example/path#key"}):
            raise PluginError(f"{where}, whose secret field {field!r} does not accept a secret reference (use secret_or_string)")


def load_plugins(disabled: Iterable[str] = ()) -> PluginHost:
    """Load every plugin of the entry-point group except those named in ``disabled``, and check them.

    Raises :class:`PluginError` naming the plugin when one cannot be imported or is invalid.
    """
    manager = pluggy.PluginManager(spec.PROJECT_NAME)
    manager.add_hookspecs(spec)
    host = PluginHost(manager)
    disabled = set(disabled)
    seen: set[str] = set()
    for entry_point, distribution in _entry_points():
        seen.add(entry_point.name)
        if entry_point.name in disabled:
            log.info("plugin disabled", extra={"plugin": entry_point.name})
            continue
        if manager.has_plugin(entry_point.name):
            raise PluginError(f"two installed plugins are named {entry_point.name!r} (entry point group {ENTRY_POINT_GROUP})")
        try:
            plugin = entry_point.load()
        except Exception as exc:  # any import-time failure of third-party code
            raise PluginError(f"plugin {entry_point.name!r} ({entry_point.value}) failed to load: {type(exc).__name__}: {exc}") from exc
        host._add(plugin, entry_point.name, distribution)
    for name in sorted(disabled - seen):
        log.warning("disabled_plugins names a plugin that is not installed", extra={"plugin": name})
    host.check()
    return host


def _plugin_info(name: str, distribution: importlib.metadata.Distribution | None) -> PluginInfo:
    if distribution is None:
        return PluginInfo(name, None, None)
    return PluginInfo(name, distribution.metadata["Name"], distribution.version)


def _entry_points() -> Iterator[tuple[importlib.metadata.EntryPoint, importlib.metadata.Distribution]]:
    # Through the distributions (as pluggy does) to know which package provides each plugin.
    seen: set[tuple[str, str]] = set()
    for distribution in importlib.metadata.distributions():
        for entry_point in distribution.entry_points:
            if entry_point.group != ENTRY_POINT_GROUP:
                continue
            # An editable install can appear twice on sys.path; the same entry point twice is one plugin.
            key = (entry_point.name, entry_point.value)
            if key in seen:
                continue
            seen.add(key)
            yield entry_point, distribution
