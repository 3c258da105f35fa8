"""Ready-to-paste configuration for the LLM hosts that start the bridge."""

from __future__ import annotations

import sys
from typing import Any

from mailbox_mcp.settings import BridgeSettings

TOKEN_PLACEHOLDER = "<the gateway token: gateway.auth.token in openclaw.json>"
SERVE_URL = "http://127.0.0.1:8766/mcp"


def _env(settings: BridgeSettings, include_key: bool) -> dict[str, str]:
    env = {
        "MAILBOX_SERVER_URL": settings.server_url,
        # The key lives here (0600) after `mailbox-mcp register`; the bridge reads it.
        "MAILBOX_STATE_DIR": str(settings.state_dir),
    }
    key = settings.resolved_api_key()
    if include_key and key:
        env["MAILBOX_API_KEY"] = key
    return env


def _command(settings: BridgeSettings) -> dict[str, Any]:
    # The interpreter that has the bridge installed, so no PATH or venv activation is
    # needed. `-P` keeps the working directory off sys.path, and cwd is our own state
    # dir: a host that starts servers in a workspace the model can write to must not
    # let a planted `httpx.py` run inside the bridge, next to the API key.
    return {
        "command": sys.executable,
        "args": ["-P", "-m", "mailbox_mcp"],
        "cwd": str(settings.state_dir),
    }


def _server_entry(
    settings: BridgeSettings,
    agent_id: str,
    include_key: bool,
    serve_url: str | None,
    serve_token: str | None,
) -> dict[str, Any]:
    """`mcp.servers.mailbox`: a stdio bridge per session, or the one `serve` process."""
    if serve_url is not None:
        # One process for all sessions; its own environment (the systemd unit) holds the
        # mailbox key and the gateway token, so OpenClaw only needs the bearer token.
        token = serve_token if (include_key and serve_token) else serve_token_placeholder(settings)
        return {
            "url": serve_url,
            "transport": "streamable-http",
            "headers": {"Authorization": f"Bearer {token}"},
        }
    env = _env(settings, include_key)
    env["OPENCLAW_GATEWAY_URL"] = settings.gateway_url or "http://127.0.0.1:18789"
    gateway_token = settings.gateway_token.get_secret_value() if settings.gateway_token else None
    env["OPENCLAW_GATEWAY_TOKEN"] = (
        gateway_token if (include_key and gateway_token) else TOKEN_PLACEHOLDER
    )
    env["OPENCLAW_AGENT_ID"] = agent_id
    return {**_command(settings), "env": env}


def serve_token_placeholder(settings: BridgeSettings) -> str:
    return f"<the serve token: MAILBOX_SERVE_TOKEN, or {settings.state_dir / 'serve_token'}>"


def openclaw_main_config(
    settings: BridgeSettings,
    *,
    include_key: bool = False,
    serve_url: str | None = None,
    serve_token: str | None = None,
) -> dict[str, Any]:
    """The plain setup: per-peer sessions belong to the owner's agent (`main`), and
    messages enter through HTTP `sessions_send`, which `gateway.tools.allow` must list.
    Those sessions have the owner's tools: `openclaw_dedicated_config` is the safe one."""
    entry = _server_entry(settings, settings.agent_id, include_key, serve_url, serve_token)
    return {
        "mcp": {"servers": {"mailbox": entry}},
        "gateway": {"tools": {"allow": ["sessions_send"]}},
    }


# What the dedicated peer agent may use: the reply to the peer whose message started
# its run (contract, section 9), and nothing that reaches the owner's other mail, machine,
# files, other sessions, automation, messaging, nodes or UI. An allow list, since a deny
# list alone still offered file_write and web_fetch (OPENCLAW.md).
PEER_AGENT_ALLOW = "mailbox__mailbox_reply"
PEER_AGENT_DENY = [
    "group:runtime",
    "group:fs",
    "group:sessions",
    "group:automation",
    "group:messaging",
    "group:nodes",
    "group:ui",
]
MAIN_WORKSPACE_PLACEHOLDER = "<the main agent's existing workspace folder>"


def openclaw_dedicated_config(
    settings: BridgeSettings,
    *,
    include_key: bool = False,
    agent_id: str = "mailbox",
    workspace: str | None = None,
    main_workspace: str | None = None,
    serve_url: str | None = None,
    serve_token: str | None = None,
) -> dict[str, Any]:
    """The safe setup: peer sessions belong to a fenced-off agent whose one tool is
    `mailbox_reply`; messages enter through the gateway's `agent` method, so no
    `gateway.tools.allow` is needed at all."""
    entry = _server_entry(settings, agent_id, include_key, serve_url, serve_token)
    return {
        "mcp": {"servers": {"mailbox": entry}},
        "agents": {
            "entries": {
                # Listing agents makes unlisted ones unknown: main stays, in its own workspace.
                "main": {"workspace": main_workspace or MAIN_WORKSPACE_PLACEHOLDER},
                agent_id: {
                    "workspace": workspace or str(settings.state_dir / "openclaw-workspace"),
                    "tools": {"allow": [PEER_AGENT_ALLOW], "deny": PEER_AGENT_DENY},
                },
            }
        },
        "gateway": {"bind": "loopback"},
    }


def claude_config(settings: BridgeSettings, *, include_key: bool = False) -> dict[str, Any]:
    entry = {**_command(settings), "env": _env(settings, include_key)}
    entry.pop("cwd")  # Claude Desktop's format has no cwd; -P alone keeps it off sys.path
    return {"mcpServers": {"mailbox": entry}}


def systemd_unit(settings: BridgeSettings, command: str, agent_id: str | None = None) -> str:
    """A systemd user unit running `mailbox-mcp serve` or `listen` always, restarting it.

    Secrets stay out of the unit: the API key is read from the state dir, the
    gateway token from an EnvironmentFile the owner writes (0600).
    """
    description = {
        "serve": "Agent Mailbox bridge: listener and MCP over HTTP on loopback",
        "listen": "Agent Mailbox bridge: listener (delivery into OpenClaw)",
    }[command]
    environment = "\n".join(
        f"Environment={key}={value}"
        for key, value in {
            "MAILBOX_SERVER_URL": settings.server_url,
            "MAILBOX_STATE_DIR": str(settings.state_dir),
            "OPENCLAW_GATEWAY_URL": settings.gateway_url or "http://127.0.0.1:18789",
            "OPENCLAW_AGENT_ID": agent_id or settings.agent_id,
        }.items()
    )
    return f"""\
# ~/.config/systemd/user/mailbox-mcp-{command}.service
#   put OPENCLAW_GATEWAY_TOKEN=... in {settings.state_dir}/env (chmod 600), then:
#   systemctl --user daemon-reload && systemctl --user enable --now mailbox-mcp-{command}
[Unit]
Description={description}
After=network-online.target

[Service]
ExecStart={sys.executable} -P -m mailbox_mcp {command}
{environment}
EnvironmentFile=-{settings.state_dir}/env
Restart=on-failure
RestartSec=2
NoNewPrivileges=true
PrivateTmp=true

[Install]
WantedBy=default.target
"""
