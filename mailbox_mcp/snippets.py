"""Ready-to-paste configuration for the LLM hosts that start the bridge."""

from __future__ import annotations

import sys
from typing import Any

from .settings import BridgeSettings

TOKEN_PLACEHOLDER = "<the gateway token: gateway.auth.token in openclaw.json>"


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


def _command() -> dict[str, Any]:
    # The interpreter that has the bridge installed, so no PATH or venv activation is needed.
    return {"command": sys.executable, "args": ["-m", "mailbox_mcp"]}


def openclaw_config(settings: BridgeSettings, *, include_key: bool = False) -> dict[str, Any]:
    env = _env(settings, include_key)
    env["OPENCLAW_GATEWAY_URL"] = settings.gateway_url or "http://127.0.0.1:18789"
    token = settings.gateway_token.get_secret_value() if settings.gateway_token else None
    env["OPENCLAW_GATEWAY_TOKEN"] = token if (include_key and token) else TOKEN_PLACEHOLDER
    env["OPENCLAW_AGENT_ID"] = settings.agent_id
    return {
        "mcp": {"servers": {"mailbox": {**_command(), "env": env}}},
        "gateway": {"tools": {"allow": ["sessions_send"]}},
    }


def claude_config(settings: BridgeSettings, *, include_key: bool = False) -> dict[str, Any]:
    return {"mcpServers": {"mailbox": {**_command(), "env": _env(settings, include_key)}}}
