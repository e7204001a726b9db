"""Plugin system: hook specifications, the plugin API (abstract base classes), the manager and built-ins.

Plugin authors import :data:`hookimpl` from here and the base classes from :mod:`scaivault_pki.plugins.api`.
"""

from scaivault_pki.plugins.spec import hookimpl

__all__ = ["hookimpl"]
