"""ERP-integrasjon: the application factory and the command line.

python app.py run [--demo]      serve (demo: SQLite + the Tripletex simulator in-process)
python app.py migrate           apply database migrations
python app.py create-user       add a user (prompts for the password)
python app.py rotate-keys       re-encrypt the stored system keys under the newest key
python app.py backup DEST       copy the SQLite database to DEST while the app runs
python app.py restore SRC       replace the SQLite database with the backup SRC (app stopped)
python app.py import-saft FILE --integration N   import a SAF-T Financial file
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys
from pathlib import Path

from litestar import Litestar
from litestar.exceptions import NotFoundException
from litestar.logging.config import LoggingConfig
from litestar.types import ASGIApp
from litestar_htmx import HTMXPlugin

from routes import all_routes
from routes.api import ApiError, openapi_config
from routes.change_events import QUIET_ANSWERED_CALLBACKS
from services.crypto import KeyVault
from services.db import create_engine, create_session_factory, migrate, open_session
from services.logging_setup import configure_logging, install_log_context, log_uncaught
from services.metrics import Metrics
from services.runtime import private_files, secure_data_dir, tune_gc
from services.settings import Settings, SettingsError
from web.dependencies import LoginRequired
from web.plugins import DemoPlugin, Foundation, SyncPlugin, WebPlugin

log = logging.getLogger("erp")


def create_app(settings: Settings) -> Litestar:
    install_log_context()  # redaction and request ids; handlers stay as the caller set them
    logging.getLogger("uvicorn.access").addFilter(QUIET_ANSWERED_CALLBACKS)
    engine = create_engine(settings.database_url)
    base = Foundation(
        settings=settings,
        engine=engine,
        session_factory=create_session_factory(engine),
        vault=KeyVault(settings.encryption_keys),
        metrics=Metrics(),  # one registry per app instance
    )
    web = WebPlugin(base)
    plugins = [HTMXPlugin(), web, SyncPlugin(base)]
    if settings.demo:
        plugins.append(DemoPlugin(base))
    app = Litestar(
        route_handlers=all_routes(),
        plugins=plugins,
        # The API's schema only (/api/v1/schema): the HTML pages are no API.
        openapi_config=openapi_config(),
        include_in_schema=False,
        # Logging is ours (services/logging_setup.py); Litestar only logs its exceptions.
        logging_config=LoggingConfig(
            configure_root_logger=False,
            # Through our root handler (text or JSON, request id), not a handler of its own.
            loggers={"litestar": {"level": "INFO", "propagate": True}},
            log_exceptions="always",
            # The client's doing: uvicorn's access line is the one line each of these needs.
            disable_stack_trace={LoginRequired, NotFoundException, ApiError, 400, 403, 404, 405},
            exception_logging_handler=log_uncaught,  # a client's hang-up: one line, no traceback
        ),
        debug=False,
    )
    app.asgi_handler = web.wrap(app.asgi_handler)
    return app


def build_asgi(settings: Settings) -> ASGIApp:
    """The served application: in demo mode, with the simulators beside it."""
    app = create_app(settings)
    if not settings.demo:
        return app
    from web.plugins import with_simulator

    return with_simulator(app)


def main(argv: list[str] | None = None) -> int:
    private_files()  # before anything is created: database, WAL, secrets, backups
    parser = argparse.ArgumentParser(prog="app.py", description="ERP-integrasjon")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="migrate and serve")
    run.add_argument("--demo", action="store_true", help="demo office and Tripletex simulator")
    commands.add_parser("migrate", help="apply database migrations")
    user = commands.add_parser("create-user", help="add a user to an office")
    user.add_argument("--email", required=True)
    user.add_argument("--office", required=True, help="office name (created if new)")
    user.add_argument(
        "--role",
        choices=("administrator", "regnskapsforer", "lesetilgang"),
        default="administrator",
        help="what the user may do (default: administrator)",
    )
    signin = commands.add_parser(
        "signin-settings", help="change an office's sign-in rules (Innstillinger → Pålogging)"
    )
    signin.add_argument("--office", required=True, help="office name")
    signin.add_argument(
        "--allow-passwords",
        action="store_true",
        help="stop requiring single sign-on: the office's passwords work again",
    )
    rotate = commands.add_parser(
        "rotate-keys", help="re-encrypt the stored system keys under the newest ENCRYPTION_KEY"
    )
    rotate.add_argument("--batch-size", type=int, default=100, help="keys per transaction")
    for name, path, what in (
        ("backup", "DEST", "copy the SQLite database to the new file DEST while the app runs"),
        ("restore", "SRC", "replace the SQLite database with the backup SRC (app stopped)"),
    ):
        command = commands.add_parser(name, help=what)
        command.add_argument("path", metavar=path, type=Path)
        command.add_argument(
            "--force", action="store_true", help="replace an existing file / database with data"
        )
    saft = commands.add_parser(
        "import-saft", help="import a SAF-T Financial file into a SAF-T integration"
    )
    saft.add_argument("path", metavar="FILE", type=Path)
    saft.add_argument("--integration", type=int, required=True, help="the integration's id")
    args = parser.parse_args(argv)
    if args.command == "rotate-keys" and args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    if args.command == "signin-settings" and not args.allow_passwords:
        parser.error("say what to change: --allow-passwords")
    configure_logging()
    try:
        settings = Settings.from_env(demo=True if getattr(args, "demo", False) else None)
    except SettingsError as exc:
        print(f"Configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format)
    secure_data_dir(settings.data_dir, settings.database_url)
    if args.command in ("backup", "restore"):
        # Not migrated first: a backup copies the database as it is, and a restore migrates
        # what it restored.
        return _backup_or_restore(settings, args.command, args.path, args.force)
    migrate(settings.database_url)
    if args.command == "run":
        import uvicorn

        if settings.demo:
            print(f"Demo: http://{settings.host}:{settings.port}  (demo@example.no / demo)")
            from services.demo import simulator_root

            print(f"Tripletex simulator: {simulator_root(settings)}/v2")
            print(f"PowerOffice Go simulator: {simulator_root(settings, 'poweroffice')}/v2")
        asgi = build_asgi(settings)
        tune_gc()
        uvicorn.run(
            asgi,
            host=settings.host,
            port=settings.port,
            log_config=None,  # our root logging, with secrets redacted
            proxy_headers=True,
        )
    elif args.command == "create-user":
        return asyncio.run(_create_user(settings, args.email, args.office, args.role))
    elif args.command == "signin-settings":
        return asyncio.run(_allow_passwords(settings, args.office))
    elif args.command == "rotate-keys":
        return asyncio.run(_rotate_keys(settings, args.batch_size))
    elif args.command == "import-saft":
        if not args.path.is_file():
            print(f"Not imported: no file at {args.path}", file=sys.stderr)
            return 1
        return asyncio.run(_import_saft(settings, args.path, args.integration))
    return 0


def _backup_or_restore(settings: Settings, command: str, path: Path, force: bool) -> int:
    from services import backup

    run = backup.backup if command == "backup" else backup.restore
    try:
        print(run(settings.database_url, path, force=force))
    except backup.BackupError as exc:
        print(f"{command.capitalize()} refused: {exc}", file=sys.stderr)
        return 1
    return 0


async def _create_user(settings: Settings, email: str, office: str, role: str) -> int:
    from models.office import Role
    from services.auth import create_user
    from services.passwords import MIN_LENGTH

    if sys.stdin.isatty():
        password = getpass.getpass(f"Password (at least {MIN_LENGTH} characters): ")
    else:  # piped in by a script or a container entrypoint
        password = sys.stdin.readline().rstrip("\n")
    engine = create_engine(settings.database_url)
    try:
        async with open_session(create_session_factory(engine)) as db:
            await create_user(
                db, email=email, password=password, office_name=office, role=Role(role)
            )
    except ValueError as exc:
        print(f"Not created: {exc}", file=sys.stderr)
        return 1
    finally:
        await engine.dispose()
    print(f"Created {email} in {office} as {role}")
    if await _requires_sso(settings, office):
        print(
            f"{office} requires single sign-on, so this password does not sign in yet: "
            f"python app.py signin-settings --allow-passwords --office {office!r}"
        )
    return 0


async def _requires_sso(settings: Settings, office: str) -> bool:
    from sqlmodel import select

    from models import Office
    from models.office import SigninSettings

    engine = create_engine(settings.database_url)
    try:
        async with create_session_factory(engine)() as db:
            required = await db.exec(
                select(SigninSettings.sso_required)
                .join(Office, Office.id == SigninSettings.office_id)  # type: ignore[arg-type]
                .where(Office.name == office)
            )
            return bool(required.first())
    finally:
        await engine.dispose()


async def _allow_passwords(settings: Settings, office: str) -> int:
    from services import signin_settings

    engine = create_engine(settings.database_url)
    try:
        async with open_session(create_session_factory(engine)) as db:
            changed = await signin_settings.allow_passwords(db, office)
    except ValueError as exc:
        print(f"Not changed: {exc}", file=sys.stderr)
        return 1
    finally:
        await engine.dispose()
    print(
        f"{office} no longer requires single sign-on: passwords work again."
        if changed
        else f"{office} did not require single sign-on: nothing changed."
    )
    return 0


async def _rotate_keys(settings: Settings, batch_size: int) -> int:
    from services.key_rotation import KeyRotationError, rotate_keys

    engine = create_engine(settings.database_url)
    try:
        vault = KeyVault(settings.encryption_keys)
        count = await rotate_keys(create_session_factory(engine), vault, batch_size=batch_size)
    except KeyRotationError as exc:  # names integration ids, never a key
        print(f"Key rotation stopped: {exc}", file=sys.stderr)
        return 1
    finally:
        await engine.dispose()
    print(f"Re-encrypted {count} stored system keys under the newest ENCRYPTION_KEY.")
    return 0


async def _import_saft(settings: Settings, path: Path, integration_id: int) -> int:
    """Import a file in place (it is only read). Prints the result as the app shows it;
    exit status 0 when imported or unchanged, 1 when refused or failed."""
    from models import Integration
    from services import integrations as integration_service
    from services.saft import history, importer

    engine = create_engine(settings.database_url)
    factory = create_session_factory(engine)
    try:
        async with factory() as db:
            integration = await db.get(Integration, integration_id)
        if integration is None or not integration_service.takes_files(integration):
            print(
                f"Not imported: integration {integration_id} takes no SAF-T files", file=sys.stderr
            )
            return 1
        row = await importer.begin(
            factory, integration, file_name=path.name, source=importer.Source.COMMAND
        )
        row = await importer.run(factory, row.id or 0, path)
        async with factory() as db:
            findings = await history.findings_of(db, row.id or 0)
    finally:
        await engine.dispose()
    print(f"{history.status_label(row)}: {row.file_name} (import {row.id})")
    if row.client_id is not None:
        print(
            f"{row.company_name} ({row.org_number}), {history.period_label(row)}: "
            f"{row.account_count} kontoer, {row.transaction_count} bilag, "
            f"{row.line_count} posteringslinjer, klient {row.client_id}"
        )
    for line in [*history.problems_of(row), *(f.message for f in findings)]:
        print(f"  - {line}")
    return 0 if row.status in ("imported", "unchanged") else 1


if __name__ == "__main__":
    sys.exit(main())
