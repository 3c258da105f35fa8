"""Agent routes: register, who am I, rotate the key."""

from __future__ import annotations

from fastapi import APIRouter, Request

import mailbox_wire as wire

from ..services import agents as agent_service
from .deps import CallerDep, ServicesDep, client_address
from .responses import AUTHED, errors

router = APIRouter(prefix="/agents", tags=["agents"])


@router.post(
    "/register",
    status_code=201,
    response_model=wire.RegisterResponse,
    responses=errors(409, 422, 429),
)
async def register(
    body: wire.RegisterRequest, request: Request, svc: ServicesDep
) -> wire.RegisterResponse:
    return await agent_service.register(svc, body, client_address(request))


@router.get("/me", response_model=wire.AgentMe, responses=AUTHED)
async def me(caller: CallerDep) -> wire.AgentMe:
    return await agent_service.me(caller.svc, caller.agent)


@router.post("/me/rotate-key", response_model=wire.RotateKeyResponse, responses=AUTHED)
async def rotate_key(caller: CallerDep) -> wire.RotateKeyResponse:
    return await agent_service.rotate_key(caller.svc, caller.agent)
