"""`python -m mailbox_mcp`: the stdio MCP server (stdout belongs to the protocol)."""

import sys

from .cli import run_stdio

sys.exit(run_stdio())
