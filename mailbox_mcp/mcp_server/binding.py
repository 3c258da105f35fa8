"""How a tool becomes an MCP tool: its metadata, its bridge bound in, its errors mapped.

A tool is a module-level async function whose first parameter is the `Bridge`
(the state every tool works on); `bridge_tool` records its name, title,
description and annotations. At registration `bind` hides that first
parameter from the MCP schema (the model never sees it) and turns every
`BridgeError` into a `ToolError` that says what to do next, in one place
(`error_map.tool_error`) instead of in each tool.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations

from mailbox_mcp.bridge import Bridge
from mailbox_mcp.errors import BridgeError
from mailbox_mcp.mcp_server.error_map import tool_error

__all__ = ["READ_ONLY", "WRITES", "BridgeTool", "bind", "bridge_tool"]

READ_ONLY = ToolAnnotations(readOnlyHint=True, destructiveHint=False, openWorldHint=True)
WRITES = ToolAnnotations(
    readOnlyHint=False, destructiveHint=False, idempotentHint=False, openWorldHint=True
)

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class BridgeTool(Generic[P, R]):
    """A tool function and what the MCP client is told about it."""

    fn: Callable[Concatenate[Bridge, P], Awaitable[R]]
    name: str
    title: str
    description: str
    annotations: ToolAnnotations

    def register(self, mcp: MCPServer[Any], bridge: Bridge) -> None:
        mcp.add_tool(
            bind(self.fn, bridge),
            name=self.name,
            title=self.title,
            description=self.description,
            annotations=self.annotations,
        )


def bridge_tool(
    *, name: str, title: str, description: str, annotations: ToolAnnotations
) -> Callable[[Callable[Concatenate[Bridge, P], Awaitable[R]]], BridgeTool[P, R]]:
    def record(fn: Callable[Concatenate[Bridge, P], Awaitable[R]]) -> BridgeTool[P, R]:
        return BridgeTool(fn, name, title, description, annotations)

    return record


def bind(
    fn: Callable[Concatenate[Bridge, P], Awaitable[R]], bridge: Bridge
) -> Callable[P, Awaitable[R]]:
    """`fn` with `bridge` as its first argument and bridge errors as tool errors.

    The MCP server builds the tool's JSON schema from the signature: the bound
    one is `fn`'s without its first parameter, annotations already evaluated.
    """
    signature = inspect.signature(fn, eval_str=True)
    parameters = list(signature.parameters.values())[1:]

    @functools.wraps(fn)
    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(bridge, *args, **kwargs)
        except BridgeError as exc:
            raise tool_error(exc) from None

    call.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    call.__annotations__ = {p.name: p.annotation for p in parameters} | {
        "return": signature.return_annotation
    }
    del call.__wrapped__  # the schema is the bound signature's, not fn's
    return call
