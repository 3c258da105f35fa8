"""Connection routes: request, pending, approve, reject, list, revoke."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

import mailbox_wire as wire

from ..services import connections as connection_service
from .deps import CallerDep
from .responses import AUTHED, errors

router = APIRouter(prefix="/connections", tags=["connections"])


@router.post(
    "/request",
    status_code=201,
    response_model=wire.ConnectionRequestCreated,
    responses={**AUTHED, **errors(400, 404, 409)},
)
async def request_connection(
    body: wire.ConnectionRequestCreate, caller: CallerDep
) -> wire.ConnectionRequestCreated:
    return await connection_service.request(caller.svc, caller.agent, body)


@router.get("/pending", response_model=wire.PendingConnections, responses=AUTHED)
async def pending(caller: CallerDep) -> wire.PendingConnections:
    return await connection_service.pending(caller.svc, caller.agent)


@router.post(
    "/approve",
    response_model=wire.ApproveResponse,
    responses={**AUTHED, **errors(404, 409, 410)},
)
async def approve(body: wire.ApproveRequest, caller: CallerDep) -> wire.ApproveResponse:
    return await connection_service.approve(caller.svc, caller.agent, body)


@router.post("/reject", response_model=wire.RejectResponse, responses={**AUTHED, **errors(404)})
async def reject(body: wire.RejectRequest, caller: CallerDep) -> wire.RejectResponse:
    return await connection_service.reject(caller.svc, caller.agent, body)


@router.get("", response_model=wire.ConnectionList, responses=AUTHED)
async def list_connections(caller: CallerDep) -> wire.ConnectionList:
    return await connection_service.list_connections(caller.svc, caller.agent)


@router.delete(
    "/{peer_name}", response_model=wire.RevokeResponse, responses={**AUTHED, **errors(404)}
)
async def revoke(
    peer_name: Annotated[str, Path(pattern=wire.AGENT_NAME_PATTERN)],
    caller: CallerDep,
) -> wire.RevokeResponse:
    return await connection_service.revoke(caller.svc, caller.agent, peer_name)
