"""Can a peer's message reach past its reply? A look at the receiving agent's tools.

Runs in per-peer sessions are started by other agents' messages. The agent
that owns those sessions should reach exactly one mailbox tool, the reply
(contract, section 9): with `mailbox__*` a fooled run can read every other
conversation, send to any peer and approve connection codes. If it keeps the
owner's own tools (`exec`, `write`, `sessions_send`, ...), a message that talks
the model into using them reaches the owner's machine or main session. This
reads the `openclaw.json` the gateway uses (JSON5, through config.py); a file
that is not, or not shaped as OpenClaw's config, is reported, never guessed at.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mailbox_mcp.openclaw.config import OpenClawConfig, OpenClawConfigError, load_config

DANGEROUS = ("exec", "write", "sessions_send")
DANGEROUS_GROUPS = ("group:runtime", "group:fs", "group:sessions")
# What the peer agent may reach: the reply, nothing else of ours.
REPLY_TOOL = "mailbox_reply"
OWNER_TOOLS = (
    "mailbox_send",
    "mailbox_inbox",
    "mailbox_history",
    "mailbox_connect",
    "mailbox_pending",
    "mailbox_approve",
    "mailbox_connections",
    "mailbox_status",
)
# Policy entries that stand for every MCP tool at once.
_ALL_MCP = ("*", "group:plugins", "bundle-mcp")
FIX = (
    "give peer sessions a fenced-off agent: `mailbox-mcp config openclaw` "
    "(the default setup, not --plain), merge its agents.entries "
    "into openclaw.json, and set OPENCLAW_AGENT_ID=mailbox for the bridge"
)


def reply_only_fix(agent_id: str, server: str = "mailbox") -> str:
    return (
        f"openclaw config set agents.entries.{agent_id}.tools.allow "
        f"'[\"{server}__{REPLY_TOOL}\"]' --strict-json"
    )


@dataclass
class PolicyFinding:
    safe: bool | None  # None: could not tell
    detail: str
    # A dedicated peer agent that reaches other mailbox tools: doctor fails with `fix`.
    reaches_owner_tools: bool = False
    fix: str | None = None


def inspect_policy(config_path: Path, agent_id: str) -> PolicyFinding:
    try:
        config = load_config(config_path)
    except FileNotFoundError:
        return PolicyFinding(None, f"no {config_path} (set OPENCLAW_CONFIG_PATH to check it)")
    except OSError as exc:
        return PolicyFinding(None, f"cannot read {config_path} ({exc})")
    except OpenClawConfigError as exc:
        return PolicyFinding(None, f"cannot check {exc.message}", fix=exc.fix)
    return judge(config, agent_id)


def mailbox_servers(config: OpenClawConfig) -> list[str]:
    """The names `mcp.servers` gives our bridge (`mailbox` unless renamed)."""
    ours = [
        name
        for name, entry in config.mcp.servers.items()
        if name == "mailbox" or "mailbox_mcp" in entry.model_dump_json() or "mailbox-mcp" in name
    ]
    return sorted(ours) or ["mailbox"]


def judge(config: OpenClawConfig | Mapping[str, object], agent_id: str) -> PolicyFinding:
    """The verdict for the agent that owns the per-peer sessions.

    Raises OpenClawConfigError for a mapping not shaped as OpenClaw's config."""
    config = OpenClawConfig.of(config)
    allow = list(config.agent(agent_id).tools.allow)
    if agent_id == "main" or not allow:
        return PolicyFinding(
            False,
            f"peer sessions belong to agent {agent_id!r}, which has no tool allow list: "
            f"runs started by other agents' messages can use {', '.join(DANGEROUS)} and every "
            "mailbox tool",
        )
    servers = mailbox_servers(config)
    owner_tools = [f"{s}__{tool}" for s in servers for tool in OWNER_TOOLS]
    reached = sorted(
        {
            pattern
            for pattern in allow
            if pattern in _ALL_MCP or any(fnmatch.fnmatchcase(t, pattern) for t in owner_tools)
        }
    )
    if reached:
        return PolicyFinding(
            False,
            f"agent {agent_id!r} allows {', '.join(reached)}: runs started by peers' messages "
            "reach the owner's mailbox tools (read every conversation, send to any peer, "
            "approve codes), not only the reply",
            reaches_owner_tools=True,
            fix=reply_only_fix(agent_id, servers[0]),
        )
    risky = [tool for tool in allow if tool in DANGEROUS or tool in DANGEROUS_GROUPS]
    if risky:
        return PolicyFinding(
            False, f"agent {agent_id!r} allows {', '.join(risky)} to runs started by peers"
        )
    replies = [f"{s}__{REPLY_TOOL}" for s in servers]
    if not any(fnmatch.fnmatchcase(t, p) for t in replies for p in allow):
        # Seen live: an allow list that matches no tool fails every run before the
        # model is called, while the injection itself is accepted.
        return PolicyFinding(
            False,
            f"agent {agent_id!r} allows {', '.join(allow)}, which does not match "
            f"{replies[0]}: peer runs cannot reply, and with no tool matched every run fails",
            reaches_owner_tools=True,
            fix=reply_only_fix(agent_id, servers[0]),
        )
    return PolicyFinding(
        True, f"agent {agent_id!r} allows only {', '.join(allow)} to runs started by peers"
    )
