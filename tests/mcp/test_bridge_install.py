"""`pip install agent-mailbox` is the bridge alone: it imports and runs without the server.

The processes here start with a finder first on `sys.meta_path` (a `sitecustomize`
on PYTHONPATH) that refuses the packages only `agent-mailbox[server]` brings, and
the `server` package itself, as if they were not installed. A bridge module that
imported one of them, at import time or on a path a test takes, fails here.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.fakes.openclaw_gateway import FakeGateway
from tests.helpers import Agent
from tests.mcp.conftest import MAILBOX_MCP, bridge, bridge_env, landed, send, status_until
from tests.servers import ServerThread

ROOT = Path(__file__).resolve().parents[2]

# What `[server]` adds to the bridge's install, by import name: its own requirements,
# the extras of `uvicorn[standard]` that the MCP SDK's plain uvicorn does without,
# and the server package. (uvicorn and starlette stay: the MCP SDK imports them.)
SERVER_ONLY = frozenset(
    {
        "fastapi",
        "sqlalchemy",
        "aiosqlite",
        "asyncpg",
        "alembic",
        "httptools",
        "uvloop",
        "watchfiles",
        "server",
    }
)

SITECUSTOMIZE = """\
import sys
from importlib.abc import MetaPathFinder

HIDDEN = frozenset({hidden!r})


class HideTheServerExtra(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in HIDDEN:
            hidden = f"No module named {{name!r}} (bridge-only install)"
            raise ModuleNotFoundError(hidden, name=name)
        return None


sys.meta_path.insert(0, HideTheServerExtra())
"""


@pytest.fixture
def bridge_only(tmp_path: Path) -> dict[str, str]:
    """The environment that hides the server's extra from a Python process."""
    site = tmp_path / "bridge-only-site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE.format(hidden=sorted(SERVER_ONLY)))
    return {"PYTHONPATH": str(site)}


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        args,
        env=env,
        cwd=cwd,  # not the repository root, where `server/` would be importable as a folder
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    return result


def test_the_hidden_packages_are_what_the_server_extra_adds() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    server = extras["optional-dependencies"]["server"]
    names = {re.split(r"[^A-Za-z0-9_.-]", requirement)[0].lower() for requirement in server}
    assert names - {"uvicorn"} <= SERVER_ONLY
    assert "agent-mailbox[server]" in extras["optional-dependencies"]["dev"]
    bridge_requirements = " ".join(extras["dependencies"]).lower()
    for name in SERVER_ONLY - {"server"}:
        assert name not in bridge_requirements


def test_a_hidden_package_cannot_be_imported(bridge_only: dict[str, str], tmp_path: Path) -> None:
    for name in ("fastapi", "sqlalchemy", "server.app"):
        code = f"import {name}"
        result = subprocess.run(
            [sys.executable, "-c", code], env=bridge_only, cwd=tmp_path, capture_output=True
        )
        assert result.returncode == 1
        assert b"bridge-only install" in result.stderr


def test_every_bridge_module_imports_without_the_server(
    bridge_only: dict[str, str], tmp_path: Path
) -> None:
    code = """\
import importlib, pkgutil, mailbox_mcp
names = [m.name for m in pkgutil.walk_packages(mailbox_mcp.__path__, "mailbox_mcp.")]
for name in names:
    if name != "mailbox_mcp.__main__":  # runs the bridge
        importlib.import_module(name)
print(len(names))
"""
    result = run([sys.executable, "-c", code], bridge_only, tmp_path)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) > 40


def test_the_owner_commands_run_without_the_server(
    mailbox: ServerThread, peers: tuple[Agent, Agent], bridge_only: dict[str, str], tmp_path: Path
) -> None:
    me, _ = peers
    env = {**bridge_env(mailbox, me, tmp_path / "state"), **bridge_only}

    helped = run([MAILBOX_MCP, "--help"], env, tmp_path)
    assert helped.returncode == 0, helped.stderr
    assert "doctor" in helped.stdout
    doctor = run([MAILBOX_MCP, "doctor"], env, tmp_path)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "[  ok] server" in doctor.stdout
    # end-to-end encryption (pgpy), loaded only by the commands that use it
    keys = run([MAILBOX_MCP, "keys", "generate"], {**env, "MAILBOX_PGP_PASSPHRASE": "pw"}, tmp_path)
    assert keys.returncode == 0, keys.stderr
    published = run(
        [MAILBOX_MCP, "keys", "publish"], {**env, "MAILBOX_PGP_PASSPHRASE": "pw"}, tmp_path
    )
    assert published.returncode == 0, published.stderr


@pytest.mark.anyio
async def test_the_stdio_bridge_serves_and_delivers_without_the_server(
    mailbox: ServerThread,
    gateway: FakeGateway,
    peers: tuple[Agent, Agent],
    bridge_only: dict[str, str],
    tmp_path: Path,
) -> None:
    me, peer = peers
    env = {**bridge_env(mailbox, me, tmp_path / "state", gateway), **bridge_only}
    async with bridge(env) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        assert {"mailbox_send", "mailbox_inbox", "mailbox_status"} <= tools
        await status_until(client, lambda s: s["listener"] == "connected")
        await send(peer, me, "msg-1")  # in: the listener (websockets) and the injector
        await gateway.await_injections(1, timeout=15)
        sent = await client.call_tool(  # out: the guard's secret scan and the audit log
            "mailbox_send", {"to": peer.name, "content": "hello", "subject": "s"}
        )
        assert not sent.is_error, sent.content
    assert landed(gateway) == ["msg-1"]
