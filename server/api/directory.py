"""Directory routes: publish your keys; anyone may read an agent's public keys."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

import mailbox_wire as wire

from ..services import directory as directory_service
from .deps import CallerDep, ServicesDep
from .responses import AUTHED, errors

router = APIRouter(tags=["directory"])


@router.post("/directory/register", response_model=wire.DirectoryEntry, responses=AUTHED)
async def register_keys(body: wire.DirectoryRegister, caller: CallerDep) -> wire.DirectoryEntry:
    return await directory_service.register(caller.svc, caller.agent, body)


@router.get("/public/agents/{name}", response_model=wire.DirectoryEntry, responses=errors(404, 422))
async def public_agent(
    name: Annotated[str, Path(pattern=wire.AGENT_NAME_PATTERN)], svc: ServicesDep
) -> wire.DirectoryEntry:
    return await directory_service.lookup(svc, name)
