"""The daemon's one typed configuration object.

Sources, later ones winning: built-in defaults, the TOML file (``--config``, default
``$SCAIVAULT_PKI_DATA_DIR/config.toml``), then ``SCAIVAULT_PKI_*`` environment variables. Secrets (the HSM
user PIN) never come from here directly: the config names a file, and a systemd credential named ``hsm-pin``
wins over it when the daemon runs under systemd.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .durations import parse_duration

ENV_PREFIX = "SCAIVAULT_PKI_"
# Settings that hold a duration ("24h", "7d", ...), checked at load time.
DURATION_SETTINGS = ("crl_lifetime", "root_crl_lifetime", "crl_expired_grace")
# Optional HOST:PORT settings; an empty value (e.g. from the environment) means unset.
OPTIONAL_ADDRESS_SETTINGS = ("acme_http01_listen", "acme_tls_alpn01_listen")
DEFAULT_SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"


class ConfigError(Exception):
    """The configuration file or environment holds something the daemon cannot use."""


def default_data_dir(environ: Mapping[str, str]) -> Path:
    """Where state lives when nothing says otherwise.

    systemd's ``StateDirectory=`` hands us ``$STATE_DIRECTORY``; otherwise the XDG data home.
    """
    if environ.get("STATE_DIRECTORY"):
        return Path(environ["STATE_DIRECTORY"].split(":")[0])
    xdg = environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "scaivault-pki"


@dataclass(frozen=True)
class Config:
    """Everything the daemon reads at start. Paths are absolute once loaded."""

    data_dir: Path
    pkcs11_module: str = DEFAULT_SOFTHSM_MODULE
    token_label: str = "scaivault-pki"
    pin_file: Path | None = None
    database_url: str | None = None
    listen: str = "127.0.0.1:8200"
    public_base_url: str = "http://127.0.0.1:8200"
    workers: int = 2
    log_level: str = "info"
    max_body_bytes: int = 1024 * 1024
    disabled_plugins: tuple[str, ...] = field(default_factory=tuple)
    # CRL validity (thisUpdate to nextUpdate): issuing CAs, and roots (whose CRLs change rarely). Durations.
    crl_lifetime: str = "24h"
    root_crl_lifetime: str = "7d"
    # How long a revoked certificate stays on CRLs after it expired (or was revoked, if later). Duration.
    crl_expired_grace: str = "7d"
    # ACME challenge listeners (HOST:PORT), run by `serve` as a child process (or `challenge-listener`): a plain
    # HTTP port serving only /.well-known/acme-challenge/ (e.g. 0.0.0.0:80), and the tls-alpn-01 responder (e.g.
    # 0.0.0.0:443). None: not run (http-01 answers come from the API listener itself).
    acme_http01_listen: str | None = None
    acme_tls_alpn01_listen: str | None = None

    # Derived locations, all under data_dir unless configured.
    @property
    def resolved_pin_file(self) -> Path:
        creds = os.environ.get("CREDENTIALS_DIRECTORY")
        if creds and (Path(creds) / "hsm-pin").exists():
            return Path(creds) / "hsm-pin"
        return self.pin_file or self.data_dir / "hsm-pin"

    @property
    def so_pin_file(self) -> Path:
        return self.data_dir / "hsm-so-pin"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'scaivault-pki.db'}"

    @property
    def uses_softhsm(self) -> bool:
        return "softhsm" in Path(self.pkcs11_module).name.lower()

    @property
    def softhsm_conf(self) -> Path | None:
        """SoftHSM's own config, kept under the data dir so the token lives there too."""
        return self.data_dir / "softhsm2.conf" if self.uses_softhsm else None

    @property
    def softhsm_token_dir(self) -> Path:
        return self.data_dir / "tokens"


_FIELD_TYPES = {f.name: f.type for f in dataclasses.fields(Config)}


def parse_host_port(value: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[::1]:443`` for IPv6 literals) into the host and the port; ``ValueError`` if not one.

    The host is what ``socket.bind`` takes: an address, a name, or empty for every interface.
    """
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"must be HOST:PORT with a port from 1 to 65535, got {value!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"an IPv6 address needs brackets ([::]:443), got {value!r}")
    return host, int(port_text)


def _coerce(name: str, value: Any) -> Any:
    kind = _FIELD_TYPES[name]
    try:
        if name == "data_dir":
            return Path(value).expanduser().resolve()
        if name == "pin_file":
            return Path(value).expanduser().resolve() if value else None
        if name in OPTIONAL_ADDRESS_SETTINGS and value == "":
            return None
        if kind == "int":
            if isinstance(value, bool):
                raise ValueError
            return int(value)
        if name == "disabled_plugins":
            if isinstance(value, str):
                return tuple(p.strip() for p in value.split(",") if p.strip())
            return tuple(str(p) for p in value)
        if not isinstance(value, str):
            raise ValueError
        return value
    except (TypeError, ValueError):
        raise ConfigError(f"configuration value {name!r} is not a valid {kind}: {value!r}") from None


def load_config(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Build the config from defaults, the TOML file and ``SCAIVAULT_PKI_*`` variables.

    A missing file is fine when it is the default location (a fresh install); a missing file named explicitly
    is an error.
    """
    env = dict(os.environ if environ is None else environ)
    values: dict[str, Any] = {}
    env_values = {
        name: env[ENV_PREFIX + name.upper()] for name in _FIELD_TYPES if ENV_PREFIX + name.upper() in env
    }
    data_dir = env_values.get("data_dir") or str(default_data_dir(env))
    config_path = Path(path) if path else Path(env.get(ENV_PREFIX + "CONFIG") or Path(data_dir) / "config.toml")
    if config_path.exists():
        try:
            with open(config_path, "rb") as fh:
                file_values = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{config_path}: {exc}") from None
        unknown = sorted(set(file_values) - set(_FIELD_TYPES))
        if unknown:
            raise ConfigError(f"{config_path}: unknown setting(s) {', '.join(unknown)}")
        values.update(file_values)
    elif path:
        raise ConfigError(f"configuration file {config_path} does not exist")
    values.update(env_values)
    values.setdefault("data_dir", data_dir)
    coerced = {name: _coerce(name, value) for name, value in values.items()}
    config = Config(**coerced)
    if config.workers < 1:
        raise ConfigError("workers must be at least 1")
    if ":" not in config.listen and not config.listen.startswith("unix:"):
        raise ConfigError(f"listen must be HOST:PORT or unix:PATH, got {config.listen!r}")
    for name in DURATION_SETTINGS:
        try:
            parse_duration(getattr(config, name))
        except ValueError as exc:
            raise ConfigError(f"{name}: {exc}") from None
    _check_challenge_listeners(config)
    return config


def _check_challenge_listeners(config: Config) -> None:
    """Each challenge listener is a valid HOST:PORT, and no two listeners share an address."""
    addresses: dict[tuple[str, int], str] = {}
    if not config.listen.startswith("unix:"):
        try:
            addresses[parse_host_port(config.listen)] = "listen"
        except ValueError:
            pass  # the API listener is gunicorn's to parse (it also takes forms we do not)
    for name in OPTIONAL_ADDRESS_SETTINGS:
        value = getattr(config, name)
        if value is None:
            continue
        try:
            address = parse_host_port(value)
        except ValueError as exc:
            raise ConfigError(f"{name}: {exc}") from None
        if address in addresses:
            raise ConfigError(f"{name} and {addresses[address]} are the same address {value!r}")
        addresses[address] = name
