"""Fixtures shared by all tests: a real server per database backend, and ``mailbox``, a
fresh server of one test's own (SQLite) for the bridge and OpenClaw tiers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import close_clients
from tests.servers import (
    ServersBehindProxy,
    ServerThread,
    database_like,
    migrate,
    postgres_database,
    postgres_reachable,
    postgres_required,
    server_settings,
    sqlite_url,
)

# "postgresql-2" runs the same tests against two server processes on one PostgreSQL
# behind a round-robin proxy, each client on its own connection (contract §10).
BACKENDS = ["sqlite", "postgresql", "postgresql-2"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that reach into the server's own process, or that a deployment's proxy
    answers itself, run directly only: skipped with their reason behind the proxy."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        behind_proxy = callspec is not None and callspec.params.get("database_url") == (
            "postgresql-2"
        )
        if behind_proxy and item.get_closest_marker("direct_only") is not None:
            item.add_marker(pytest.mark.skip(reason="direct_only: not behind the test proxy"))


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
        if request.param == "postgresql-2":
            BEHIND_PROXY.add(url)
        yield url


BEHIND_PROXY: set[str] = set()


@pytest.fixture(scope="session")
def server(database_url: str) -> Iterator[ServerThread | ServersBehindProxy]:
    topology = (
        ServersBehindProxy(server_settings(database_url))
        if database_url in BEHIND_PROXY
        else ServerThread(server_settings(database_url))
    )
    with topology as running:
        yield running


@pytest.fixture
def mailbox(tmp_path: Path) -> Iterator[ServerThread]:
    """A server of this test's own on SQLite (in ``tmp_path/server``, apart from the
    bridge's state that tests keep in ``tmp_path``)."""
    with ServerThread(server_settings(sqlite_url(tmp_path / "server"))) as running:
        yield running


@pytest.fixture
def fresh_database_url(
    request: pytest.FixtureRequest, database_url: str, tmp_path: Path
) -> Iterator[str]:
    """A database of the same backend as `database_url`, just for this test."""
    with database_like(database_url, tmp_path) as url:
        yield url
