"""Where the owner's OpenClaw keeps its config, and the main agent's workspace.

Only read, never written: `mailbox-mcp config openclaw` prints a patch that the
owner applies. The patch must list `main` with the workspace it has now, since
listing agents makes OpenClaw give an unpinned `main` another folder. The rules
are OpenClaw's own (docs/concepts/agent-workspace.md, 2026.9.6). The real-gateway
tests check them against `openclaw agents list --json`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def state_dir() -> Path:
    if explicit := os.environ.get("OPENCLAW_STATE_DIR"):
        return Path(explicit).expanduser()
    profile = os.environ.get("OPENCLAW_PROFILE", "").strip()
    name = ".openclaw" if profile in ("", "default") else f".openclaw-{profile}"
    return Path.home() / name


def config_path() -> Path:
    if explicit := os.environ.get("OPENCLAW_CONFIG_PATH"):
        return Path(explicit).expanduser()
    return state_dir() / "openclaw.json"


def read_config(path: Path) -> dict[str, Any]:
    """`openclaw.json` as plain JSON. OpenClaw also accepts JSON5, which this does
    not guess at. Raises OSError (FileNotFoundError when there is none) or ValueError."""
    config = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(config, dict):
        raise ValueError("not a JSON object")
    return config


@dataclass(frozen=True)
class MainWorkspace:
    path: str
    source: str  # where it came from, for the owner to check


def main_workspace() -> MainWorkspace:
    """The workspace OpenClaw gives the `main` agent with the current config."""
    path = config_path()
    try:
        config = read_config(path)
        where = f"in {path}"
    except FileNotFoundError:
        config, where = {}, ""
    except (OSError, ValueError) as exc:
        config, where = {}, f"; {path} is not plain JSON ({exc})"
    agents = _dict(config.get("agents"))
    roster = _dict(agents.get("entries"))
    root = _text(_dict(agents.get("defaults")).get("workspace"))
    if pinned := _text(_dict(roster.get("main")).get("workspace")):
        return MainWorkspace(pinned, f"agents.entries.main.workspace {where}".strip())
    if len(roster) > 1 and "main" in roster:
        # In a roster of several agents an unpinned entry gets a folder of its own.
        own = f"{root}/main" if root else str(state_dir() / "workspace-main")
        return MainWorkspace(own, f"main is not pinned in the roster {where}".strip())
    if root:
        return MainWorkspace(root, f"agents.defaults.workspace {where}".strip())
    if explicit := os.environ.get("OPENCLAW_WORKSPACE_DIR"):
        return MainWorkspace(explicit, "OPENCLAW_WORKSPACE_DIR")
    return MainWorkspace(str(state_dir() / "workspace"), f"OpenClaw's default{where}")


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: object) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def bridge_env(config: dict[str, Any], server: str = "mailbox") -> dict[str, str]:
    """The environment OpenClaw starts the stdio bridge with (`mcp.servers.<server>.env`),
    without the placeholders `config openclaw` prints for secrets left out."""
    entry = _dict(_dict(_dict(config.get("mcp")).get("servers")).get(server))
    return {
        key: value
        for key, value in _dict(entry.get("env")).items()
        if isinstance(value, str) and value.strip() and not value.startswith("<")
    }
