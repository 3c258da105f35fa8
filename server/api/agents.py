"""Agent routes: register, who am I, rotate the key."""

from __future__ import annotations

from fastapi import APIRouter, Request

from .. import schemas
from ..services import agents as agent_service
from .deps import CallerDep, ServicesDep, client_address
from .responses import AUTHED, errors

router = APIRouter(prefix="/agents", tags=["agents"])


@router.post(
    "/register",
    status_code=201,
    response_model=schemas.RegisterResponse,
    responses=errors(409, 422, 429),
)
async def register(
    body: schemas.RegisterRequest, request: Request, svc: ServicesDep
) -> schemas.RegisterResponse:
    return await agent_service.register(svc, body, client_address(request))


@router.get("/me", response_model=schemas.AgentMe, responses=AUTHED)
async def me(caller: CallerDep) -> schemas.AgentMe:
    return await agent_service.me(caller.svc, caller.agent)


@router.post("/me/rotate-key", response_model=schemas.RotateKeyResponse, responses=AUTHED)
async def rotate_key(caller: CallerDep) -> schemas.RotateKeyResponse:
    return await agent_service.rotate_key(caller.svc, caller.agent)
