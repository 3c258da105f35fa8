"""`mailbox-server`: run the server (default), apply migrations, or re-encrypt stored data."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from typing import Any

from pydantic import ValidationError

from .app import ConfigurationError, build_cipher, create_app, prepare_database
from .db import Database
from .key_registry import short
from .reencrypt import DEFAULT_BATCH_SIZE, Progress, reencrypt
from .settings import Settings
from .sqlite_lock import SingleProcessLock
from .ws_protocol import MailboxWebSocketProtocol


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {}
    if getattr(args, "host", None):
        overrides["MAILBOX_HOST"] = args.host
    if getattr(args, "port", None) is not None:
        overrides["MAILBOX_PORT"] = args.port
    if getattr(args, "workers", None) is not None:
        overrides["MAILBOX_WORKERS"] = args.workers
    return Settings(**overrides)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options for these settings; the tests' servers use the same."""
    return {
        "host": settings.host,
        "port": settings.port,
        # uvicorn's websockets-sansio protocol, closing sockets that never read
        # (server/ws_protocol.py).
        "ws": MailboxWebSocketProtocol,
        "ws_max_size": settings.max_ws_frame_bytes,
        "ws_ping_interval": settings.ws_ping_interval_seconds,
        "ws_ping_timeout": settings.ws_ping_interval_seconds,
        "ws_per_message_deflate": False,
        # X-Forwarded-For is read by `create_app`, from MAILBOX_TRUSTED_PROXIES only;
        # uvicorn's own default would trust it from 127.0.0.1 (FORWARDED_ALLOW_IPS).
        "proxy_headers": False,
        "server_header": False,
    }


def serve(settings: Settings) -> None:
    import uvicorn

    if settings.workers > 1 and settings.is_sqlite:
        raise ConfigurationError(
            "--workers needs PostgreSQL: SQLite serves one process "
            "(DATABASE_URL=postgresql+asyncpg://…)"
        )
    # Several workers are separate processes that each build the app from the same
    # environment (contract §10 ties them together through PostgreSQL).
    target: object = (
        create_app(settings) if settings.workers == 1 else "server.app:app_from_environment"
    )
    # Check the schema and the keys before uvicorn starts, so a refusal is one clear line.
    asyncio.run(_check_database(settings))
    uvicorn.run(
        target,  # type: ignore[arg-type]
        factory=settings.workers > 1,
        workers=settings.workers,
        **uvicorn_options(settings),
        log_level=settings.log_level,
        # Above info nothing is logged per request, but uvicorn would still format
        # each access line's arguments: skip it entirely then.
        access_log=_logs_requests(settings.log_level),
    )


def _logs_requests(level: str) -> bool:
    number = logging.getLevelName(level.upper())
    return not isinstance(number, int) or number <= logging.INFO


async def _check_database(settings: Settings) -> None:
    # The app takes the SQLite lock again at start-up (that one holds); this early
    # look makes a second process's refusal one clear line instead of a traceback.
    database_file = settings.sqlite_path
    if database_file is not None:
        probe = SingleProcessLock(database_file)
        probe.acquire()
        probe.release()
    cipher = build_cipher(settings)
    database = Database(settings)
    try:
        await prepare_database(database, cipher)
    except OSError as exc:
        raise ConfigurationError(f"cannot reach the database: {exc}") from None
    finally:
        await database.dispose()


async def migrate(settings: Settings) -> None:
    # Migrations that convert stored data (0003) encrypt and hash with the keys.
    cipher = build_cipher(settings)
    database = Database(settings)
    try:
        await database.upgrade(cipher)
    finally:
        await database.dispose()


def health(settings: Settings, url: str | None) -> int:
    """Exit 0 when the server answers and reaches its database, 1 otherwise (one line
    either way): for container health checks and service managers."""
    import httpx

    url = url or f"http://127.0.0.1:{settings.port}/health"
    try:
        response = httpx.get(url, timeout=3)
        status = response.json().get("status") if response.is_success else None
    except (httpx.HTTPError, ValueError) as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1
    if status != "ok":
        print(f"unhealthy: {url} answered {response.status_code} {response.text[:200]}")
        return 1
    print(f"healthy: {url}")
    return 0


class ProgressLines:
    """One line per table at most every second, and when a table is done."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self._last = 0.0

    def __call__(self, state: Progress) -> None:
        now = time.monotonic()
        if now - self._last < self.interval and state.rows_done < state.rows_total:
            return
        self._last = now
        print(
            f"reencrypt: {state.table}: {state.rows_done:,} of {state.rows_total:,} rows, "
            f"{state.rewritten:,} values rewritten, {state.current:,} already under the first key",
            file=sys.stderr,
            flush=True,
        )


async def reencrypt_database(settings: Settings, batch_size: int) -> int:
    cipher = build_cipher(settings)
    database = Database(settings)
    try:
        await prepare_database(database, cipher)
        totals = await reencrypt(database, cipher, batch_size=batch_size, progress=ProgressLines())
    finally:
        await database.dispose()
    if totals.unreadable:
        shown = ", ".join(f"{table} {key}" for table, key in totals.unreadable[:10])
        print(
            f"reencrypt: {len(totals.unreadable)} values no configured key decrypts ({shown}); "
            "they were left as they are and no key may be removed yet. Add the key that "
            "wrote them and run `mailbox-server reencrypt` again.",
            file=sys.stderr,
        )
        return 1
    retired = ", ".join(short(f) for f in cipher.fingerprints[1:]) or "none"
    print(
        f"reencrypt: done: {totals.rewritten:,} values rewritten under the first key "
        f"({short(cipher.primary_fingerprint)}), {totals.current:,} already under it. "
        f"The other keys ({retired}) can now be removed from MAILBOX_ENCRYPTION_KEY.",
        file=sys.stderr,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mailbox-server", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    run = commands.add_parser("serve", help="run the server (the default)")
    for p in (parser, run):
        p.add_argument("--host", help="address to bind (default 127.0.0.1, MAILBOX_HOST)")
        p.add_argument("--port", type=int, help="port (default 8000, MAILBOX_PORT)")
        p.add_argument(
            "--workers",
            type=int,
            help="server processes on this port (default 1, MAILBOX_WORKERS; PostgreSQL only)",
        )
    commands.add_parser("migrate", help="bring the database schema up to date")
    check = commands.add_parser(
        "health", help="exit 0 if the server and its database are up (for health checks)"
    )
    check.add_argument("--url", help="default http://127.0.0.1:MAILBOX_PORT/health")
    rewrite = commands.add_parser(
        "reencrypt",
        help="rewrite every encrypted value under the first key of MAILBOX_ENCRYPTION_KEY "
        "(resumable; the server may keep running), after which the others can be removed",
    )
    rewrite.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help=f"rows per transaction (default {DEFAULT_BATCH_SIZE})",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = _settings(args)
        if args.command == "health":
            return health(settings, args.url)
        if args.command == "migrate":
            asyncio.run(migrate(settings))
            print("database schema is up to date", file=sys.stderr)
            return 0
        if args.command == "reencrypt":
            if args.batch_size < 1:
                parser.error("--batch-size must be at least 1")
            return asyncio.run(reencrypt_database(settings, args.batch_size))
        serve(settings)
    except ValidationError as exc:
        for error in exc.errors():
            field = ".".join(str(p) for p in error["loc"])
            print(f"mailbox-server: bad setting {field}: {error['msg']}", file=sys.stderr)
        return 2
    except ConfigurationError as exc:
        print(f"mailbox-server: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.command != "reencrypt":
            raise
        print(
            "reencrypt: interrupted; what was done stays done: run it again to finish",
            file=sys.stderr,
        )
        return 130
    return 0
