"""Message routes: send, read one, inbox, acknowledge, sessions, history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

import mailbox_wire as wire

from ..services import connections as connection_service
from ..services import history as history_service
from ..services import inbox as inbox_service
from ..services import message_views
from ..services import messages as message_service
from ..services.message_views import MAX_PAGE
from .deps import CallerDep, send_gate
from .responses import AUTHED, errors, json_response

router = APIRouter(tags=["messages"])

IdPath = Annotated[str, Path(pattern=wire.OBJECT_ID_PATTERN)]


@router.post(
    "/messages/send",
    status_code=201,
    response_model=wire.SendResponse,
    responses={**AUTHED, **errors(403, 404, 409, 413, 503)},
)
async def send(body: wire.SendRequest, caller: CallerDep, request: Request) -> Response:
    """Send a message; answered after it is committed.

    At most `MAILBOX_PAIR_MESSAGES_PER_HOUR` messages (default 120) go from one agent
    to another in any hour: past that, 429 `rate_limited` with `Retry-After`. An
    idempotent replay is not counted, nor is a send that fails.
    """
    sent = await message_service.send(caller.svc, send_gate(request), caller.agent, body)
    return json_response(sent, 201)


@router.get(
    "/messages/{message_id}", response_model=wire.Message, responses={**AUTHED, **errors(404)}
)
async def get_message(message_id: IdPath, caller: CallerDep) -> Response:
    """One message, for its sender or recipient; `delivered_at` is set once the
    recipient acknowledged it."""
    return json_response(await message_views.get_message(caller.svc, caller.agent, message_id))


@router.get("/inbox", response_model=wire.Inbox, responses=AUTHED)
async def inbox(
    caller: CallerDep,
    since: Annotated[int | None, Query(ge=0, le=2**62)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
) -> Response:
    found, next_since = await inbox_service.pending_messages(caller.svc, caller.agent, since, limit)
    requests = await connection_service.incoming_pending(caller.svc, caller.agent)
    return json_response(
        wire.Inbox(messages=found, connection_requests=requests, next_since=next_since)
    )


@router.post("/inbox/ack", response_model=wire.AckResponse, responses={**AUTHED, **errors(404)})
async def ack(body: wire.AckRequest, caller: CallerDep) -> Response:
    return json_response(await inbox_service.ack(caller.svc, caller.agent, body))


@router.get("/sessions", response_model=wire.SessionList, responses=AUTHED)
async def list_sessions(
    caller: CallerDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> wire.SessionList:
    return await history_service.list_sessions(caller.svc, caller.agent, limit)


@router.get(
    "/sessions/{session_id}/history",
    response_model=wire.SessionHistory,
    responses={**AUTHED, **errors(404)},
)
async def history(
    session_id: IdPath,
    caller: CallerDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    before: Annotated[str | None, Query(pattern=wire.OBJECT_ID_PATTERN)] = None,
) -> wire.SessionHistory:
    return await history_service.history(caller.svc, caller.agent, session_id, limit, before)
