"""The `/ws` endpoint: first-message auth, backlog, live push, acknowledgements.

Credentials never travel in the URL: the first frame carries the key. After
`auth_ok` the client gets every message after `since` (or everything not yet
acknowledged), oldest first, then live frames as sends commit.

Acks cost the reader nothing: they go to the `AckBuffer`, which writes them
together on a short timer. They are written at once when the socket closes,
and before a `pong`, so a client that needs to know its acks are durable pings.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from ..errors import Unauthorized
from ..schemas import MAX_SEQ
from ..services import agents as agent_service
from ..services import cluster_events, frames
from ..services import inbox as inbox_service
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
    await cluster_events.announce_socket(svc, subscriber)
    # Two tasks per connection, to keep idle sockets cheap: this one reads, the
    # writer sends the backlog and then whatever the hub queues.
    writer = asyncio.create_task(_write(websocket, svc, agent, subscriber, since))
    try:
        await websocket.send_text(frames.auth_ok(agent.id, agent.name))
        await _read(websocket, svc, agent)
    except (WebSocketDisconnect, OSError, RuntimeError):
        pass  # the client went away, or the writer closed the socket
    finally:
        svc.hub.unsubscribe(subscriber)
        subscriber.close(1000)
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await writer
        if writer.done() and not writer.cancelled() and writer.exception() is not None:
            log.error("websocket writer of %s failed", agent.name, exc_info=writer.exception())
        await _flush_acks(svc, agent)


async def _flush_acks(svc: Services, agent: AgentRef) -> None:
    # A closed socket's acks are written now, not a timer later: the agent's next
    # socket (maybe on its way) then starts after them. If the write fails they stay
    # pending for the timer; a crash before that only replays them.
    try:
        await svc.acks.flush_agent(agent.id)
    except Exception:
        log.warning("could not write the acks of %s yet; the timer retries", agent.name)


async def _write(
    websocket: WebSocket, svc: Services, agent: AgentRef, subscriber: Subscriber, since: int | None
) -> None:
    try:
        try:
            await _send_backlog(websocket, svc, agent, subscriber, since)
        finally:
            subscriber.backlog_sent.set()
        while True:
            item = await subscriber.next()
            if item is None:
                break
            seq, frame = item
            if seq is not None:
                if seq <= subscriber.last_sent_seq:
                    continue
                subscriber.last_sent_seq = seq
            await websocket.send_text(frame)
    except (WebSocketDisconnect, OSError, RuntimeError):
        return
    if subscriber.close_code is not None and subscriber.close_code != 1000:
        # Replaced (4000), too slow (1013) or shutting down (1001): say so and close,
        # which also ends the reader.
        with contextlib.suppress(Exception):
            await websocket.close(subscriber.close_code, _REASONS.get(subscriber.close_code, ""))


async def _send_backlog(
    websocket: WebSocket, svc: Services, agent: AgentRef, subscriber: Subscriber, since: int | None
) -> None:
    unacked_only = since is None
    after = await inbox_service.ack_seq(svc, agent) if since is None else since
    subscriber.last_sent_seq = after
    while True:
        page = await inbox_service.incoming_after(svc, agent, after, unacked_only, BACKLOG_PAGE)
        for message in page:
            await websocket.send_text(frames.message(message))
            subscriber.last_sent_seq = message.seq
        if len(page) < BACKLOG_PAGE:
            return
        after = page[-1].seq


# An ack as clients write it (compact, or with json.dumps' default spaces), read
# without the JSON parser, which costs more than the rest of handling an ack; any
# other spelling takes the general path below.
_ACK_FRAME = re.compile(r'\{"type": ?"ack", ?"up_to_seq": ?(0|[1-9][0-9]{0,17})\}')


async def _read(websocket: WebSocket, svc: Services, agent: AgentRef) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
        raw = message.get("text")
        if raw is None:
            await _send_error(websocket, "frames must be JSON text, not binary")
            continue
        ack = _ACK_FRAME.fullmatch(raw)
        if ack is not None:
            svc.acks.note(agent.id, int(ack[1]))
        else:
            await _handle(websocket, svc, agent, raw)


async def _handle(websocket: WebSocket, svc: Services, agent: AgentRef, raw: str) -> None:
    try:
        frame = json.loads(raw)
    except ValueError:
        await _send_error(websocket, "frames must be JSON objects")
        return
    kind = frame.get("type") if isinstance(frame, dict) else None
    if kind == "ack":
        up_to = frame.get("up_to_seq")
        if not isinstance(up_to, int) or isinstance(up_to, bool) or not 0 <= up_to <= MAX_SEQ:
            # (A number the database cannot hold would fail every later batch.)
            await _send_error(websocket, f"ack needs an integer up_to_seq from 0 to {MAX_SEQ}")
            return
        svc.acks.note(agent.id, up_to)
    elif kind == "ping":
        # The pong says every ack before it is committed.
        try:
            await svc.acks.flush_agent(agent.id)
        except Exception:
            log.warning("could not write the acks of %s yet; the timer retries", agent.name)
            await _send_error(
                websocket,
                "your acks could not be written yet; they are kept and retried",
                code="unavailable",
            )
            return
        await websocket.send_text('{"type":"pong"}')
    else:
        await _send_error(websocket, f"unknown frame type {str(kind)[:40]!r}; expected ack or ping")


async def _send_error(websocket: WebSocket, message: str, code: str = "validation_error") -> None:
    await websocket.send_text(json.dumps({"type": "error", "error": code, "message": message}))
