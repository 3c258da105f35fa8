"""Request dependencies: the services, and the authenticated caller (with its rate limit).

Authentication is one plain dependency that reads the two headers itself:
FastAPI's security classes cost more per request than the whole send, and the
OpenAPI document gets the same security schemes from `openapi.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from ..errors import RateLimited
from ..services import agents as agent_service
from ..services.context import AgentRef, Services
from ..services.messages import SendGate


@dataclass(frozen=True, slots=True)
class Caller:
    agent: AgentRef
    svc: Services


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def api_key_of(request: Request) -> str | None:
    authorization = request.headers.get("authorization")
    if authorization:
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "bearer":
            return credentials.strip()
    return request.headers.get("x-api-key")


async def current_caller(request: Request) -> Caller:
    svc: Services = request.app.state.services
    agent = await agent_service.authenticate(svc, api_key_of(request))
    wait = svc.request_rate.take(agent.id)
    if wait > 0:
        raise RateLimited("too many requests for this API key; slow down", retry_after=wait)
    return Caller(agent, svc)


def send_gate(request: Request) -> SendGate:
    gate: SendGate = request.app.state.send_gate
    return gate


ServicesDep = Annotated[Services, Depends(get_services)]
CallerDep = Annotated[Caller, Depends(current_caller)]


def client_address(request: Request) -> str:
    """The client's address for per-client limits.

    Behind trusted proxies (MAILBOX_TRUSTED_PROXIES) uvicorn's ProxyHeadersMiddleware,
    installed by `create_app`, has already replaced it with the address the proxies
    saw; a client's own X-Forwarded-For entries never reach this far.
    """
    return request.client.host if request.client else "unknown"
