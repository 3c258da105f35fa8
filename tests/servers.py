"""Real servers on loopback for tests: uvicorn in a thread, and throwaway databases."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import uvicorn
from cryptography.fernet import Fernet
from pydantic import SecretStr

from server.app import create_app
from server.cli import uvicorn_options
from server.db import Database
from server.settings import Settings
from tests.proxy import RoundRobinProxy
from tests.waiting import NotInTime, wait_until

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


# One key per PostgreSQL test database: a server refuses to start on data written
# under a key it does not hold, and tests start several servers on one database.
_POSTGRES_KEYS: dict[str, str] = {}


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
        values["MAILBOX_ENCRYPTION_KEY"] = _POSTGRES_KEYS.setdefault(
            database_url, Fernet.generate_key().decode()
        )
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
            **uvicorn_options(self.settings),
            log_level="warning",
            lifespan="on",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        server, thread = self._server, self._thread

        def started() -> bool:
            if not thread.is_alive():
                raise RuntimeError("the server thread died during start-up")
            return server.started

        # uvicorn has no "started" event to wait on, only this flag
        wait_until(started, within=timeout, what="the server thread to start", every=0.02)
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
        # Its own process group: a kill reaches uvicorn's worker processes too.
        process = subprocess.Popen(
            [sys.executable, "-m", "server"],
            env=server_env(self.settings),
            start_new_session=True,
        )
        self._process = process

        def healthy() -> bool:
            if (code := process.poll()) is not None:
                raise RuntimeError(f"the server process exited with {code} during start-up")
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(f"{self.url}/health", timeout=1).status_code == 200
            return False

        try:
            wait_until(healthy, within=timeout, what="the server process to answer /health")
        except NotInTime:
            self.kill()
            raise
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash or a power cut of the process."""
        if self._process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)
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


class ServersBehindProxy:
    """Several `python -m server` processes on one PostgreSQL behind a round-robin
    proxy (`tests/proxy.py`): the deployment of `deploy/`, as plain processes.
    Quacks like `ServerThread` for the tests that take the `server` fixture."""

    def __init__(self, settings: Settings, count: int = 2) -> None:
        self.settings = settings
        self.processes = [
            ServerProcess(settings if i == 0 else settings.model_copy(update={"port": free_port()}))
            for i in range(count)
        ]
        self.proxy: RoundRobinProxy | None = None

    @property
    def url(self) -> str:
        assert self.proxy is not None
        return self.proxy.url

    @property
    def ws_url(self) -> str:
        assert self.proxy is not None
        return self.proxy.ws_url

    def start(self) -> ServersBehindProxy:
        try:
            for process in self.processes:
                process.start()
            self.proxy = RoundRobinProxy(
                [("127.0.0.1", p.settings.port) for p in self.processes]
            ).start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
        for process in self.processes:
            process.kill()

    def __enter__(self) -> ServersBehindProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
