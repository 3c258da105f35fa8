"""The application factory: one Settings object in, a FastAPI app out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import cast

import asyncpg
from fastapi import FastAPI
from starlette.types import ASGIApp
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from .api import agents, blocks, connections, directory, health, messages, ws
from .api.errors import BodyLimit, install_error_handlers
from .api.fast_send import FastSend
from .api.openapi import install_openapi
from .cipher import Cipher, load_or_create_sqlite_key, parse_keys
from .cluster import Cluster
from .db import Database, libpq_url
from .errors import ConfigurationError
from .key_registry import open_keys
from .keyed_hash import KeyedHash
from .services.cluster_events import ClusterEvents
from .services.context import Services
from .services.delivery import Hub
from .services.messages import SendGate, purge_expired_idempotency_keys
from .settings import Settings
from .sqlite_lock import SingleProcessLock

log = logging.getLogger(__name__)

JANITOR_INTERVAL_SECONDS = 600
CHECKPOINT_INTERVAL_SECONDS = 1.0

__all__ = [
    "ConfigurationError",
    "build_cipher",
    "create_app",
    "create_fastapi_app",
    "prepare_database",
]


def build_cipher(settings: Settings) -> Cipher:
    if settings.encryption_key is not None and settings.encryption_key.get_secret_value().strip():
        keys = parse_keys(settings.encryption_key.get_secret_value())
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


def _single_process_lock(settings: Settings) -> SingleProcessLock | None:
    database_file = settings.sqlite_path
    return None if database_file is None else SingleProcessLock(database_file)


async def prepare_database(database: Database, cipher: Cipher) -> KeyedHash:
    """The schema up to date and the keys able to read the data, or a refusal.

    SQLite is migrated in place; PostgreSQL must have been migrated by its operator.
    Returns the keyed hash under the server secret kept in the database."""
    if database.is_sqlite:
        await database.upgrade(cipher)
    elif not await database.is_up_to_date():
        raise ConfigurationError(
            "the database schema is not up to date: run `mailbox-server migrate` first"
        )
    return await open_keys(database, cipher)


def app_from_environment() -> ASGIApp:
    """The app of one uvicorn worker process, with the settings of the environment."""
    return create_app(Settings())


def create_app(settings: Settings) -> ASGIApp:
    """The ASGI application: the FastAPI app, with the body limit and the send fast
    path in front of it (outside FastAPI's own middleware, which costs per request)."""
    app = create_fastapi_app(settings)
    outer: ASGIApp = FastSend(app, mailbox=app) if settings.fast_send else app
    outer = BodyLimit(outer, limit=settings.max_request_bytes)
    if settings.proxy_addresses:
        # Here, not as uvicorn's `proxy_headers` option, so every way of serving the
        # app (the CLI, the tests' servers) trusts exactly the configured proxies.
        # uvicorn types its middleware with its own ASGI types, starlette with its own.
        outer = cast(
            ASGIApp,
            ProxyHeadersMiddleware(
                outer,  # type: ignore[arg-type]
                trusted_hosts=settings.proxy_addresses,
            ),
        )
    return outer


def create_fastapi_app(settings: Settings) -> FastAPI:
    cipher = build_cipher(settings)
    database = Database(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services: Services = app.state.services
        single_process = _single_process_lock(settings)
        try:
            if single_process is not None:
                single_process.acquire()
            services.hashes = await prepare_database(database, cipher)
            await _join_cluster(services)
        except BaseException:
            await database.dispose()
            if single_process is not None:
                single_process.release()
            raise
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
            if services.cluster is not None:
                await services.cluster.close()
            await services.notices.close()
            await services.hub.catch_up.close()
            await database.dispose()
            if single_process is not None:
                single_process.release()

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
    # Blocks before connections: `/connections/blocks` must not be read as a peer's name.
    for module in (health, agents, blocks, connections, messages, directory, ws):
        app.include_router(module.router)
    return app


async def _join_cluster(services: Services) -> None:
    """On PostgreSQL, listen to the other server processes before serving (contract §10)."""
    if services.db.is_sqlite:
        return
    channel = Cluster(libpq_url(services.settings.database_url))
    events = ClusterEvents(services)
    events.attach(channel)
    try:
        await channel.start()
    except (OSError, asyncpg.PostgresError) as exc:
        raise ConfigurationError(f"cannot listen on the database: {exc}") from None
    services.cluster = channel


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
            await services.registrations.forget_idle()
            await services.approve_failures.forget_idle()
            if services.pair_messages is not None:
                services.pair_messages.forget_idle()
        except Exception:
            log.exception("janitor failed; will try again")
