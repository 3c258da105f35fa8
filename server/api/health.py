"""Health: is the server up and its database reachable."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

import mailbox_wire as wire

from .deps import ServicesDep

router = APIRouter(tags=["health"])


@router.get("/health", response_model=wire.Health, responses={503: {"model": wire.Health}})
async def health(svc: ServicesDep) -> JSONResponse:
    if await svc.db.ping():
        return JSONResponse({"status": "ok", "database": "ok"})
    return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
