"""The `/ws` endpoint: first-message auth, backlog, live push, acknowledgements.

Credentials never travel in the URL: the first frame carries the key. After
`auth_ok` the client gets every message after `since` (or everything not yet
acknowledged), oldest first, then live frames as sends commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from ..errors import Unauthorized
from ..services import agents as agent_service
from ..services import frames
from ..services import messages as message_service
from ..services.context import AgentRef, Services
from ..services.delivery import CLOSE_REPLACED, Subscriber

log = logging.getLogger(__name__)

router = APIRouter()

CLOSE_BAD_AUTH = 4001
CLOSE_AUTH_TIMEOUT = 4008
BACKLOG_PAGE = 500
_REASONS = {CLOSE_REPLACED: "replaced", 1013: "too slow; reconnect to resume", 1001: "going away"}


@router.websocket("/ws")
async def websocket_endpoint(websocket: WebSocket) -> None:
    svc: Services = websocket.app.state.services
    await websocket.accept()
    try:
        async with asyncio.timeout(svc.settings.ws_auth_timeout_seconds):
            first = await websocket.receive()
    except TimeoutError:
        await websocket.close(CLOSE_AUTH_TIMEOUT, "no auth frame within the time limit")
        return
    if first["type"] == "websocket.disconnect":
        return
    auth = _parse_auth(first.get("text") or first.get("bytes"))
    if auth is None:
        await websocket.close(CLOSE_BAD_AUTH, 'first frame must be {"type":"auth","api_key":...}')
        return
    api_key, since = auth
    try:
        agent = await agent_service.authenticate(svc, api_key)
    except Unauthorized as exc:
        await websocket.close(CLOSE_BAD_AUTH, exc.message)
        return
    await _serve(websocket, svc, agent, since)


def _parse_auth(raw: str | bytes | None) -> tuple[str, int | None] | None:
    if raw is None:
        return None
    try:
        frame = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(frame, dict) or frame.get("type") != "auth":
        return None
    api_key, since = frame.get("api_key"), frame.get("since")
    if not isinstance(api_key, str) or len(api_key) > 200:
        return None
    if since is not None and (not isinstance(since, int) or isinstance(since, bool) or since < 0):
        return None
    return api_key, since


async def _serve(websocket: WebSocket, svc: Services, agent: AgentRef, since: int | None) -> None:
    # Subscribe before reading the backlog: a message committed in between is
    # then in the backlog, in the queue, or both (the writer skips repeats).
    subscriber = svc.hub.subscribe(agent.id)
    tasks: list[asyncio.Task[Any]] = []
    try:
        await websocket.send_text(frames.auth_ok(agent.id, agent.name))
        tasks = [
            asyncio.create_task(_write(websocket, svc, agent, subscriber, since)),
            asyncio.create_task(_read(websocket, svc, agent)),
            asyncio.create_task(subscriber.closed.wait()),
        ]
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                error = task.exception()
                if not isinstance(error, WebSocketDisconnect | OSError | RuntimeError):
                    log.error("websocket of %s failed", agent.name, exc_info=error)
        if subscriber.close_code is not None:
            with contextlib.suppress(Exception):
                await websocket.close(
                    subscriber.close_code, _REASONS.get(subscriber.close_code, "")
                )
    except WebSocketDisconnect:
        pass
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        svc.hub.unsubscribe(subscriber)


async def _write(
    websocket: WebSocket, svc: Services, agent: AgentRef, subscriber: Subscriber, since: int | None
) -> None:
    unacked_only = since is None
    after = await message_service.ack_seq(svc, agent) if since is None else since
    subscriber.last_sent_seq = after
    while True:
        page = await message_service.incoming_after(svc, agent, after, unacked_only, BACKLOG_PAGE)
        for message in page:
            await websocket.send_text(frames.message(message))
            subscriber.last_sent_seq = message.seq
        if len(page) < BACKLOG_PAGE:
            break
        after = page[-1].seq
    while True:
        item = await subscriber.queue.get()
        if item is None:
            return
        seq, frame = item
        if seq is not None:
            if seq <= subscriber.last_sent_seq:
                continue
            subscriber.last_sent_seq = seq
        await websocket.send_text(frame)


async def _read(websocket: WebSocket, svc: Services, agent: AgentRef) -> None:
    while True:
        raw = await websocket.receive_text()
        try:
            frame = json.loads(raw)
        except ValueError:
            await _send_error(websocket, "frames must be JSON objects")
            continue
        kind = frame.get("type") if isinstance(frame, dict) else None
        if kind == "ack":
            up_to = frame.get("up_to_seq")
            if not isinstance(up_to, int) or isinstance(up_to, bool) or up_to < 0:
                await _send_error(websocket, "ack needs a non-negative integer up_to_seq")
                continue
            await message_service.ack_up_to(svc, agent, up_to)
        elif kind == "ping":
            await websocket.send_text('{"type":"pong"}')
        else:
            await _send_error(websocket, f"unknown frame type {kind!r}; expected ack or ping")


async def _send_error(websocket: WebSocket, message: str) -> None:
    await websocket.send_text(
        json.dumps({"type": "error", "error": "validation_error", "message": message})
    )
