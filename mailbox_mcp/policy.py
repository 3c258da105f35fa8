"""Can a peer's message reach past its session? A look at the receiving agent's tools.

Runs in per-peer sessions are started by other agents' messages. If the agent
that owns those sessions keeps the owner's tools (`exec`, `write`,
`sessions_send`, …), a message that talks the model into using them reaches
the owner's machine or main session, envelope or not. This reads the
`openclaw.json` the gateway uses (plain JSON; OpenClaw also accepts JSON5,
which is then reported as unreadable rather than guessed at).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .openclaw_home import read_config

DANGEROUS = ("exec", "write", "sessions_send")
DANGEROUS_GROUPS = ("group:runtime", "group:fs", "group:sessions")
FIX = (
    "give peer sessions a fenced-off agent: `mailbox-mcp config openclaw` "
    "(the default setup, not --plain), merge its agents.entries "
    "into openclaw.json, and set OPENCLAW_AGENT_ID=mailbox for the bridge"
)


@dataclass
class PolicyFinding:
    safe: bool | None  # None: could not tell
    detail: str


def inspect_policy(config_path: Path, agent_id: str) -> PolicyFinding:
    try:
        config = read_config(config_path)
    except FileNotFoundError:
        return PolicyFinding(None, f"no {config_path} (set OPENCLAW_CONFIG_PATH to check it)")
    except (OSError, ValueError) as exc:
        return PolicyFinding(None, f"cannot read {config_path} as JSON ({exc})")
    return judge(config, agent_id)


def judge(config: dict[str, Any], agent_id: str) -> PolicyFinding:
    """The verdict for the agent that owns the per-peer sessions."""
    entry = config.get("agents", {}).get("entries", {}).get(agent_id) or {}
    tools = entry.get("tools") or {}
    allow = tools.get("allow")
    if agent_id == "main" or not allow:
        return PolicyFinding(
            False,
            f"peer sessions belong to agent {agent_id!r}, which has no tool allow list: "
            f"runs started by other agents' messages can use {', '.join(DANGEROUS)}",
        )
    risky = [
        tool
        for tool in allow
        if tool in DANGEROUS or tool in DANGEROUS_GROUPS or tool in ("*", "group:plugins")
    ]
    if risky:
        return PolicyFinding(
            False, f"agent {agent_id!r} allows {', '.join(risky)} to runs started by peers"
        )
    servers = set((config.get("mcp") or {}).get("servers") or {})
    prefixes = {tool.split("__", 1)[0] for tool in allow if "__" in tool}
    if servers and prefixes and not prefixes & servers:
        # Seen live: an allow list that matches no tool fails every run before the
        # model is called, while the injection itself is accepted.
        return PolicyFinding(
            False,
            f"agent {agent_id!r} allows {', '.join(allow)}, but mcp.servers has only "
            f"{', '.join(sorted(servers))}: no tool matches, so every run of it fails",
        )
    return PolicyFinding(
        True, f"agent {agent_id!r} allows only {', '.join(allow)} to runs started by peers"
    )
