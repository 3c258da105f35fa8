"""A scripted OpenAI-compatible model on loopback, for runs in a real gateway that finish.

OpenClaw asks ``POST /v1/chat/completions`` with ``"stream": true``; this
server answers SSE chunks in OpenAI's format. What it answers is up to the
test: ``script`` is a callable that gets the ``ModelRequest`` and returns a
``Text`` or a ``ToolCall`` (default: a short text). Every request is recorded
with its messages, the names of the tools offered and the session it ran in
(the ``Runtime: ... session=<key>`` line OpenClaw puts in its prompt).

Usage::

    with ScriptedModel() as model:
        gateway.cli("config", "patch", "--stdin", stdin=json.dumps(model.openclaw_config()))
        model.script = lambda request: ToolCall("exec", {"command": "id"})
        model.requests_in("agent:main:main")
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Self

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from tests.loopback import BackgroundServer
from tests.waiting import wait_until, wait_until_async

__all__ = ["MODEL_REF", "ModelRequest", "ScriptedModel", "Text", "ToolCall"]

MODEL_ID = "scripted-1"
MODEL_REF = f"fake/{MODEL_ID}"
_SESSION = re.compile(r"^Runtime:.*\bsession=(\S+)", re.MULTILINE)


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


Reply = Text | ToolCall


@dataclass
class ModelRequest:
    """One ``/v1/chat/completions`` request as OpenClaw sent it."""

    body: dict[str, Any] = field(repr=False)  # long: a failure shows session and reply
    session: str | None
    reply: Reply | None = None
    # time.monotonic() when the request arrived (the reply is chosen at once)
    at: float = field(default_factory=time.monotonic)

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.body.get("messages") or []

    @property
    def tools(self) -> list[str]:
        """Names of the tools offered to the model."""
        return [
            t.get("function", {}).get("name", "")
            for t in self.body.get("tools") or []
            if isinstance(t, dict)
        ]

    @property
    def last(self) -> dict[str, Any]:
        return self.messages[-1] if self.messages else {}

    @property
    def after_tool(self) -> bool:
        """Is this the turn after a tool result (the model should now answer in text)?"""
        return self.last.get("role") == "tool"

    def text(self, role: str | None = None) -> str:
        """All message text (of ``role``, if given), joined."""
        return "\n".join(
            _content_text(m.get("content"))
            for m in self.messages
            if role is None or m.get("role") == role
        )

    def tool_results(self) -> list[str]:
        return [_content_text(m.get("content")) for m in self.messages if m.get("role") == "tool"]


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"
        )
    return ""


def _session_of(body: dict[str, Any]) -> str | None:
    for message in body.get("messages") or []:
        found = _SESSION.search(_content_text(message.get("content")))
        if found:
            return found.group(1).rstrip(",;)")
    return None


def default_script(request: ModelRequest) -> Reply:
    return Text("scripted reply")


class ScriptedModel:
    """The server; ``script`` and the records are safe to use from the test's thread."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self.script: Callable[[ModelRequest], Reply] = default_script
        self._lock = threading.Lock()
        self._requests: list[ModelRequest] = []
        self._ids = itertools.count(1)
        self._app = Starlette(
            routes=[Route("/v1/chat/completions", self._completions, methods=["POST"])]
        )
        self._server = BackgroundServer(self._app, "scripted model")

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def openclaw_config(self) -> dict[str, Any]:
        """The ``openclaw.json`` patch that makes this OpenClaw's only model."""
        return {
            "models": {
                "providers": {
                    "fake": {
                        "baseUrl": self.base_url,
                        "apiKey": "sk-local-dummy",
                        "api": "openai-completions",
                        "timeoutSeconds": 60,
                        "models": [
                            {
                                "id": MODEL_ID,
                                "name": "Scripted 1",
                                "reasoning": False,
                                "input": ["text"],
                                "cost": {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0},
                                "contextWindow": 128000,
                                "maxTokens": 1024,
                            }
                        ],
                    }
                }
            },
            "agents": {"defaults": {"model": {"primary": MODEL_REF}}},
        }

    # -- records ---------------------------------------------------------------------

    @property
    def requests(self) -> list[ModelRequest]:
        with self._lock:
            return list(self._requests)

    def requests_in(self, session: str) -> list[ModelRequest]:
        return [r for r in self.requests if r.session == session]

    def sessions(self) -> list[str | None]:
        return [r.session for r in self.requests]

    def wait_for(
        self, predicate: Callable[[list[ModelRequest]], bool], timeout: float, what: str
    ) -> list[ModelRequest]:
        """Block until ``predicate(requests)`` holds; ``NotInTime`` (an ``AssertionError``)
        after ``timeout``."""
        # requests arrive on the server's thread; asking for them is simplest
        return wait_until(lambda: self.requests, predicate, within=timeout, what=what, every=0.1)

    async def until(
        self, predicate: Callable[[list[ModelRequest]], bool], within: float, what: str
    ) -> list[ModelRequest]:
        """``wait_for`` for async tests, without blocking the event loop."""
        return await wait_until_async(
            lambda: self.requests, predicate, within=within, what=what, every=0.1
        )

    # -- the endpoint ----------------------------------------------------------------

    async def _completions(self, request: Request) -> JSONResponse | StreamingResponse:
        body = await request.json()
        record = ModelRequest(body=body, session=_session_of(body))
        try:
            reply = self.script(record)
        except Exception as exc:  # a broken script shows as a failing model
            return JSONResponse({"error": {"message": f"script failed: {exc!r}"}}, 500)
        record.reply = reply
        with self._lock:
            self._requests.append(record)
        stream_id = f"chatcmpl-{next(self._ids)}"
        return StreamingResponse(
            self._chunks(stream_id, reply, bool(body.get("stream"))),
            media_type="text/event-stream",
        )

    async def _chunks(self, stream_id: str, reply: Reply, _stream: bool) -> AsyncIterator[str]:
        created = int(time.time())

        def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
            data = {
                "id": stream_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": MODEL_ID,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            return f"data: {json.dumps(data)}\n\n"

        yield chunk({"role": "assistant", "content": ""})
        if isinstance(reply, Text):
            yield chunk({"content": reply.text})
            yield chunk({}, "stop")
        else:
            call = {
                "index": 0,
                "id": f"call_{stream_id}",
                "type": "function",
                "function": {"name": reply.name, "arguments": json.dumps(reply.arguments)},
            }
            yield chunk({"tool_calls": [call]})
            yield chunk({}, "tool_calls")
        usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        data = {
            "id": stream_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": MODEL_ID,
            "choices": [],
            "usage": usage,
        }
        yield f"data: {json.dumps(data)}\n\n"
        yield "data: [DONE]\n\n"

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self.port = self._server.start(self.host, self.port)

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
