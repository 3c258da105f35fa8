"""`mailbox-server`: run the server (default) or apply migrations."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import Any

from pydantic import ValidationError

from .app import ConfigurationError, create_app, prepare_schema
from .db import Database
from .settings import Settings
from .sqlite_lock import SingleProcessLock


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {}
    if getattr(args, "host", None):
        overrides["MAILBOX_HOST"] = args.host
    if getattr(args, "port", None) is not None:
        overrides["MAILBOX_PORT"] = args.port
    return Settings(**overrides)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options for these settings; the tests' servers use the same."""
    return {
        "host": settings.host,
        "port": settings.port,
        "ws": "websockets-sansio",
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

    app = create_app(settings)
    # Check the schema before uvicorn starts, so a refusal is one clear line.
    asyncio.run(_check_schema(settings))
    uvicorn.run(
        app,
        **uvicorn_options(settings),
        log_level=settings.log_level,
        # Above info nothing is logged per request, but uvicorn would still format
        # each access line's arguments: skip it entirely then.
        access_log=_logs_requests(settings.log_level),
    )


def _logs_requests(level: str) -> bool:
    number = logging.getLevelName(level.upper())
    return not isinstance(number, int) or number <= logging.INFO


async def _check_schema(settings: Settings) -> None:
    # The app takes the SQLite lock again at start-up (that one holds); this early
    # look makes a second process's refusal one clear line instead of a traceback.
    database_file = settings.sqlite_path
    if database_file is not None:
        probe = SingleProcessLock(database_file)
        probe.acquire()
        probe.release()
    database = Database(settings)
    try:
        await prepare_schema(database)
    except OSError as exc:
        raise ConfigurationError(f"cannot reach the database: {exc}") from None
    finally:
        await database.dispose()


async def migrate(settings: Settings) -> None:
    database = Database(settings)
    try:
        await database.upgrade()
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mailbox-server", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    run = commands.add_parser("serve", help="run the server (the default)")
    for p in (parser, run):
        p.add_argument("--host", help="address to bind (default 127.0.0.1, MAILBOX_HOST)")
        p.add_argument("--port", type=int, help="port (default 8000, MAILBOX_PORT)")
    commands.add_parser("migrate", help="bring the database schema up to date")
    check = commands.add_parser(
        "health", help="exit 0 if the server and its database are up (for health checks)"
    )
    check.add_argument("--url", help="default http://127.0.0.1:MAILBOX_PORT/health")
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
        serve(settings)
    except ValidationError as exc:
        for error in exc.errors():
            field = ".".join(str(p) for p in error["loc"])
            print(f"mailbox-server: bad setting {field}: {error['msg']}", file=sys.stderr)
        return 2
    except ConfigurationError as exc:
        print(f"mailbox-server: {exc}", file=sys.stderr)
        return 2
    return 0
