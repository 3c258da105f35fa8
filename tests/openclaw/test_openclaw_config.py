"""What ``mailbox-mcp config openclaw`` prints is a patch OpenClaw itself accepts:
the default (dedicated agent, stdio), ``--serve`` (one process, by url) and ``--plain``.

Checked with OpenClaw's own validation (``openclaw config patch --dry-run``),
which knows the schema of ``openclaw.json``: a key it does not know, such as
``workingDirectory`` instead of ``cwd``, is refused.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.openclaw.conftest import requires_openclaw
from tests.openclaw.gateway import OpenClawInstall, RealGateway

pytestmark = [requires_openclaw, pytest.mark.openclaw, pytest.mark.timeout(420)]


def printed_entry(tmp_path: Path, gateway: RealGateway, *args: str) -> dict[str, Any]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MAILBOX_", "OPENCLAW_"))}
    env = {
        **base,
        "MAILBOX_SERVER_URL": "http://127.0.0.1:8000",
        "MAILBOX_STATE_DIR": str(tmp_path / "state"),
        "OPENCLAW_GATEWAY_URL": gateway.url,
    }
    done = subprocess.run(
        [str(Path(sys.executable).parent / "mailbox-mcp"), "config", "openclaw", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)


def dry_run(gateway: RealGateway, patch: dict[str, Any]) -> dict[str, Any]:
    output = gateway.cli(
        "config", "patch", "--stdin", "--dry-run", "--json", stdin=json.dumps(patch), check=False
    )
    return json.loads(output[output.index("{") :])


def test_the_printed_openclaw_entry_passes_openclaws_own_config_validation(
    gateway: RealGateway, tmp_path: Path
) -> None:
    entry = printed_entry(tmp_path, gateway)
    server = entry["mcp"]["servers"]["mailbox"]
    assert server["env"]["OPENCLAW_GATEWAY_URL"] == gateway.url
    assert entry["agents"]["entries"]["mailbox"]["tools"]["allow"] == ["mailbox__mailbox_reply"]

    result = dry_run(gateway, entry)
    assert result["ok"] is True, result

    # the check can fail: the schema refuses what OpenClaw does not know
    server["workingDirectory"] = server.pop("cwd", "/tmp")
    refused = dry_run(gateway, entry)
    assert refused["ok"] is False
    assert "workingDirectory" in json.dumps(refused["errors"])


@pytest.mark.parametrize("args", [("--serve",), ("--plain",), ("--plain", "--serve")])
def test_the_serve_and_plain_entries_pass_it_too(
    gateway: RealGateway, tmp_path: Path, args: tuple[str, ...]
) -> None:
    entry = printed_entry(tmp_path, gateway, *args)
    server = entry["mcp"]["servers"]["mailbox"]
    assert ("url" in server) == ("--serve" in args)
    assert ("tools" in entry.get("gateway", {})) == ("--plain" in args)

    result = dry_run(gateway, entry)
    assert result["ok"] is True, result


@pytest.mark.parametrize(
    "agents",
    [
        None,  # a fresh OpenClaw: its default workspace under the state dir
        {"defaults": {"workspace": "WS/root"}},
        {"defaults": {"workspace": "WS/root"}, "entries": {"main": {}, "other": {}}},
    ],
    ids=["default", "defaults-workspace", "roster"],
)
def test_the_printed_main_workspace_is_the_one_openclaw_gives_main(
    openclaw_install: OpenClawInstall, tmp_path: Path, agents: dict[str, Any] | None
) -> None:
    """Listing agents (as the printed patch does) gives an unpinned ``main`` another
    folder, so the patch pins main's: the one OpenClaw itself reports now."""
    config_only = RealGateway(openclaw_install, tmp_path / "openclaw")  # never started
    config_only.configure()
    if agents is not None:
        patch = json.loads(json.dumps({"agents": agents}).replace("WS/", f"{tmp_path}/"))
        config_only.cli("config", "patch", "--stdin", stdin=json.dumps(patch))
    listed = config_only.cli("agents", "list", "--json")
    [main] = [a for a in json.loads(listed[listed.index("[") :]) if a["id"] == "main"]

    env = {k: v for k, v in config_only.env().items() if not k.startswith("MAILBOX_")}
    env["MAILBOX_STATE_DIR"] = str(tmp_path / "bridge-state")
    done = subprocess.run(
        [str(Path(sys.executable).parent / "mailbox-mcp"), "config", "openclaw"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    printed = json.loads(done.stdout)["agents"]["entries"]["main"]["workspace"]
    assert printed == main["workspace"], done.stderr
    assert f"main keeps its workspace {printed}" in done.stderr
