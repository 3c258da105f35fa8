"""`python -m mailbox_mcp`: the stdio MCP server (stdout belongs to the protocol).

With arguments it is the owner's command line: `python -m mailbox_mcp serve`.
"""

import sys

from mailbox_mcp.owner.cli import main, run_stdio

sys.exit(main(sys.argv[1:]) if len(sys.argv) > 1 else run_stdio())
