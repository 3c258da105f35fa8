"""`mailbox-server`: run the server (default) or apply migrations."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from pydantic import ValidationError

from .app import ConfigurationError, create_app, prepare_schema
from .db import Database
from .settings import Settings
from .ws_protocol import MailboxWebSocketProtocol


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {}
    if getattr(args, "host", None):
        overrides["MAILBOX_HOST"] = args.host
    if getattr(args, "port", None) is not None:
        overrides["MAILBOX_PORT"] = args.port
    return Settings(**overrides)


def serve(settings: Settings) -> None:
    import uvicorn

    app = create_app(settings)
    # Check the schema before uvicorn starts, so a refusal is one clear line.
    asyncio.run(_check_schema(settings))
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        ws=MailboxWebSocketProtocol,
        ws_max_size=settings.max_ws_frame_bytes,
        ws_ping_interval=settings.ws_ping_interval_seconds,
        ws_ping_timeout=settings.ws_ping_interval_seconds,
        ws_per_message_deflate=False,
        proxy_headers=settings.trust_forwarded_for,
        # Above info nothing is logged per request, but uvicorn would still format
        # each access line's arguments: skip it entirely then.
        access_log=_logs_requests(settings.log_level),
        server_header=False,
    )


def _logs_requests(level: str) -> bool:
    number = logging.getLevelName(level.upper())
    return not isinstance(number, int) or number <= logging.INFO


async def _check_schema(settings: Settings) -> None:
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mailbox-server", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    run = commands.add_parser("serve", help="run the server (the default)")
    for p in (parser, run):
        p.add_argument("--host", help="address to bind (default 127.0.0.1, MAILBOX_HOST)")
        p.add_argument("--port", type=int, help="port (default 8000, MAILBOX_PORT)")
    commands.add_parser("migrate", help="bring the database schema up to date")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = _settings(args)
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
