"""Request dependencies: the services, and the authenticated agent (with its rate limit)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from ..errors import RateLimited
from ..services import agents as agent_service
from ..services.context import AgentRef, Services
from ..services.messages import SendGate

_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer amb_...")
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="X-API-Key: amb_...")


def get_services(request: Request) -> Services:
    return request.app.state.services


def get_send_gate(request: Request) -> SendGate:
    return request.app.state.send_gate


async def current_agent(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key_header)],
) -> AgentRef:
    svc: Services = request.app.state.services
    agent = await agent_service.authenticate(svc, bearer.credentials if bearer else api_key)
    wait = svc.request_rate.take(agent.id)
    if wait > 0:
        raise RateLimited("too many requests for this API key; slow down", retry_after=wait)
    return agent


ServicesDep = Annotated[Services, Depends(get_services)]
AgentDep = Annotated[AgentRef, Depends(current_agent)]
SendGateDep = Annotated[SendGate, Depends(get_send_gate)]


def client_address(request: Request) -> str:
    svc: Services = request.app.state.services
    if svc.settings.trust_forwarded_for:
        forwarded = request.headers.get("x-forwarded-for")
        if forwarded:
            return forwarded.split(",")[0].strip()
    return request.client.host if request.client else "unknown"
