"""X-Forwarded-For: only what the configured proxies appended decides the client's address.

The per-client registration limit shows which address the server used: requests
counted against one address share its allowance.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from server.settings import Settings
from tests.helpers import assert_error, unique_name
from tests.servers import ServerProcess, ServerThread, server_env, server_settings, sqlite_url

REAL_CLIENT = "198.51.100.7"
OTHER_CLIENT = "198.51.100.8"


def _register(http: httpx.Client, forwarded_for: str | None = None) -> httpx.Response:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for is not None else {}
    return http.post("/agents/register", json={"name": unique_name()}, headers=headers)


def test_a_forged_leftmost_entry_does_not_change_the_address_used_for_limits(
    tmp_path: Path,
) -> None:
    # The server as operators run it (`python -m server`), behind a proxy on loopback.
    settings = server_settings(
        sqlite_url(tmp_path),
        MAILBOX_TRUSTED_PROXIES="127.0.0.1",
        MAILBOX_REGISTRATIONS_PER_HOUR_PER_CLIENT=2,
    )
    with ServerProcess(settings) as proxied, httpx.Client(base_url=proxied.url, timeout=10) as http:
        # The client wrote the leftmost entry itself, a new one each time; the proxy
        # appended the address it saw. Only the latter counts.
        for forged in ("203.0.113.1", "203.0.113.2"):
            ok = _register(http, f"{forged}, {REAL_CLIENT}")
            assert ok.status_code == 201, ok.text
        assert_error(_register(http, f"203.0.113.3, {REAL_CLIENT}"), 429, "rate_limited")
        assert_error(_register(http, REAL_CLIENT), 429, "rate_limited")
        # Another client behind the same proxy has its own allowance.
        assert _register(http, OTHER_CLIENT).status_code == 201


def test_without_trusted_proxies_x_forwarded_for_is_ignored(fresh_database_url: str) -> None:
    settings = server_settings(fresh_database_url, MAILBOX_REGISTRATIONS_PER_HOUR_PER_CLIENT=2)
    with ServerThread(settings) as direct, httpx.Client(base_url=direct.url, timeout=10) as http:
        for i in range(2):
            assert _register(http, f"203.0.113.{i}").status_code == 201
        assert_error(_register(http, "203.0.113.9"), 429, "rate_limited")


def test_the_replaced_setting_refuses_the_start_and_names_the_new_one(tmp_path: Path) -> None:
    env = server_env(server_settings(sqlite_url(tmp_path)))
    env["MAILBOX_TRUST_FORWARDED_FOR"] = "1"
    result = subprocess.run(
        [sys.executable, "-m", "server"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "MAILBOX_TRUSTED_PROXIES" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("proxies", ["*", "my-proxy.internal", "127.0.0.1, 10.0.0.0/33"])
def test_a_trusted_proxy_that_is_not_an_address_or_network_is_refused(proxies: str) -> None:
    with pytest.raises(ValidationError, match="MAILBOX_TRUSTED_PROXIES"):
        Settings(_env_file=None, MAILBOX_TRUSTED_PROXIES=proxies)  # type: ignore[call-arg]


def test_the_old_setting_switched_off_is_accepted() -> None:
    settings = Settings(_env_file=None, MAILBOX_TRUST_FORWARDED_FOR="0")  # type: ignore[call-arg]
    assert settings.proxy_addresses == []
