"""Connection routes: request, pending, approve, reject, list, revoke."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from .. import schemas
from ..services import connections as connection_service
from .deps import CallerDep
from .responses import AUTHED, errors

router = APIRouter(prefix="/connections", tags=["connections"])


@router.post(
    "/request",
    status_code=201,
    response_model=schemas.ConnectionRequestCreated,
    responses={**AUTHED, **errors(400, 404, 409)},
)
async def request_connection(
    body: schemas.ConnectionRequestCreate, caller: CallerDep
) -> schemas.ConnectionRequestCreated:
    return await connection_service.request(caller.svc, caller.agent, body)


@router.get("/pending", response_model=schemas.PendingConnections, responses=AUTHED)
async def pending(caller: CallerDep) -> schemas.PendingConnections:
    return await connection_service.pending(caller.svc, caller.agent)


@router.post(
    "/approve",
    response_model=schemas.ApproveResponse,
    responses={**AUTHED, **errors(404, 409, 410)},
)
async def approve(body: schemas.ApproveRequest, caller: CallerDep) -> schemas.ApproveResponse:
    return await connection_service.approve(caller.svc, caller.agent, body)


@router.post("/reject", response_model=schemas.RejectResponse, responses={**AUTHED, **errors(404)})
async def reject(body: schemas.RejectRequest, caller: CallerDep) -> schemas.RejectResponse:
    return await connection_service.reject(caller.svc, caller.agent, body)


@router.get("", response_model=schemas.ConnectionList, responses=AUTHED)
async def list_connections(caller: CallerDep) -> schemas.ConnectionList:
    return await connection_service.list_connections(caller.svc, caller.agent)


@router.delete(
    "/{peer_name}", response_model=schemas.RevokeResponse, responses={**AUTHED, **errors(404)}
)
async def revoke(
    peer_name: Annotated[str, Path(pattern=schemas.AGENT_NAME_PATTERN)],
    caller: CallerDep,
) -> schemas.RevokeResponse:
    return await connection_service.revoke(caller.svc, caller.agent, peer_name)
