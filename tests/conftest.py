"""Fixtures shared by all tests: a real server per database backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import close_clients
from tests.servers import (
    ServerThread,
    database_like,
    migrate,
    postgres_database,
    postgres_reachable,
    postgres_required,
    server_settings,
    sqlite_url,
)

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(autouse=True)
def _close_http_clients() -> Iterator[None]:
    yield
    close_clients()


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def postgres_available() -> None:
    reason = postgres_reachable()
    if reason is None:
        return
    if postgres_required():
        pytest.fail(f"PostgreSQL is required here (CI) but not reachable: {reason}")
    pytest.skip(f"PostgreSQL not reachable ({reason}); set MAILBOX_TEST_POSTGRES_URL")


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A fresh database of each backend for the test session (the PostgreSQL one is dropped)."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path_factory.mktemp("sqlite"))
        return
    request.getfixturevalue("postgres_available")
    with postgres_database() as url:
        migrate(url)
        yield url


@pytest.fixture(scope="session")
def server(database_url: str) -> Iterator[ServerThread]:
    with ServerThread(server_settings(database_url)) as running:
        yield running


@pytest.fixture
def fresh_database_url(
    request: pytest.FixtureRequest, database_url: str, tmp_path: Path
) -> Iterator[str]:
    """A database of the same backend as `database_url`, just for this test."""
    with database_like(database_url, tmp_path) as url:
        yield url
