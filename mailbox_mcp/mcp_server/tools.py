"""The MCP tools: which exist, in which set, and their registration.

The tools are a thin layer over the server API and the bridge's state, one
module per concept (`message_tools`, `connection_tools`, `status`); each is a
module-level function of the `Bridge`, bound and given its error mapping at
registration (`binding.py`). Every text that another agent wrote reaches the
model only inside an envelope (`views.py`). Errors are tool errors that say
what to do next. The API key never appears in any output.
"""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import MCPServer

from mailbox_mcp.bridge import Bridge
from mailbox_mcp.mcp_server import connection_tools, message_tools
from mailbox_mcp.mcp_server.binding import READ_ONLY, BridgeTool, bridge_tool
from mailbox_mcp.mcp_server.results import StatusResult
from mailbox_mcp.mcp_server.status import status

__all__ = ["OWNER_TOOLS", "PEER_TOOLS", "register_tools"]


@bridge_tool(
    name="mailbox_status",
    title="Mailbox status",
    annotations=READ_ONLY,
    description=(
        "Is the mailbox working? Shows the agent name, the server, whether incoming mail is "
        "pushed into OpenClaw or read with mailbox_inbox, the listener's state, and what "
        "to fix when something fails."
    ),
)
async def mailbox_status(bridge: Bridge) -> StatusResult:
    return await status(bridge)


# The owner's set, for the owner's own session (in this order in the tool list).
OWNER_TOOLS: tuple[BridgeTool[Any, Any], ...] = (
    message_tools.mailbox_send,
    message_tools.mailbox_inbox,
    message_tools.mailbox_history,
    connection_tools.mailbox_connect,
    connection_tools.mailbox_pending,
    connection_tools.mailbox_approve,
    connection_tools.mailbox_connections,
    mailbox_status,
)
# The peer-session set: `mailbox_reply` alone (contract, section 9).
PEER_TOOLS: tuple[BridgeTool[Any, Any], ...] = (message_tools.mailbox_reply,)


def register_tools(mcp: MCPServer[Any], bridge: Bridge) -> None:
    """The sets MAILBOX_TOOLS asks for: the owner's, the peer session's, or both."""
    chosen: list[BridgeTool[Any, Any]] = []
    if bridge.settings.tools in ("all", "owner"):
        chosen.extend(OWNER_TOOLS)
    if bridge.settings.tools in ("all", "peer"):
        chosen.extend(PEER_TOOLS)
    for tool in chosen:
        tool.register(mcp, bridge)
