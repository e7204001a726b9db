"""``scaivault-pki``: init, migrate, serve, the ACME challenge listener, and tenant/token administration."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Sequence

import peewee

from . import __version__
from .auth import SCOPES, create_token, hash_token
from .config import Config, ConfigError, load_config
from .hsm import KEK_LABEL, HsmError, ensure_softhsm_token
from .plugins.manager import PluginError, load_plugins
from .schema import migrations
from .schema.db import database, open_database, write_transaction
from .schema.models import ApiToken, Tenant, utcnow
from .services import token_for

DEFAULT_TENANT = "default"


class CliError(Exception):
    """A failure to report on stderr with exit status 1, without a traceback."""


def _emit(args: argparse.Namespace, data: dict, human: str) -> None:
    print(json.dumps(data) if getattr(args, "json", False) else human)


def _open_db(config: Config) -> None:
    open_database(config.resolved_database_url)
    if pending := migrations.pending():
        raise CliError(f"database needs migrating ({', '.join(pending)}): run 'scaivault-pki migrate'")


def cmd_init(args: argparse.Namespace, config: Config) -> None:
    """Create the data dir, the SoftHSM token (embedded default), the database and tenant ``default``.

    Idempotent: a second run creates nothing and prints no new token.
    """
    config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    token_created = False
    if config.uses_softhsm:
        token_created = ensure_softhsm_token(
            config.pkcs11_module,
            str(config.softhsm_conf),
            str(config.softhsm_token_dir),
            config.token_label,
            str(config.resolved_pin_file),
            str(config.so_pin_file),
        )
    # The key-encryption key that seals stored private keys and secrets: made once, here, so workers only ever
    # look it up and two of them can never race to create two. This process never forks, so it may open the token.
    token = token_for(config)
    try:
        token.ensure_aes_key(KEK_LABEL)
    finally:
        token.close()
    open_database(config.resolved_database_url)
    applied = migrations.migrate()
    secret = None
    with write_transaction():
        if not Tenant.select().where(Tenant.name == DEFAULT_TENANT).exists():
            tenant = Tenant.create(name=DEFAULT_TENANT)
            _, secret = create_token(tenant, ["pki:admin", "secrets:read", "secrets:write"], "bootstrap admin token")
    lines = [f"data dir: {config.data_dir}"]
    if token_created:
        lines.append(f"created SoftHSM token {config.token_label!r} (user PIN in {config.resolved_pin_file})")
    if applied:
        lines.append(f"applied migrations: {', '.join(applied)}")
    if secret:
        lines.append(f"admin token for tenant {DEFAULT_TENANT!r} (shown once, keep it safe):\n{secret}")
    else:
        lines.append("already initialised; no new token was made (use 'scaivault-pki token create')")
    _emit(args, {"tenant": DEFAULT_TENANT, "token": secret}, "\n".join(lines))


def cmd_migrate(args: argparse.Namespace, config: Config) -> None:
    open_database(config.resolved_database_url)
    applied = migrations.migrate()
    print(f"applied: {', '.join(applied)}" if applied else "database is up to date")


def cmd_tenant_create(args: argparse.Namespace, config: Config) -> None:
    _open_db(config)
    try:
        with write_transaction():
            tenant = Tenant.create(name=args.name)
    except peewee.IntegrityError:
        raise CliError(f"tenant {args.name!r} already exists") from None
    _emit(args, {"tenant": tenant.name, "id": tenant.id}, f"created tenant {tenant.name} ({tenant.id})")


def cmd_tenant_update(args: argparse.Namespace, config: Config) -> None:
    """Change a tenant's settings; today the four-eyes rule of the CSR workflow (``--allow-self-approval``)."""
    _open_db(config)
    allow = args.allow_self_approval == "true"
    with write_transaction():
        updated = Tenant.update(allow_self_approval=allow).where(Tenant.name == args.name).execute()
    if not updated:
        raise CliError(f"no tenant named {args.name!r}")
    _emit(args, {"tenant": args.name, "allow_self_approval": allow},
          f"tenant {args.name}: allow_self_approval={'true' if allow else 'false'}")


def cmd_token_create(args: argparse.Namespace, config: Config) -> None:
    _open_db(config)
    try:
        tenant = Tenant.get(Tenant.name == args.tenant)
    except peewee.DoesNotExist:
        raise CliError(f"no tenant named {args.tenant!r}") from None
    try:
        with write_transaction():
            row, secret = create_token(tenant, args.scope, args.description or "")
    except ValueError as exc:
        raise CliError(str(exc)) from None
    _emit(
        args,
        {"tenant": tenant.name, "token": secret, "id": row.id, "scopes": row.scopes.split()},
        f"token {row.id} for tenant {tenant.name} with scopes {row.scopes} (shown once):\n{secret}",
    )


def cmd_token_revoke(args: argparse.Namespace, config: Config) -> None:
    _open_db(config)
    ref = args.token
    where = ApiToken.token_hash == hash_token(ref) if ref.startswith("svp_") else ApiToken.id == ref
    with write_transaction():
        updated = ApiToken.update(revoked_at=utcnow()).where(where & ApiToken.revoked_at.is_null()).execute()
        exists = ApiToken.select().where(where).exists()
    if not exists:
        raise CliError("no such token")
    _emit(args, {"revoked": bool(updated)}, "token revoked" if updated else "token was already revoked")


def cmd_token_list(args: argparse.Namespace, config: Config) -> None:
    _open_db(config)
    rows = ApiToken.select(ApiToken, Tenant).join(Tenant).where(Tenant.name == args.tenant).order_by(ApiToken.created_at)
    items = [
        {"id": r.id, "scopes": r.scopes.split(), "description": r.description,
         "created_at": r.created_at.isoformat() + "Z", "revoked": r.revoked_at is not None}
        for r in rows
    ]
    _emit(args, {"items": items}, "\n".join(f"{i['id']}  {' '.join(i['scopes'])}  {'REVOKED' if i['revoked'] else ''}" for i in items) or "no tokens")


def cmd_serve(args: argparse.Namespace, config: Config) -> None:
    from .challenge_listener import ChallengeListenerError
    from .server import serve

    _open_db(config)  # fail early on an unmigrated database; the master closes it before forking workers
    load_plugins(config.disabled_plugins)  # and on a broken plugin, once, instead of in every worker's boot
    database.close()
    try:
        serve(config, workers=args.workers, listen=args.listen, config_path=args.config)
    except ChallengeListenerError as exc:
        raise CliError(str(exc)) from None


def cmd_challenge_listener(args: argparse.Namespace, config: Config) -> None:
    """The ACME http-01 / tls-alpn-01 listeners in the foreground (``serve`` runs this as its child)."""
    from .challenge_listener import ChallengeListenerError, run_challenge_listener

    if not (config.acme_http01_listen or config.acme_tls_alpn01_listen):
        raise CliError("nothing to listen on: set acme_http01_listen and/or acme_tls_alpn01_listen")
    _open_db(config)  # fail early on an unmigrated database; each connection then opens its own
    database.close()
    try:
        run_challenge_listener(config, exit_with_parent=args.exit_with_parent, ready_fd=args.ready_fd)
    except ChallengeListenerError as exc:
        raise CliError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scaivault-pki", description="HSM-backed PKI daemon")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--config", help="TOML config file (default $SCAIVAULT_PKI_DATA_DIR/config.toml)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("init", help="create data dir, SoftHSM token, database and the default tenant")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("migrate", help="apply pending database migrations")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("serve", help="run the API under gunicorn (sync workers)")
    p.add_argument("--workers", type=int, help="override the configured worker count")
    p.add_argument("--listen", help="override the configured HOST:PORT")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("challenge-listener",
                       help="serve ACME http-01/tls-alpn-01 challenges on acme_http01_listen/acme_tls_alpn01_listen")
    p.add_argument("--exit-with-parent", action="store_true",
                   help="also stop when the process that started this one exits (used by serve)")
    p.add_argument("--ready-fd", type=int, metavar="FD",
                   help="write 'ready' to this inherited file descriptor once listening (used by serve)")
    p.set_defaults(func=cmd_challenge_listener)

    tenant = sub.add_parser("tenant", help="tenants").add_subparsers(dest="tenant_command", required=True)
    p = tenant.add_parser("create")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_tenant_create)
    p = tenant.add_parser("update", help="change a tenant's settings")
    p.add_argument("name")
    p.add_argument("--allow-self-approval", choices=("true", "false"), required=True,
                   help="may the token that requested a CSR also approve it (default false: four eyes)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_tenant_update)

    token = sub.add_parser("token", help="API tokens").add_subparsers(dest="token_command", required=True)
    p = token.add_parser("create")
    p.add_argument("--tenant", default=DEFAULT_TENANT)
    p.add_argument("--scope", nargs="+", required=True, choices=SCOPES, metavar="SCOPE", help=" ".join(SCOPES))
    p.add_argument("--description")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_token_create)
    p = token.add_parser("revoke")
    p.add_argument("token", help="token id, or the token itself")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_token_revoke)
    p = token.add_parser("list")
    p.add_argument("--tenant", default=DEFAULT_TENANT)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_token_list)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args.config, os.environ)
        args.func(args, config)
    except (ConfigError, CliError, HsmError, PluginError) as exc:
        print(f"scaivault-pki: {exc}", file=sys.stderr)
        return 1
    except peewee.OperationalError as exc:
        print(f"scaivault-pki: database unavailable: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
