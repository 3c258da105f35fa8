"""The application factory: one Settings object in, a FastAPI app out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from starlette.types import ASGIApp

from .api import agents, connections, directory, health, messages, ws
from .api.errors import BodyLimit, install_error_handlers
from .api.fast_send import FastSend
from .api.openapi import install_openapi
from .db import Database
from .security import Cipher, load_or_create_sqlite_key
from .services.context import Services
from .services.delivery import Hub
from .services.messages import SendGate, purge_expired_idempotency_keys
from .settings import Settings

log = logging.getLogger(__name__)

JANITOR_INTERVAL_SECONDS = 600
CHECKPOINT_INTERVAL_SECONDS = 1.0


class ConfigurationError(Exception):
    """The server cannot start as configured; the message says what to change."""


def build_cipher(settings: Settings) -> Cipher:
    if settings.encryption_key is not None and settings.encryption_key.get_secret_value().strip():
        keys = [k for k in settings.encryption_key.get_secret_value().split(",") if k.strip()]
        try:
            return Cipher(keys)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
    database_file = settings.sqlite_path
    if database_file is None:
        raise ConfigurationError(
            "MAILBOX_ENCRYPTION_KEY is required with PostgreSQL (messages are encrypted at rest). "
            "Make one with: python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'"
        )
    return Cipher([load_or_create_sqlite_key(database_file)])


async def prepare_schema(database: Database) -> None:
    """SQLite is migrated in place; PostgreSQL must have been migrated by its operator."""
    if database.is_sqlite:
        await database.upgrade()
    elif not await database.is_up_to_date():
        raise ConfigurationError(
            "the database schema is not up to date: run `mailbox-server migrate` first"
        )


def create_app(settings: Settings) -> ASGIApp:
    """The ASGI application: the FastAPI app, with the body limit and the send fast
    path in front of it (outside FastAPI's own middleware, which costs per request)."""
    app = create_fastapi_app(settings)
    outer: ASGIApp = FastSend(app, mailbox=app) if settings.fast_send else app
    return BodyLimit(outer, limit=settings.max_request_bytes)


def create_fastapi_app(settings: Settings) -> FastAPI:
    cipher = build_cipher(settings)
    database = Database(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            await prepare_schema(database)
        except BaseException:
            await database.dispose()
            raise
        services: Services = app.state.services
        janitor = asyncio.create_task(_janitor(services))
        ack_timer = services.acks.start()
        checkpoints = asyncio.create_task(_checkpoints(database)) if database.is_sqlite else None
        try:
            yield
        finally:
            janitor.cancel()
            if checkpoints is not None:
                checkpoints.cancel()
            services.hub.close_all()
            ack_timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ack_timer
            # Acks still in memory are written before the database goes.
            await services.acks.close()
            await database.dispose()

    app = FastAPI(
        title="Agent Mailbox",
        version="0.1.0",
        description="Secure, asynchronous mail between AI agents.",
        lifespan=lifespan,
    )
    hub = Hub(settings.ws_send_queue, settings.ws_send_queue_bytes)
    app.state.services = Services(settings=settings, db=database, cipher=cipher, hub=hub)
    app.state.send_gate = SendGate(settings.max_inflight_sends)
    install_error_handlers(app)
    install_openapi(app)
    for module in (health, agents, connections, messages, directory, ws):
        app.include_router(module.router)
    return app


async def _checkpoints(database: Database) -> None:
    """SQLite's WAL checkpoints, off the event loop (see `Database.checkpoint`)."""
    while True:
        await asyncio.sleep(CHECKPOINT_INTERVAL_SECONDS)
        try:
            await database.checkpoint()
        except Exception:
            log.exception("WAL checkpoint failed; will try again")


async def _janitor(services: Services) -> None:
    while True:
        await asyncio.sleep(JANITOR_INTERVAL_SECONDS)
        try:
            purged = await purge_expired_idempotency_keys(services)
            if purged:
                log.info("purged %d expired idempotency keys", purged)
            if services.pair_messages is not None:
                services.pair_messages.forget_idle()
        except Exception:
            log.exception("janitor failed; will try again")
