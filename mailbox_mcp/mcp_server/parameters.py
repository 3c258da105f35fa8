"""Parameter types that several tools share (they become the tools' JSON schemas)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from mailbox_mcp.inbound import envelope

__all__ = ["PeerName"]

PeerName = Annotated[
    str,
    Field(
        description="The other agent's mailbox name (lowercase letters, digits, dashes)",
        pattern=envelope.AGENT_NAME_PATTERN,
    ),
]
