"""Where OpenClaw keeps main's workspace, as `config openclaw` pins it.

The rules are checked against OpenClaw itself (`openclaw agents list --json`) in
`tests/openclaw/test_openclaw_config.py`; here each rule on its own.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mailbox_mcp.openclaw.home import config_path, main_workspace

OPENCLAW_VARIABLES = (
    "OPENCLAW_STATE_DIR",
    "OPENCLAW_CONFIG_PATH",
    "OPENCLAW_PROFILE",
    "OPENCLAW_WORKSPACE_DIR",
)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in OPENCLAW_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def write_config(path: Path, config: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config))


def test_without_config_main_has_openclaws_default_workspace(home: Path) -> None:
    found = main_workspace()
    assert found.path == str(home / ".openclaw" / "workspace")
    assert found.source == "OpenClaw's default"
    assert config_path() == home / ".openclaw" / "openclaw.json"


def test_a_profile_and_a_state_dir_move_the_default(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENCLAW_PROFILE", "work")
    assert main_workspace().path == str(home / ".openclaw-work" / "workspace")
    monkeypatch.setenv("OPENCLAW_STATE_DIR", str(home / "state"))
    assert main_workspace().path == str(home / "state" / "workspace")
    monkeypatch.setenv("OPENCLAW_WORKSPACE_DIR", str(home / "elsewhere"))
    assert main_workspace().path == str(home / "elsewhere")


def test_the_config_names_it(home: Path) -> None:
    path = home / ".openclaw" / "openclaw.json"
    write_config(path, {"agents": {"defaults": {"workspace": "~/ws-root"}}})
    found = main_workspace()
    assert found.path == "~/ws-root"  # as written: OpenClaw expands it
    assert found.source == f"agents.defaults.workspace in {path}"

    pinned = {"defaults": {"workspace": "~/ws-root"}, "entries": {"main": {"workspace": "/w"}}}
    write_config(path, {"agents": pinned})
    assert main_workspace().path == "/w"


@pytest.mark.parametrize(
    ("defaults", "expected"),
    [({"workspace": "/root-ws"}, "/root-ws/main"), ({}, "STATE/workspace-main")],
)
def test_an_unpinned_main_in_a_roster_gets_a_folder_of_its_own(
    home: Path, defaults: dict[str, str], expected: str
) -> None:
    roster = {"main": {}, "helper": {"workspace": "/helper"}}
    write_config(
        home / ".openclaw" / "openclaw.json", {"agents": {"defaults": defaults, "entries": roster}}
    )
    assert main_workspace().path == expected.replace("STATE", str(home / ".openclaw"))


def test_a_json5_config_is_read_as_openclaw_reads_it(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = home / "custom.json5"
    path.write_text("{ agents: { defaults: { workspace: '/json5' } } } // OpenClaw's own format")
    monkeypatch.setenv("OPENCLAW_CONFIG_PATH", str(path))
    found = main_workspace()
    assert found.path == "/json5"
    assert found.source == f"agents.defaults.workspace in {path}"


def test_a_config_that_is_not_json5_falls_back_to_the_default_and_says_so(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = home / "custom.json5"
    path.write_text("{ agents: { defaults: { workspace: '/json5' } ")
    monkeypatch.setenv("OPENCLAW_CONFIG_PATH", str(path))
    found = main_workspace()
    assert found.path == str(home / ".openclaw" / "workspace")
    assert f"{path} is not valid JSON5" in found.source


def test_agents_that_is_not_an_object_falls_back_to_the_default_and_says_so(
    home: Path,
) -> None:
    path = home / ".openclaw" / "openclaw.json"
    write_config(path, {"agents": []})
    found = main_workspace()
    assert found.path == str(home / ".openclaw" / "workspace")
    assert "agents must be an object" in found.source
