"""The `/ws` endpoint: first-message auth, backlog, live push, acknowledgements.

Credentials never travel in the URL: the first frame carries the key. After
`auth_ok` the client gets every message after `since` (or everything not yet
acknowledged), oldest first, then live frames as sends commit.

Acks cost the reader nothing: they go to the `AckBuffer`, which writes them
together on a short timer. They are written at once when the socket closes,
and before a `pong`, so a client that needs to know its acks are durable pings.

What one socket may cost is bounded whatever its client does (issue 13): open
sockets per address and per agent, frames read per second, backlog pages and
the live queue in bytes, and a deadline on every send; a client that does not
read is closed (1013) and replayed from the database when it comes back. Every
bad frame ends in an error frame or a close code, never in an exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Callable

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from mailbox_wire import CloseCode

from ..errors import Unauthorized
from ..security import hash_api_key
from ..services import agents as agent_service
from ..services import backlog, cluster_events, frames
from ..services import inbox as inbox_service
from ..services.context import AgentRef, Services
from ..services.delivery import Subscriber
from ..ws_protocol import ACK_PATTERN, ACK_SINK
from .deps import client_address
from .ws_client_frames import AuthFrame, BadFrame, is_seq, load_json, parse_auth

log = logging.getLogger(__name__)

router = APIRouter()

# The reason sent with a close the hub decided (the writer only sees the code).
_REASONS: dict[int, str] = {
    CloseCode.REPLACED: "replaced",
    CloseCode.BAD_AUTH: "the API key was rotated",
    CloseCode.OVERFLOW: "too slow; reconnect to resume",
    CloseCode.GOING_AWAY: "going away",
}


class _TooSlow(Exception):
    """A send could not start within the deadline: the client is not reading."""


@router.websocket("/ws")
async def websocket_endpoint(websocket: WebSocket) -> None:
    svc: Services = websocket.app.state.services
    await websocket.accept()
    # (The WebSocket carries the same headers and peer as a request.)
    address = client_address(websocket)  # type: ignore[arg-type]
    if not svc.sockets_per_client.take(address):
        await websocket.close(CloseCode.LIMIT, "too many open sockets from this address")
        return
    try:
        await _authenticate_and_serve(websocket, svc)
    finally:
        svc.sockets_per_client.give_back(address)


async def _authenticate_and_serve(websocket: WebSocket, svc: Services) -> None:
    try:
        async with asyncio.timeout(svc.settings.ws_auth_timeout_seconds):
            first = await websocket.receive()
    except TimeoutError:
        await websocket.close(CloseCode.AUTH_TIMEOUT, "no auth frame within the time limit")
        return
    if first["type"] == "websocket.disconnect":
        return
    auth = parse_auth(first.get("text"))
    if isinstance(auth, BadFrame):
        await websocket.close(CloseCode.BAD_AUTH, auth.reason)
        return
    try:
        agent = await agent_service.authenticate(svc, auth.api_key)
    except Unauthorized as exc:
        await websocket.close(CloseCode.BAD_AUTH, exc.message)
        return
    except Exception:
        # The database, most likely: a close the client reconnects on, not a dead socket.
        log.exception("websocket auth failed")
        await _close(
            websocket, CloseCode.SERVER_ERROR, "the server could not check the key; reconnect"
        )
        return
    # Opening a socket is a request like any other; an agent may have a few open at
    # once (a replaced one still closing), not an unbounded number.
    if svc.request_rate.take(agent.id) > 0:
        await websocket.close(CloseCode.LIMIT, "too many requests for this API key; slow down")
        return
    if not svc.sockets_per_agent.take(agent.id):
        await websocket.close(CloseCode.LIMIT, "too many open sockets for this agent")
        return
    try:
        await _serve(websocket, svc, agent, auth)
    finally:
        svc.sockets_per_agent.give_back(agent.id)


async def _serve(websocket: WebSocket, svc: Services, agent: AgentRef, auth: AuthFrame) -> None:
    # Subscribe before reading the backlog: a message committed in between is
    # then in the backlog, in the queue, or both (the writer skips repeats).
    subscriber = svc.hub.subscribe(agent.id, hash_api_key(auth.api_key))
    # Two tasks per connection, to keep idle sockets cheap: this one reads, the
    # writer sends the backlog and then whatever the hub queues.
    writer = asyncio.create_task(_write(websocket, svc, subscriber, agent, auth.since))
    # Replaced, key rotated, queue overflowing: the writer stops at once, even in the
    # middle of a backlog page or of a send the client is not reading.
    subscriber.on_close = lambda code: writer.cancel()
    writer.add_done_callback(lambda task: _say_why_if_stopped(task, websocket, subscriber))
    try:
        # Announced to the other server processes before auth_ok (newest socket wins).
        await cluster_events.announce_socket(svc, subscriber)
        await _send(websocket, svc, frames.auth_ok(agent.id, agent.name))
        websocket.scope[ACK_SINK] = _ack_sink(svc, agent)
        await _read(websocket, svc, agent)
    except (WebSocketDisconnect, OSError, RuntimeError):
        pass  # the client went away, or the writer closed the socket
    except _TooSlow:
        await _close(websocket, CloseCode.OVERFLOW, "not reading: a send waited too long")
    except Exception:
        log.exception("websocket reader of %s failed", agent.name)
        await _close(websocket, CloseCode.SERVER_ERROR, "internal error; reconnect")
    finally:
        websocket.scope.pop(ACK_SINK, None)
        svc.hub.unsubscribe(subscriber)
        subscriber.close(1000)
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
        await _flush_acks(svc, agent)


def _ack_sink(svc: Services, agent: AgentRef) -> Callable[[int], bool]:
    """Where this socket's ack frames go as they arrive (server/ws_protocol.py): into
    the ack buffer, counted against the frame rate like every frame; over the rate
    an ack is refused here and takes the reader's path, which waits for the rate."""
    rate, acks = svc.ws_frame_rate, svc.acks

    def take(up_to_seq: int) -> bool:
        if rate.take(agent.id) > 0:
            return False
        acks.note(agent.id, up_to_seq)
        return True

    return take


async def _flush_acks(svc: Services, agent: AgentRef) -> None:
    # A closed socket's acks are written now, not a timer later: the agent's next
    # socket (maybe on its way) then starts after them. If the write fails they stay
    # pending for the timer; a crash before that only replays them.
    try:
        await svc.acks.flush_agent(agent.id)
    except Exception:
        log.warning("could not write the acks of %s yet; the timer retries", agent.name)


async def _send(websocket: WebSocket, svc: Services, text: str) -> None:
    """Send, or raise _TooSlow when the client has not made room within the deadline.

    (uvicorn waits for the transport to drain before each send; nothing is written
    while it waits, so giving up then leaves the stream whole.)
    """
    try:
        async with asyncio.timeout(svc.settings.ws_send_timeout_seconds):
            await websocket.send_text(text)
    except TimeoutError:
        raise _TooSlow from None


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    # The close frame goes behind what is buffered and never waits for the client
    # (see server/ws_protocol.py); the reader then sees the disconnect.
    with contextlib.suppress(Exception):
        await websocket.close(code, reason)


async def _write(
    websocket: WebSocket,
    svc: Services,
    subscriber: Subscriber,
    agent: AgentRef,
    since: int | None,
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
            await _send(websocket, svc, frame)
    except (WebSocketDisconnect, OSError, RuntimeError):
        return
    except _TooSlow:
        await _close(websocket, CloseCode.OVERFLOW, "not reading: a send waited too long")
        return
    except Exception:
        log.exception("websocket writer of %s failed", agent.name)
        await _close(websocket, CloseCode.SERVER_ERROR, "internal error; reconnect")
        return
    if subscriber.close_code is not None and subscriber.close_code != 1000:
        await _close(websocket, subscriber.close_code, _REASONS.get(subscriber.close_code, ""))


# Closes started from a callback; kept here so none is collected before it ran.
_closing: set[asyncio.Task[None]] = set()


def _say_why_if_stopped(writer: asyncio.Task[None], websocket: WebSocket, sub: Subscriber) -> None:
    """When the hub stopped the writer (replaced 4000, key rotated 4001, too slow 1013,
    shutting down 1001), close with that code, which also ends the reader. A callback,
    not the writer itself: a writer cancelled before its first step runs no code."""
    code = sub.close_code
    if writer.cancelled() and code is not None and code != 1000:
        task = asyncio.ensure_future(_close(websocket, code, _REASONS.get(code, "")))
        _closing.add(task)
        task.add_done_callback(_closing.discard)


async def _send_backlog(
    websocket: WebSocket, svc: Services, agent: AgentRef, subscriber: Subscriber, since: int | None
) -> None:
    unacked_only = since is None
    after = await inbox_service.ack_seq(svc, agent) if since is None else since
    subscriber.last_sent_seq = after
    # The backlog is what was committed before the subscription (it was made first):
    # anything later is pushed live, or read by a catch-up, never by the backlog, so
    # a stream of new messages cannot keep a backlog (and its page) going for ever.
    up_to = await backlog.newest_seq(svc, agent)
    page_bytes = svc.settings.ws_backlog_page_bytes
    while True:
        page = await backlog.page_after(svc, agent, after, unacked_only, page_bytes, up_to)
        if not page:
            # Up to `up_to` everything was sent or was acknowledged by id already.
            subscriber.last_sent_seq = max(subscriber.last_sent_seq, up_to)
            return
        after = page[-1].seq
        page.reverse()
        while page:
            # Each message is let go once sent, so a page shrinks as it is read.
            message = page.pop()
            await _send(websocket, svc, frames.message(message))
            subscriber.last_sent_seq = message.seq


# An ack as clients write it (compact, or with json.dumps' default spaces), read
# without the JSON parser, which costs more than the rest of handling an ack; any
# other spelling takes the general path below.
_ACK_FRAME = re.compile(ACK_PATTERN)


async def _read(websocket: WebSocket, svc: Services, agent: AgentRef) -> None:
    rate = svc.ws_frame_rate
    while True:
        # Every frame counts, acks too (issue 13: 3,000 acks in 6 s went uncounted).
        # Over the rate, the next frame is read only when the budget allows: the
        # client's frames wait in TCP, none is dropped.
        # (A token bucket has no event to wait on; its wait says when a token is due.)
        while (wait := rate.take(agent.id)) > 0:  # noqa: ASYNC110
            await asyncio.sleep(wait)
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
        raw = message.get("text")
        if raw is None:
            await _close(websocket, CloseCode.BINARY, "frames must be JSON text, not binary")
            return
        ack = _ACK_FRAME.fullmatch(raw)
        if ack is not None:
            svc.acks.note(agent.id, int(ack[1]))
        else:
            await _handle(websocket, svc, agent, raw)


async def _handle(websocket: WebSocket, svc: Services, agent: AgentRef, raw: str) -> None:
    frame = load_json(raw)
    if isinstance(frame, BadFrame):
        await _send_error(websocket, svc, frame.reason)
        return
    kind = frame.get("type") if isinstance(frame, dict) else None
    if kind == "ack":
        up_to = frame.get("up_to_seq")
        if not is_seq(up_to):
            # (A number the database cannot hold would fail every later batch.)
            await _send_error(websocket, svc, "ack needs an integer up_to_seq from 0 to 2**62")
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
                svc,
                "your acks could not be written yet; they are kept and retried",
                code="unavailable",
            )
            return
        await _send(websocket, svc, '{"type":"pong"}')
    else:
        await _send_error(
            websocket, svc, f"unknown frame type {str(kind)[:40]!r}; expected ack or ping"
        )


async def _send_error(
    websocket: WebSocket, svc: Services, message: str, code: str = "validation_error"
) -> None:
    await _send(websocket, svc, json.dumps({"type": "error", "error": code, "message": message}))
