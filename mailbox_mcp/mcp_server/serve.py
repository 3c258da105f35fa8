"""Always-on bridge: `mailbox-mcp serve` (listener + MCP over HTTP) and `listen`.

OpenClaw starts a stdio MCP server per session, lazily: none right after the
gateway starts, twenty for twenty sessions. `serve` is one long-running
process instead: the listener runs from the start, and every session reaches
the same tools over streamable HTTP (`mcp.servers.<name>.url` with a bearer
token in `headers`). It binds loopback unless told otherwise, answers 401
without the token, and never shows the mailbox API key to an MCP client.
`listen` is the listener alone, for hosts that keep using stdio for tools.
"""

from __future__ import annotations

import logging
import sys

import anyio
import uvicorn

from mailbox_mcp.bridge import Bridge
from mailbox_mcp.errors import ConfigError
from mailbox_mcp.mcp_server.app import build_server
from mailbox_mcp.mcp_server.serve_auth import BearerToken, serve_token
from mailbox_mcp.settings import BridgeSettings

log = logging.getLogger(__name__)

MCP_PATH = "/mcp"


async def run_serve(settings: BridgeSettings, host: str, port: int) -> None:
    bridge = Bridge(settings)
    mcp = build_server(settings, bridge)
    app = BearerToken(
        mcp.streamable_http_app(streamable_http_path=MCP_PATH, host=host), serve_token(settings)
    )
    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("serving on %s: reachable beyond this machine; keep the token secret", host)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    print(
        f"mailbox-mcp: serving MCP on http://{host}:{port}{MCP_PATH} "
        f"(token in {settings.state_dir / 'serve_token'} or MAILBOX_SERVE_TOKEN)",
        file=sys.stderr,
    )
    async with bridge.running():
        await server.serve()


async def run_listen(settings: BridgeSettings) -> None:
    if not settings.push_mode:
        raise ConfigError(
            "`listen` injects into OpenClaw: set OPENCLAW_GATEWAY_URL and OPENCLAW_GATEWAY_TOKEN"
        )
    bridge = Bridge(settings)
    bridge.require_key()
    async with bridge.running():
        print("mailbox-mcp: listening; Ctrl-C to stop", file=sys.stderr)
        await anyio.sleep_forever()
