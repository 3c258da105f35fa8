"""The stdio MCP server as an LLM host starts it: settings, logging to stderr, serve.

Apart from the owner's command line (`owner/cli.py`), so that `python -m mailbox_mcp`
imports only what a bridge process uses, not every owner command's modules.
"""

from __future__ import annotations

import logging
import os
import sys

from pydantic import ValidationError

from mailbox_mcp.settings import BridgeSettings


def load_settings() -> BridgeSettings:
    try:
        return BridgeSettings()
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"]) or "settings"
            lines.append(f"  {where}: {error['msg']}")
        raise SystemExit("mailbox-mcp: the settings are not valid:\n" + "\n".join(lines)) from None


def log_to_stderr() -> None:
    # stdout carries MCP (stdio) or nothing; logs always go to stderr.
    logging.basicConfig(
        level=os.environ.get("MAILBOX_LOG_LEVEL", "INFO").upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def run_stdio() -> int:
    log_to_stderr()
    settings = load_settings()
    from mailbox_mcp.mcp_server.app import build_server  # after the settings' errors

    build_server(settings).run("stdio")
    return 0
