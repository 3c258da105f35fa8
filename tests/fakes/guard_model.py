"""A scripted OpenAI-compatible chat-completions endpoint on loopback, for the inbound guard.

The guard asks ``POST /v1/chat/completions`` with ``"stream": false`` and reads
one JSON body. What comes back is up to the test, set per case (safe from the
test's thread):

- ``answer = Completion(text)`` — HTTP 200, a chat completion whose
  ``choices[0].message.content`` is ``text`` (``verdict_json`` builds a clean one);
- ``answer = Raw(status, body)`` — any status and body, for HTTP errors and
  bodies that are not a chat completion;
- ``hold()`` / ``release()`` — answers wait until the test releases them:
  before the response starts, after its first byte (``"after_headers"``), or
  while a blank (JSON whitespace) trickles out every 0.1 s (``"trickle"``, which
  no per-read timeout catches, only a deadline for the whole call). A client
  can so be run past its deadline without sleeping. Stopping the server
  releases them too.

Every request is recorded (``requests``) with its path, headers and JSON body.

Usage::

    with GuardModel() as model:
        model.answer = Completion(verdict_json("deny", "prompt_injection"))
        InboundGuard(model.base_url, MODEL_ID)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal, Self

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.loopback import BackgroundServer

__all__ = [
    "MODEL_ID",
    "Completion",
    "GuardModel",
    "GuardRequest",
    "HoldMode",
    "Raw",
    "verdict_json",
]

MODEL_ID = "guard-scripted-1"


@dataclass(frozen=True)
class Completion:
    """HTTP 200 with a chat completion whose message content is ``text``."""

    text: str


@dataclass(frozen=True)
class Raw:
    """Exactly this status and body."""

    status: int
    body: bytes | str
    media_type: str = "application/json"


Answer = Completion | Raw
HoldMode = Literal["before", "after_headers", "trickle"]
TRICKLE_SECONDS = 0.1


def verdict_json(decision: str, category: str = "none", reason: str = "ok") -> str:
    return json.dumps({"decision": decision, "category": category, "reason": reason})


@dataclass(frozen=True)
class GuardRequest:
    """One request as the guard sent it."""

    path: str
    headers: dict[str, str]
    body: Any  # the parsed JSON, or None if it was not JSON

    @property
    def messages(self) -> list[dict[str, Any]]:
        if not isinstance(self.body, dict):
            return []
        return self.body.get("messages") or []

    def content_of(self, role: str) -> str:
        """The one message of ``role``'s text (the guard sends one system, one user)."""
        [content] = [m.get("content") for m in self.messages if m.get("role") == role]
        assert isinstance(content, str), content
        return content


class GuardModel:
    """The server; ``answer``, ``hold``/``release`` and the records are thread-safe."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self.answer: Answer = Completion(verdict_json("allow"))
        self._lock = threading.Lock()
        self._requests: list[GuardRequest] = []
        self._ids = itertools.count(1)
        self._hold: HoldMode | None = None
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self._server = BackgroundServer(
            Starlette(routes=[Route("/v1/chat/completions", self._completions, methods=["POST"])]),
            "guard model",
        )

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def requests(self) -> list[GuardRequest]:
        with self._lock:
            return list(self._requests)

    # -- holding answers ---------------------------------------------------------------

    def hold(self, mode: HoldMode = "before") -> None:
        """Hold every answer from now on until ``release()``."""
        with self._lock:
            self._hold = mode

    def release(self) -> None:
        """Let held answers go, and stop holding new ones."""
        with self._lock:
            self._hold = None
            waiters, self._waiters = self._waiters, []
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # the server's loop already closed
                loop.call_soon_threadsafe(event.set)

    async def _released(self, within: float | None = None) -> bool:
        """Wait for ``release()`` or the server's stop (at most ``within`` seconds);
        whether that came."""
        event = asyncio.Event()
        with self._lock:
            if self._hold is None:
                return True
            self._waiters.append((asyncio.get_running_loop(), event))
        waits = [asyncio.ensure_future(event.wait())]
        if self._server.stopping is not None:
            waits.append(asyncio.ensure_future(self._server.stopping.wait()))
        try:
            done, _ = await asyncio.wait(waits, timeout=within, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        return bool(done)

    # -- the endpoint ------------------------------------------------------------------

    async def _completions(self, request: Request) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        with self._lock:
            self._requests.append(GuardRequest(request.url.path, dict(request.headers), body))
            answer, hold = self.answer, self._hold
        status, payload, media_type = self._render(answer, body)
        if hold == "before":
            await self._released()
        elif hold is not None:
            return StreamingResponse(
                self._held_body(payload, hold), status_code=status, media_type=media_type
            )
        return Response(payload, status_code=status, media_type=media_type)

    async def _held_body(self, payload: bytes, hold: HoldMode) -> AsyncIterator[bytes]:
        if hold == "after_headers":
            yield payload[:1]
            await self._released()
            yield payload[1:]
            return
        while True:  # trickle: a blank now and then keeps every read short
            yield b" "
            if await self._released(within=TRICKLE_SECONDS):
                break
        yield payload

    def _render(self, answer: Answer, request_body: Any) -> tuple[int, bytes, str]:
        if isinstance(answer, Raw):
            body = answer.body.encode() if isinstance(answer.body, str) else answer.body
            return answer.status, body, answer.media_type
        model = request_body.get("model") if isinstance(request_body, dict) else None
        completion = {
            "id": f"chatcmpl-guard-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model or MODEL_ID,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer.text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
        }
        return 200, json.dumps(completion).encode(), "application/json"

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self.port = self._server.start(self.host, self.port)

    def stop(self) -> None:
        self.release()
        self._server.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
