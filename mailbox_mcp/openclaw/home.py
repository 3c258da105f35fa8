"""Where the owner's OpenClaw keeps its config, and the main agent's workspace.

Only read (config.py parses it), never written: `mailbox-mcp config openclaw`
prints a patch that the owner applies. The patch must list `main` with the
workspace it has now, since listing agents makes OpenClaw give an unpinned
`main` another folder. The rules
are OpenClaw's own (docs/concepts/agent-workspace.md, 2026.9.6). The real-gateway
tests check them against `openclaw agents list --json`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mailbox_mcp.openclaw.config import OpenClawConfig, OpenClawConfigError, load_config


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


@dataclass(frozen=True)
class MainWorkspace:
    path: str
    source: str  # where it came from, for the owner to check


def main_workspace() -> MainWorkspace:
    """The workspace OpenClaw gives the `main` agent with the current config."""
    path = config_path()
    try:
        config = load_config(path)
        where = f"in {path}"
    except FileNotFoundError:
        config, where = OpenClawConfig(), ""
    except OpenClawConfigError as exc:
        config, where = OpenClawConfig(), f"; {exc}"
    except OSError as exc:
        config, where = OpenClawConfig(), f"; cannot read {path} ({exc})"
    roster = config.agents.entries
    root = _text(config.agents.defaults.workspace)
    if pinned := config.agent("main").workspace_path:
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


def _text(value: str | None) -> str | None:
    return value.strip() if value and value.strip() else None


def bridge_env(config: OpenClawConfig, server: str = "mailbox") -> dict[str, str]:
    """The environment OpenClaw starts the stdio bridge with (`mcp.servers.<server>.env`),
    without the placeholders `config openclaw` prints for secrets left out."""
    entry = config.mcp.servers.get(server)
    if entry is None:
        return {}
    return {
        key: value
        for key, value in entry.env.items()
        if value.strip() and not value.startswith("<")
    }
