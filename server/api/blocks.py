"""Block routes: an owner refuses another agent's connection requests (see services/blocks)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

import mailbox_wire as wire

from ..services import blocks as block_service
from .deps import CallerDep
from .responses import AUTHED, errors

router = APIRouter(prefix="/connections/blocks", tags=["connections"])


@router.post("", response_model=wire.Block, responses={**AUTHED, **errors(400, 404)})
async def block(body: wire.BlockRequest, caller: CallerDep) -> wire.Block:
    """Block an agent: its connection requests are accepted silently and never shown to
    you, its codes approve nothing, and a connection to it is revoked. Blocking again
    changes nothing."""
    return await block_service.block(caller.svc, caller.agent, body)


@router.get("", response_model=wire.BlockList, responses=AUTHED)
async def list_blocks(caller: CallerDep) -> wire.BlockList:
    return await block_service.list_blocks(caller.svc, caller.agent)


@router.delete(
    "/{agent_name}", response_model=wire.UnblockResponse, responses={**AUTHED, **errors(404)}
)
async def unblock(
    agent_name: Annotated[str, Path(pattern=wire.AGENT_NAME_PATTERN)],
    caller: CallerDep,
) -> wire.UnblockResponse:
    """Unblock an agent: its requests that have not expired show again."""
    return await block_service.unblock(caller.svc, caller.agent, agent_name)
