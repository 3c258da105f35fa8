"""The files in `deploy/`, checked offline with the tools that read them.

No Docker engine runs here, so the compose file is checked by `docker-compose config`
(which resolves variables and validates the schema), the proxy's nginx.conf by
`nginx -t` and then by running it for real in front of a server on loopback (TLS,
the WebSocket upgrade), and the systemd unit by `systemd-analyze verify`. In CI the
tools are installed and required; elsewhere a missing one skips with its package.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from cryptography.fernet import Fernet
from websockets.sync.client import connect

from tests.deploy.tls import TlsFiles, make_tls
from tests.servers import ServerThread, free_port, server_settings, sqlite_url
from tests.waiting import wait_until

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SECRETS = ("POSTGRES_PASSWORD", "MAILBOX_ENCRYPTION_KEY")


def tool(name: str, package: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is not None:
        return path
    message = f"{name} not installed (Debian package {package})"
    if os.environ.get("CI") or os.environ.get("MAILBOX_REQUIRE_DEPLOY_TOOLS") == "1":
        pytest.fail(f"{message}: it is required here (CI)")
    pytest.skip(message)


def compose_config(env_file: Path) -> subprocess.CompletedProcess[str]:
    compose = tool("docker-compose", "docker-compose")
    return subprocess.run(
        [compose, "--env-file", str(env_file), "-f", str(DEPLOY / "compose.yaml"), "config"],
        capture_output=True,
        text=True,
        timeout=60,
    )


def filled_env(tmp_path: Path) -> Path:
    env_file = tmp_path / ".env"
    env_file.write_text(
        f"POSTGRES_PASSWORD={secrets.token_urlsafe(24)}\n"
        f"MAILBOX_ENCRYPTION_KEY={Fernet.generate_key().decode()}\n"
        f"MAILBOX_TLS_DIR={tmp_path / 'tls'}\n"
        "MAILBOX_SERVERS=2\n"
    )
    return env_file


# -- compose -----------------------------------------------------------------------


def test_the_compose_file_is_valid_and_publishes_only_the_proxy(tmp_path: Path) -> None:
    result = compose_config(filled_env(tmp_path))
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert set(services) == {"postgres", "migrate", "server", "proxy"}
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"proxy"}, "only the TLS proxy may publish a port (never the database)"
    assert services["migrate"]["command"] == ["mailbox-server", "migrate"]
    assert services["server"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )
    assert services["server"]["deploy"]["replicas"] == 2
    assert services["server"]["healthcheck"]["test"] == ["CMD", "mailbox-server", "health"]
    for name in ("migrate", "server"):
        environment = services[name]["environment"]
        assert environment["DATABASE_URL"].startswith("postgresql+asyncpg://mailbox:")
        assert environment["DATABASE_URL"].endswith("@postgres:5432/mailbox")
    # The servers trust X-Forwarded-For from the proxy's own address, and from nothing else.
    proxy_address = services["proxy"]["networks"]["default"]["ipv4_address"]
    assert services["server"]["environment"]["MAILBOX_TRUSTED_PROXIES"] == proxy_address
    assert "MAILBOX_TRUST_FORWARDED_FOR" not in services["server"]["environment"]


def test_compose_refuses_to_start_until_every_secret_is_set(tmp_path: Path) -> None:
    # .env.example as shipped: every secret empty.
    result = compose_config(DEPLOY / ".env.example")
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD" in result.stderr or "MAILBOX_ENCRYPTION_KEY" in result.stderr


def test_no_secret_has_a_default_anywhere_in_deploy() -> None:
    example = dict(
        line.split("=", 1)
        for line in (DEPLOY / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert {name: example[name] for name in SECRETS} == {name: "" for name in SECRETS}
    compose = (DEPLOY / "compose.yaml").read_text()
    for name in SECRETS:
        # Every use of a secret fails when unset (`:?`), none falls back (`:-`).
        uses = re.findall(r"\$\{" + name + r"(:[?-])", compose)
        assert uses and set(uses) == {":?"}, name
    assert "changeme" not in compose.lower()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DATABASE_URL", "postgresql+asyncpg://mailbox:changeme@127.0.0.1:5432/mailbox"),
        ("MAILBOX_ENCRYPTION_KEY", "changeme"),
    ],
)
def test_the_server_refuses_a_placeholder_secret(variable: str, value: str) -> None:
    env = {**os.environ, variable: value}
    result = subprocess.run(
        [sys.executable, "-m", "server", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "placeholder" in result.stderr
    assert "Traceback" not in result.stderr


# -- the proxy ---------------------------------------------------------------------


def proxy_config(tmp_path: Path, tls: TlsFiles, upstream: int, http: int, https: int) -> Path:
    """deploy/nginx.conf with loopback addresses for compose's names and ports."""
    text = (DEPLOY / "nginx.conf").read_text()
    replacements = {
        "server server:8000;": f"server 127.0.0.1:{upstream};",
        "listen 80;": f"listen 127.0.0.1:{http};",
        "listen 443 ssl;": f"listen 127.0.0.1:{https} ssl;",
        "/etc/nginx/tls/": f"{tls.directory}/",
    }
    for old, new in replacements.items():
        assert old in text, f"deploy/nginx.conf no longer has {old!r}"
        text = text.replace(old, new)
    config = tmp_path / "nginx.conf"
    config.write_text(text)
    return config


def nginx_command(config: Path, prefix: Path) -> list[str]:
    nginx = tool("nginx", "nginx-light")
    (prefix / "logs").mkdir(exist_ok=True)
    return [
        nginx,
        "-c",
        str(config),
        "-p",
        str(prefix),
        "-e",
        str(prefix / "logs" / "error.log"),
        "-g",
        f"daemon off; pid {prefix / 'nginx.pid'};",
    ]


@pytest.fixture
def proxied_server(tmp_path: Path) -> Iterator[tuple[str, str, TlsFiles]]:
    """A real server behind deploy/nginx.conf run by a real nginx: (https URL, http URL)."""
    tls = make_tls(tmp_path / "tls")
    http_port, https_port = free_port(), free_port()
    with ServerThread(server_settings(sqlite_url(tmp_path))) as server:
        config = proxy_config(tmp_path, tls, server.settings.port, http_port, https_port)
        command = nginx_command(config, tmp_path)
        checked = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0, checked.stderr
        with (tmp_path / "nginx.stderr").open("wb") as stderr:
            proxy = subprocess.Popen(command, stderr=stderr)
        try:
            wait_for_port(https_port, proxy, tmp_path / "nginx.stderr")
            yield f"https://127.0.0.1:{https_port}", f"http://127.0.0.1:{http_port}", tls
        finally:
            proxy.terminate()
            proxy.wait(10)


def wait_for_port(
    port: int, process: subprocess.Popen[bytes], stderr: Path, timeout: float = 15
) -> None:
    def listens() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"nginx exited: {stderr.read_text()}") from None
            return False
        return True

    wait_until(listens, within=timeout, what=f"nginx to listen on {port}")


def test_the_proxy_serves_https_redirects_http_and_upgrades_websockets(
    proxied_server: tuple[str, str, TlsFiles],
) -> None:
    https_url, http_url, tls = proxied_server
    context = ssl.create_default_context(cafile=str(tls.ca_file))
    assert httpx.get(f"{https_url}/health", verify=context).json()["status"] == "ok"
    redirect = httpx.get(f"{http_url}/health")
    assert redirect.status_code == 301
    assert redirect.headers["location"].startswith("https://")

    client = httpx.Client(base_url=https_url, verify=context, timeout=10)
    with client:
        registered = client.post("/agents/register", json={"name": f"proxy-{secrets.token_hex(4)}"})
        assert registered.status_code == 201, registered.text
        api_key = registered.json()["api_key"]
    ws_url = https_url.replace("https://", "wss://") + "/ws"
    with connect(ws_url, ssl=context, open_timeout=10) as ws:
        ws.send(f'{{"type": "auth", "api_key": "{api_key}"}}')
        assert '"auth_ok"' in str(ws.recv(timeout=10))


# -- systemd -----------------------------------------------------------------------


def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = tool("systemd-analyze", "systemd")
    unit = (DEPLOY / "mailbox-server.service").read_text()
    installed = "/opt/agent-mailbox/.venv/bin/mailbox-server"
    assert installed in unit
    # The unit names the installed path; verify checks it exists, so point at ours.
    here = Path(sys.executable).parent / "mailbox-server"
    copy = tmp_path / "mailbox-server.service"
    copy.write_text(unit.replace(installed, str(here)))
    result = subprocess.run(
        [analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
