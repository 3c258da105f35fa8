"""Real servers on loopback for tests: uvicorn in a thread, and throwaway databases."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import uvicorn
from cryptography.fernet import Fernet
from pydantic import SecretStr

from server.app import create_app
from server.db import Database
from server.settings import Settings
from server.ws_protocol import MailboxWebSocketProtocol

POSTGRES_ADMIN_URL = os.environ.get(
    "MAILBOX_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def postgres_required() -> bool:
    """In CI (or when asked) a missing PostgreSQL fails the run instead of skipping it."""
    return bool(os.environ.get("CI")) or os.environ.get("MAILBOX_REQUIRE_POSTGRES") == "1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def postgres_reachable() -> str | None:
    """None when reachable, else the reason."""
    try:
        asyncio.run(_admin("SELECT 1"))
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for one test run, dropped afterwards."""
    name = f"mailbox_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def migrate(database_url: str) -> None:
    async def run() -> None:
        database = Database(Settings(DATABASE_URL=database_url))
        try:
            await database.upgrade()
        finally:
            await database.dispose()

    asyncio.run(run())


@contextlib.contextmanager
def database_like(database_url: str, directory: Path) -> Iterator[str]:
    """A new database of the same backend as `database_url`, migrated (SQLite in `directory`)."""
    if database_url.startswith("sqlite"):
        yield sqlite_url(directory)
        return
    with postgres_database() as url:
        migrate(url)
        yield url


def server_settings(database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "DATABASE_URL": database_url,
        "MAILBOX_HOST": "127.0.0.1",
        "MAILBOX_PORT": free_port(),
        # Tests register many agents from one address and send in bursts.
        "MAILBOX_REGISTRATIONS_PER_HOUR_PER_CLIENT": 1_000_000,
        "MAILBOX_REQUESTS_PER_SECOND": 10_000,
        "MAILBOX_REQUEST_BURST": 10_000,
        # Tests send many messages per pair; the pair limit's own tests switch it on.
        "MAILBOX_PAIR_MESSAGES_PER_HOUR": 0,
    }
    if not database_url.startswith("sqlite"):
        values["MAILBOX_ENCRYPTION_KEY"] = Fernet.generate_key().decode()
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


class ServerThread:
    """The real app under a real uvicorn on a loopback port, in a background thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = f"http://127.0.0.1:{settings.port}"
        self.ws_url = f"ws://127.0.0.1:{settings.port}/ws"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 20) -> ServerThread:
        config = uvicorn.Config(
            create_app(self.settings),
            host="127.0.0.1",
            port=self.settings.port,
            log_level="warning",
            ws=MailboxWebSocketProtocol,
            ws_max_size=self.settings.max_ws_frame_bytes,
            ws_ping_interval=self.settings.ws_ping_interval_seconds,
            ws_ping_timeout=self.settings.ws_ping_interval_seconds,
            ws_per_message_deflate=False,
            lifespan="on",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the server thread died during start-up")
            if time.monotonic() > deadline:
                raise TimeoutError("the server did not start in time")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 20) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError("the server did not stop in time")
        self._server = None
        self._thread = None

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def sqlite_url(directory: Path) -> str:
    return f"sqlite+aiosqlite:///{directory / 'mailbox.db'}"


def server_env(settings: Settings) -> dict[str, str]:
    """The environment that makes `python -m server` read exactly these settings."""
    env = dict(os.environ)
    for name, field in Settings.model_fields.items():
        value = getattr(settings, name)
        if value is None or field.alias is None:
            continue
        env[field.alias] = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
    return env


class ServerProcess:
    """`python -m server` as its own process: for what a thread cannot show, a crash."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = f"http://127.0.0.1:{settings.port}"
        self.ws_url = f"ws://127.0.0.1:{settings.port}/ws"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> ServerProcess:
        process = subprocess.Popen([sys.executable, "-m", "server"], env=server_env(self.settings))
        self._process = process
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            if time.monotonic() > deadline:
                self.kill()
                raise TimeoutError("the server process did not start in time")
            # Waiting on the process both paces the retries and notices an early exit.
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = process.wait(0.05)
                raise RuntimeError(f"the server process exited with {code} during start-up")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash or a power cut of the process."""
        if self._process is not None:
            self._process.kill()
            self._process.wait(10)
            self._process = None

    def stop(self) -> None:
        """SIGTERM: the graceful shutdown uvicorn runs for a service manager."""
        if self._process is not None:
            self._process.terminate()
            self._process.wait(20)
            self._process = None

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()
