"""`python -m mailbox_mcp`: the stdio MCP server (stdout belongs to the protocol).

With arguments it is the owner's command line: `python -m mailbox_mcp serve`. Without,
only the server's modules are imported (not every owner command's): see
`mcp_server/stdio.py`.
"""

import sys

if len(sys.argv) > 1:
    from mailbox_mcp.owner.cli import main

    sys.exit(main(sys.argv[1:]))
else:
    from mailbox_mcp.mcp_server.stdio import run_stdio

    sys.exit(run_stdio())
