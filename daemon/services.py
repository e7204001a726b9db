"""What the HTTP layer is wired over: the config, the database and this process's HSM token."""

from __future__ import annotations

from dataclasses import dataclass

from .config import Config
from .hsm import Envelope, Token
from .plugins.manager import PluginHost, load_plugins
from .schema.db import open_database


@dataclass
class Services:
    config: Config
    hsm: Token
    envelope: Envelope  # seals stored private keys under the HSM-held key-encryption key
    plugins: PluginHost  # loaded and checked plugins (entry points minus config.disabled_plugins)


def token_for(config: Config) -> Token:
    """The configured token, not yet opened."""
    return Token(
        config.pkcs11_module,
        config.token_label,
        str(config.resolved_pin_file),
        softhsm_conf=str(config.softhsm_conf) if config.softhsm_conf else None,
    )


def build_services(config: Config) -> Services:
    """Connect the database and prepare (not open) the token.

    The token opens on first use in the process that uses it; under gunicorn that is a worker, after fork.
    """
    open_database(config.resolved_database_url)
    token = token_for(config)
    return Services(config=config, hsm=token, envelope=Envelope(token), plugins=load_plugins(config.disabled_plugins))
