"""Starting the server: settings errors a person can act on, keys, migrations, health."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from cryptography.fernet import Fernet

from server.app import ConfigurationError, create_app, create_fastapi_app
from server.settings import Settings
from tests.helpers import connect_agents, register
from tests.servers import (
    POSTGRES_ADMIN_URL,
    ServerProcess,
    ServerThread,
    free_port,
    postgres_database,
    server_env,
    server_settings,
    sqlite_url,
)


def test_sqlite_without_a_key_makes_a_0600_key_file_and_reuses_it(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    with ServerThread(server_settings(url)) as server:
        a, b = register(server.url), register(server.url)
        connect_agents(a, b)
        a.send(b, "kept across restarts")
    key_file = tmp_path / "mailbox.db.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    with ServerThread(server_settings(url)) as server:
        b.http.base_url = server.url
        assert b.get("/inbox").json()["messages"][0]["content"] == "kept across restarts"


def test_postgres_without_a_key_refuses_to_start() -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        DATABASE_URL="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres",
    )
    with pytest.raises(ConfigurationError, match="MAILBOX_ENCRYPTION_KEY is required"):
        create_app(settings)


def test_a_malformed_key_is_refused_with_the_fix(tmp_path: Path) -> None:
    settings = server_settings(sqlite_url(tmp_path), MAILBOX_ENCRYPTION_KEY="not-a-key")
    with pytest.raises(ConfigurationError, match="Fernet"):
        create_app(settings)


def test_rotated_keys_still_decrypt_old_messages(tmp_path: Path) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    url = sqlite_url(tmp_path)
    with ServerThread(server_settings(url, MAILBOX_ENCRYPTION_KEY=old)) as server:
        a, b = register(server.url), register(server.url)
        connect_agents(a, b)
        a.send(b, "written with the old key")
    with ServerThread(server_settings(url, MAILBOX_ENCRYPTION_KEY=f"{new},{old}")) as server:
        b.http.base_url = server.url
        a.http.base_url = server.url
        a.send(b, "written with the new key")
        contents = [m["content"] for m in b.get("/inbox").json()["messages"]]
    assert contents == ["written with the old key", "written with the new key"]


def test_a_libpq_database_url_gets_a_clear_error() -> None:
    env = {**os.environ, "DATABASE_URL": "postgresql://postgres@127.0.0.1/x"}
    result = subprocess.run(
        [sys.executable, "-m", "server", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "postgresql+asyncpg://" in result.stderr
    assert result.stdout == ""


def test_an_unmigrated_postgres_database_refuses_to_serve_then_migrate_fixes_it(
    postgres_available: None,
) -> None:
    with postgres_database() as url:
        settings = server_settings(url)
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "MAILBOX_ENCRYPTION_KEY": settings.encryption_key.get_secret_value(),  # type: ignore[union-attr]
            "MAILBOX_PORT": str(settings.port),
        }
        refused = subprocess.run(
            [sys.executable, "-m", "server"], env=env, capture_output=True, text=True, timeout=60
        )
        assert refused.returncode == 2
        assert "run `mailbox-server migrate` first" in refused.stderr
        result = subprocess.run(
            [sys.executable, "-m", "server", "migrate"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        with ServerThread(settings) as server:
            assert register(server.url).name


def test_health_reports_the_database(postgres_available: None) -> None:
    with postgres_database() as url:
        from tests.servers import migrate

        migrate(url)
        with ServerThread(server_settings(url)) as server:
            import httpx

            assert httpx.get(f"{server.url}/health").json() == {"status": "ok", "database": "ok"}
            assert health_command(server.url).returncode == 0
            name = url.rsplit("/", 1)[1]

            async def drop() -> None:
                conn = await asyncpg.connect(POSTGRES_ADMIN_URL)
                try:
                    await conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
                finally:
                    await conn.close()

            asyncio.run(drop())
            down = httpx.get(f"{server.url}/health", timeout=10)
            assert down.status_code == 503
            assert down.json() == {"status": "unavailable", "database": "unreachable"}
            # `mailbox-server health`, the deploy files' health check, fails with it.
            failing = health_command(server.url)
            assert failing.returncode == 1
            assert "unhealthy" in failing.stdout + failing.stderr


def health_command(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", "health", "--url", f"{url}/health"],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_health_command_fails_when_no_server_answers() -> None:
    result = health_command(f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert "unhealthy" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_second_process_on_the_same_sqlite_file_is_refused_until_the_first_is_gone(
    tmp_path: Path,
) -> None:
    settings = server_settings(sqlite_url(tmp_path))
    first = ServerProcess(settings).start()
    try:
        second = subprocess.run(
            [sys.executable, "-m", "server"],
            env={**server_env(settings), "MAILBOX_PORT": str(free_port())},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 2
        assert "another server process is using" in second.stderr
        assert "PostgreSQL" in second.stderr
        assert "Traceback" not in second.stderr
        # The app takes the lock itself too, so a server started another way (uvicorn
        # on the app) is refused at start-up as well.
        app = create_fastapi_app(server_settings(sqlite_url(tmp_path)))

        async def start_up() -> None:
            async with app.router.lifespan_context(app):
                pass

        with pytest.raises(ConfigurationError, match="another server process"):
            asyncio.run(start_up())
    finally:
        first.kill()
    # The kernel drops the lock with the process, even a killed one: no stale lock.
    with ServerThread(settings) as server:
        assert register(server.url).name
    assert stat.S_IMODE((tmp_path / "mailbox.db.lock").stat().st_mode) == 0o600
