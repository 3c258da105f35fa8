"""The WebSocket listener: keeps one authenticated connection to the server.

First-message auth (never a credential in the URL), resume after the highest
acknowledged seq, exponential backoff with jitter between attempts (reset once
a connection has been healthy), and a stop, with the reason kept for
`mailbox_status`, when the server says the key is bad (4001) or another
connection of this agent replaced us (4000). Frames are read into the wire
models (`mailbox_wire.frames`); a frame type this bridge does not know is skipped.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import websockets
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

import mailbox_wire as wire
from mailbox_mcp.inbound.delivered_log import DeliveredLog
from mailbox_mcp.server_link.retry import Backoff

log = logging.getLogger(__name__)

HEALTHY_AFTER_SECONDS = 10.0

Deliver = Callable[[wire.Message], Awaitable[bool]]
EventHook = Callable[[wire.ConnectionEvent], Awaitable[None]]
ConnectedHook = Callable[[], Awaitable[None]]


@dataclass
class ListenerStatus:
    state: str = "starting"  # starting | connected | reconnecting | stopped
    reason: str | None = None
    connected_since: float | None = None
    reconnects: int = 0
    last_message_at: float | None = None
    acked_seq: int = 0


class Listener:
    def __init__(
        self,
        ws_url: str,
        api_key: str,
        log_store: DeliveredLog,
        deliver: Deliver,
        *,
        on_event: EventHook | None = None,
        on_connected: ConnectedHook | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.ws_url = ws_url
        self._api_key = api_key
        self.log_store = log_store
        self.deliver = deliver
        self.on_event = on_event
        self.on_connected = on_connected
        self.backoff = backoff or Backoff()
        self.status = ListenerStatus(acked_seq=log_store.acked_seq())

    async def run(self) -> None:
        """Run until told to stop by the server (4000/4001) or cancelled. Never raises."""
        while True:
            started = time.monotonic()
            try:
                await self._connect_once()
            except _Stop as stop:
                self.status.state = "stopped"
                self.status.reason = stop.reason
                self.status.connected_since = None
                log.error("listener stopped: %s", stop.reason)
                return
            except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError) as exc:
                self.status.reason = f"{type(exc).__name__}: {exc}"
            except InvalidURI as exc:
                self.status.state = "stopped"
                self.status.reason = f"bad MAILBOX_SERVER_URL: {exc}"
                return
            except Exception as exc:  # a bug must not take the MCP process down
                log.exception("listener failed unexpectedly; reconnecting")
                self.status.reason = f"unexpected error: {exc}"
            if time.monotonic() - started >= HEALTHY_AFTER_SECONDS:
                self.backoff.reset()
            self.status.state = "reconnecting"
            self.status.connected_since = None
            self.status.reconnects += 1
            delay = self.backoff.next_delay()
            log.info("reconnecting to the mailbox server in %.1f s (%s)", delay, self.status.reason)
            await anyio.sleep(delay)

    async def _connect_once(self) -> None:
        async with websockets.connect(
            self.ws_url, open_timeout=10, compression=None, max_size=2 * 1024 * 1024
        ) as ws:
            auth = wire.AuthFrame(api_key=self._api_key, since=self.log_store.acked_seq() or None)
            await ws.send(auth.model_dump_json(exclude_none=True))
            try:
                with anyio.fail_after(10):
                    raw_first = json.loads(await ws.recv())
            except ConnectionClosed as closed:
                self._raise_if_final(closed)
                raise
            first = wire.read_server_frame(raw_first)
            if not isinstance(first, wire.AuthOk):
                kind = raw_first.get("type") if isinstance(raw_first, dict) else None
                raise OSError(f"unexpected first frame {kind!r}")
            self.status.state = "connected"
            self.status.reason = None
            self.status.connected_since = time.time()
            log.info("listening for mail as %s", first.agent_name)
            if self.on_connected is not None:
                await self.on_connected()
            try:
                async for raw in ws:
                    frame = wire.read_server_frame(json.loads(raw))
                    if frame is not None:
                        await self._handle(ws, frame)
            except ConnectionClosed as closed:
                self._raise_if_final(closed)
                raise
            # A clean close by the server (e.g. it is shutting down): reconnect.
            raise OSError("the server closed the connection")

    async def _handle(self, ws: Any, frame: wire.ServerFrame) -> None:
        if isinstance(frame, wire.MessageFrame):
            message = frame.message
            seq = message.seq
            if not await self.deliver(message):
                # A duplicate: nothing was injected, so only the cursor moves.
                self.log_store.set_acked_seq(seq)
            # `deliver` recorded the message before we acknowledge: the ack may be
            # lost, the record may not.
            self.status.last_message_at = time.time()
            self.status.acked_seq = seq
            await ws.send(wire.AckFrame(up_to_seq=seq).model_dump_json())
        elif isinstance(frame, wire.ConnectionEvent) and self.on_event is not None:
            await self.on_event(frame)

    def _raise_if_final(self, closed: ConnectionClosed) -> None:
        code = closed.rcvd.code if closed.rcvd is not None else None
        if code == wire.CloseCode.BAD_AUTH:
            raise _Stop(
                "the mailbox server rejected the API key (close 4001): check MAILBOX_API_KEY, "
                "or run `mailbox-mcp doctor`"
            )
        if code == wire.CloseCode.REPLACED:
            raise _Stop(
                "another connection of this agent replaced this one (close 4000): another "
                "bridge with the same API key is listening; only one should"
            )


class _Stop(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
