"""A fake OpenClaw gateway on loopback, speaking the wire format the bridge uses.

It serves the two surfaces described in ``CONTRACT.md`` section 6 and
``OPENCLAW.md``, on a real socket, from a Starlette app under uvicorn in a
background thread with its own event loop:

- ``POST /tools/invoke`` (Bearer token) with ``sessions_send``,
  ``sessions_history`` and ``sessions_list``;
- the gateway WebSocket at ``/``: ``connect.challenge`` event, ``connect``,
  ``sessions.create`` and ``agent``.

It keeps the facts that matter for the bridge: ``sessions_send`` does not
create a named session (only ``agent:<id>:main`` exists on demand), a tool
failure still answers HTTP 200 with ``details.status == "error"``, a
non-zero timeout with caller == target is refused, and a tool that is not
allowed answers 404 ``Tool not available``. Answer shapes (``result.details``
of ``sessions_send``, ``sessions_history`` and ``sessions_list``, HTTP error
bodies, the ``sessions.create`` payload) follow what openclaw 2026.9.6 answers
on loopback, as seen by the real-gateway tier in ``tests/openclaw``; the
gateway's own follow-ups of a failed model run (a "delivery failed" input in
the caller's session) are not imitated.

Knobs for fault injection (all safe to call from the test's thread):

- ``allowed_tools`` — the set of tools ``/tools/invoke`` may run;
- ``token`` — change it to make the current credentials wrong;
- ``known_agent_ids`` — if set, ``sessions.create`` refuses other agent ids;
- ``fail_next(n, status=503, retry_after=None)`` — HTTP errors for the next
  ``n`` invokes;
- ``reject_next(n, error=..., status="error")`` — ``details.status`` other
  than ``accepted`` for the next ``n`` ``sessions_send`` calls;
- ``fail_next_ws(n, code=..., message=...)`` — ``ok: false`` for the next
  ``n`` WebSocket requests after ``connect``;
- ``run_error`` — set to an error text to make every run started from now on
  fail (``agent.wait`` answers ``status: "error"`` with it), ``None`` to succeed;
- ``delay_seconds`` — answer every request that late;
- ``send_challenge`` — set to ``False`` to never send ``connect.challenge``;
- ``forget_sessions()`` — a gateway restart: every created session vanishes;
- ``stop()`` / ``start()`` — take the server down and bring it back on the
  same port.

Records: ``injections`` (``Injection`` objects), ``invoke_bodies``,
``connect_params``, ``ws_requests``, ``sessions``, ``sessions_create_calls``;
``wait_for_injections(n, timeout)``, ``await_injections(n, timeout)`` and
``await_ws_request(method, timeout)`` block on a condition variable until they
are there, or raise ``TimeoutError``.

Usage::

    with FakeGateway(token="t") as gw:
        gw.url  # http://127.0.0.1:PORT
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Self, TypeVar

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketDisconnected

from tests.loopback import BackgroundServer
from tests.waiting import NotInTime

__all__ = ["DEFAULT_ALLOWED_TOOLS", "FakeGateway", "Injection"]

DEFAULT_ALLOWED_TOOLS = frozenset({"sessions_send", "sessions_history", "sessions_list"})
PROTOCOL_VERSION = 4
T = TypeVar("T")

_MAIN_KEY = re.compile(r"^agent:[^:]+:main$")


@dataclass(frozen=True)
class Injection:
    """One message that landed in a session, by HTTP ``sessions_send`` or WS ``agent``."""

    key: str
    caller: str
    message: str
    via: Literal["sessions_send", "agent"]
    ts: float
    timeout_seconds: float | None = None
    idempotency_key: str | None = None
    input_provenance: dict[str, Any] | None = None


@dataclass
class _Session:
    key: str
    agent_id: str | None
    label: str | None
    created_at: float
    inputs: list[Injection] = field(default_factory=list)
    session_id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class _Fault:
    remaining: int
    status: int = 503
    retry_after: float | None = None
    error: str = ""
    detail_status: str = "error"
    code: str = "UNAVAILABLE"


class FakeGateway:
    """A loopback OpenClaw gateway for tests; see the module docstring."""

    def __init__(
        self,
        token: str = "test-gateway-token",
        *,
        allowed_tools: set[str] | frozenset[str] | None = None,
        known_agent_ids: set[str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.token = token
        self.allowed_tools: set[str] = set(
            DEFAULT_ALLOWED_TOOLS if allowed_tools is None else allowed_tools
        )
        self.known_agent_ids = known_agent_ids
        self.run_error: str | None = None
        self.delay_seconds: float = 0.0
        self.send_challenge = True
        self.host = host
        self.port = port

        self._cond = threading.Condition()
        self._sessions: dict[str, _Session] = {}
        self._injections: list[Injection] = []
        self._invoke_bodies: list[Any] = []
        self._connect_params: list[dict[str, Any]] = []
        self._ws_requests: list[dict[str, Any]] = []
        self._sessions_create_calls = 0
        self._runs: dict[str, dict[str, Any]] = {}  # run id -> what agent.wait answers
        self._http_faults: _Fault | None = None
        self._send_faults: _Fault | None = None
        self._ws_faults: _Fault | None = None

        self._app = Starlette(
            routes=[
                Route("/tools/invoke", self._invoke, methods=["POST"]),
                Route("/readyz", self._readyz, methods=["GET"]),
                WebSocketRoute("/", self._websocket),
            ]
        )
        self._server = BackgroundServer(self._app, "fake OpenClaw gateway")

    # -- lifecycle -------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` (the port stays the same across ``stop``/``start``)."""
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/"

    @property
    def running(self) -> bool:
        return self._server.running

    def start(self) -> None:
        """Serve on ``port`` (a free one the first time if it was 0)."""
        self.port = self._server.start(self.host, self.port)

    def stop(self) -> None:
        """Close every connection and the listening socket; records are kept."""
        self._server.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- knobs -----------------------------------------------------------

    def fail_next(self, n: int = 1, status: int = 503, *, retry_after: float | None = None) -> None:
        """Answer the next ``n`` ``/tools/invoke`` requests with HTTP ``status``."""
        with self._cond:
            self._http_faults = _Fault(n, status=status, retry_after=retry_after)

    def reject_next(
        self, n: int = 1, error: str = "simulated failure", *, status: str = "error"
    ) -> None:
        """Make the next ``n`` ``sessions_send`` calls answer 200 with ``details.status``."""
        with self._cond:
            self._send_faults = _Fault(n, error=error, detail_status=status)

    def fail_next_ws(
        self, n: int = 1, *, code: str = "UNAVAILABLE", message: str = "simulated failure"
    ) -> None:
        """Answer the next ``n`` WebSocket requests after ``connect`` with ``ok: false``."""
        with self._cond:
            self._ws_faults = _Fault(n, code=code, error=message)

    def forget_sessions(self) -> None:
        """What a gateway restart does to sessions the bridge created."""
        with self._cond:
            self._sessions.clear()
            self._cond.notify_all()

    # -- records ---------------------------------------------------------

    @property
    def injections(self) -> list[Injection]:
        with self._cond:
            return list(self._injections)

    @property
    def invoke_bodies(self) -> list[Any]:
        """Every parsed ``/tools/invoke`` body that passed authentication."""
        with self._cond:
            return list(self._invoke_bodies)

    @property
    def connect_params(self) -> list[dict[str, Any]]:
        """``params`` of every WebSocket ``connect`` request, right token or not."""
        with self._cond:
            return list(self._connect_params)

    @property
    def ws_requests(self) -> list[dict[str, Any]]:
        """Every WebSocket request after a successful ``connect``."""
        with self._cond:
            return list(self._ws_requests)

    @property
    def sessions(self) -> dict[str, dict[str, Any]]:
        with self._cond:
            return {
                key: {"agentId": s.agent_id, "label": s.label} for key, s in self._sessions.items()
            }

    @property
    def sessions_create_calls(self) -> int:
        with self._cond:
            return self._sessions_create_calls

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Block until ``predicate()`` (called under the lock) holds, or raise ``TimeoutError``."""
        self._wait_for(predicate, timeout, lambda: "condition not met")

    def wait_for_injections(self, n: int, timeout: float = 5.0) -> list[Injection]:
        """Block until at least ``n`` injections landed; return them all."""
        self._wait_for(
            lambda: len(self._injections) >= n,
            timeout,
            lambda: f"expected {n} injections, got {len(self._injections)}",
        )
        return self.injections

    # the wait runs in a worker thread, out of reach of cancel scopes: it needs its own timeout
    async def await_injections(
        self,
        n: int,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> list[Injection]:
        """``wait_for_injections`` for async tests, without blocking the event loop."""
        return await anyio.to_thread.run_sync(
            functools.partial(self.wait_for_injections, n, timeout), abandon_on_cancel=True
        )

    async def await_ws_request(
        self,
        method: str,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> dict[str, Any]:
        """Wait until a WebSocket request for ``method`` came in; return the first one."""

        def wait() -> dict[str, Any]:
            found = self._wait_for(
                lambda: [r for r in self._ws_requests if r.get("method") == method],
                timeout,
                lambda: f"no {method} request",
            )
            return found[0]

        return await anyio.to_thread.run_sync(wait, abandon_on_cancel=True)

    # -- internals: shared ---------------------------------------------------

    def _wait_for(
        self, predicate: Callable[[], T], timeout: float, failure: Callable[[], str]
    ) -> T:
        """The one wait on the records: on the condition variable every record notifies
        (no polling); ``predicate`` runs under the lock. ``NotInTime`` (a ``TimeoutError``)
        saying ``failure()`` once ``timeout`` passed."""
        with self._cond:
            found = self._cond.wait_for(predicate, timeout)
            if not found:
                raise NotInTime(f"fake gateway: {failure()} within {timeout} s", found)
            return found

    def _take(self, name: Literal["_http_faults", "_send_faults", "_ws_faults"]) -> _Fault | None:
        with self._cond:
            fault: _Fault | None = getattr(self, name)
            if fault is None or fault.remaining <= 0:
                return None
            fault.remaining -= 1
            return fault

    async def _delay(self) -> None:
        stopping = self._server.stopping
        if self.delay_seconds > 0 and stopping is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self.delay_seconds)

    def _session_exists(self, key: str) -> bool:
        return key in self._sessions or bool(_MAIN_KEY.match(key))

    def _record(self, injection: Injection) -> None:
        with self._cond:
            self._injections.append(injection)
            session = self._sessions.get(injection.key)
            if session is None:  # agent:<id>:main, made on demand
                session = _Session(injection.key, None, None, injection.ts)
                self._sessions[injection.key] = session
            session.inputs.append(injection)
            self._cond.notify_all()

    # -- internals: HTTP -----------------------------------------------------

    async def _readyz(self, request: Request) -> JSONResponse:
        return JSONResponse({"ready": True})

    async def _invoke(self, request: Request) -> JSONResponse:
        await self._delay()
        fault = self._take("_http_faults")
        if fault is not None:
            headers = {}
            if fault.retry_after is not None:
                headers["Retry-After"] = str(int(fault.retry_after))
            return _http_error(fault.status, "unavailable", "simulated failure", headers)
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return JSONResponse(
                {"error": {"message": "Unauthorized", "type": "unauthorized"}}, status_code=401
            )
        try:
            body = json.loads(await request.body())
        except ValueError:
            return JSONResponse(
                {"error": {"message": "body is not JSON", "type": "invalid_request_error"}},
                status_code=400,
            )
        with self._cond:
            self._invoke_bodies.append(body)
            self._cond.notify_all()
        if not isinstance(body, dict) or not isinstance(body.get("tool"), str):
            return _http_error(400, "invalid_request", "tools.invoke requires name")
        tool = body["tool"]
        if tool not in self.allowed_tools:
            return _http_error(404, "not_found", f"Tool not available: {tool}")
        args = body.get("args") or {}
        caller = body.get("sessionKey") or "agent:main:main"
        if not isinstance(args, dict) or not isinstance(caller, str):
            return _http_error(400, "invalid_request", "args must be an object")
        if tool == "sessions_send" and not (
            isinstance(args.get("message"), str) and args["message"].strip()
        ):
            return _http_error(400, "tool_error", "message required")
        if tool == "sessions_send":
            details = self._sessions_send(args, caller)
        elif tool == "sessions_history":
            details = self._sessions_history(args)
        elif tool == "sessions_list":
            details = self._sessions_list()
        else:
            details = {"status": "error", "error": f"Unknown tool: {tool}"}
        return JSONResponse({"ok": True, "result": _tool_result(details)})

    def _sessions_send(self, args: dict[str, Any], caller: str) -> dict[str, Any]:
        key, message = args.get("sessionKey"), args.get("message")
        timeout = args.get("timeoutSeconds", 30)
        run_id = str(uuid.uuid4())
        assert isinstance(message, str)  # checked by _invoke (HTTP 400)
        if not isinstance(key, str) or not key:
            return {
                "runId": run_id,
                "status": "error",
                "error": "Either sessionKey or label is required",
            }
        fault = self._take("_send_faults")
        if fault is not None:
            return {
                "runId": run_id,
                "status": fault.detail_status,
                "error": fault.error,
                "sessionKey": key,
            }
        with self._cond:
            exists = self._session_exists(key)
        if not exists:
            return {
                "runId": run_id,
                "status": "error",
                "error": f"No session found: {key}",
                "sessionKey": key,
            }
        if timeout != 0 and caller == key:
            return {
                "runId": run_id,
                "status": "error",
                "error": (
                    "sessions_send cannot target the calling session; use your own reply instead"
                ),
                "sessionKey": key,
            }
        self._record(
            Injection(
                key=key,
                caller=caller,
                message=message,
                via="sessions_send",
                ts=time.time(),
                timeout_seconds=timeout,
            )
        )
        self._start_run(run_id)
        return {
            "runId": run_id,
            "status": "accepted",
            "sessionKey": key,
            "targetDisposition": "queued",
            "delivery": {"status": "pending", "mode": "announce"},
        }

    def _sessions_history(self, args: dict[str, Any]) -> dict[str, Any]:
        key = args.get("sessionKey")
        limit = args.get("limit", 20)
        with self._cond:
            session = self._sessions.get(key) if isinstance(key, str) else None
            if session is None:
                return {"status": "error", "error": f"No session found: {key}"}
            inputs = session.inputs[-limit:] if isinstance(limit, int) and limit > 0 else []
            total = len(session.inputs)
            # the real gateway's tool view shows every pending input as role "user" and
            # drops its provenance; with no model key its run fails at once
            items = [
                {
                    "id": str(uuid.uuid5(uuid.NAMESPACE_OID, f"{key}:{n}")),
                    "state": "interrupted",
                    "acceptedAt": int(i.ts * 1000),
                    "message": {"role": "user", "content": i.message.strip()},
                }
                for n, i in enumerate(inputs, start=total - len(inputs))
            ]
        return {
            "sessionKey": key,
            "messages": [],
            "truncated": False,
            "droppedMessages": False,
            "contentTruncated": False,
            "contentRedacted": False,
            "bytes": len(json.dumps(items)),
            "pendingInputs": {"items": items, "total": total},
        }

    def _sessions_list(self) -> dict[str, Any]:
        with self._cond:
            sessions = [
                {
                    "key": s.key,
                    "sessionId": s.session_id,
                    "agentId": s.agent_id,
                    "kind": "main" if _MAIN_KEY.match(s.key) else "other",
                    "label": s.label,
                    "displayName": s.label or s.key,
                }
                for s in self._sessions.values()
            ]
        return {"count": len(sessions), "sessions": sessions, "hasMore": False, "limitApplied": 100}

    # -- internals: WebSocket ------------------------------------------------

    async def _websocket(self, ws: WebSocket) -> None:
        await ws.accept()
        with contextlib.suppress(WebSocketDisconnect, WebSocketDisconnected, OSError):
            await self._converse(ws)

    async def _converse(self, ws: WebSocket) -> None:
        if self.send_challenge:
            payload = {"nonce": secrets.token_urlsafe(16), "ts": int(time.time() * 1000)}
            event = {"type": "event", "event": "connect.challenge", "payload": payload}
            await ws.send_text(json.dumps(event))

        first = _parse_frame(await ws.receive_text())
        if first is None or first.get("method") != "connect":
            await _send_res(
                ws, _req_id(first), error=("INVALID_REQUEST", "first frame not connect")
            )
            await ws.close(1008, "first frame must be connect")
            return
        params = first.get("params")
        params = params if isinstance(params, dict) else {}
        with self._cond:
            self._connect_params.append(params)
            self._cond.notify_all()
        auth = params.get("auth")
        token = auth.get("token") if isinstance(auth, dict) else None
        if token != self.token:
            await _send_res(ws, first.get("id"), error=("UNAUTHORIZED", "gateway token mismatch"))
            await ws.close(1008, "unauthorized")
            return
        low, high = params.get("minProtocol"), params.get("maxProtocol")
        if not (isinstance(low, int) and isinstance(high, int) and low <= 4 <= high):
            await _send_res(ws, first.get("id"), error=("INVALID_REQUEST", "protocol mismatch"))
            await ws.close(1002, "protocol mismatch")
            return
        await _send_res(
            ws,
            first.get("id"),
            payload={
                "type": "hello-ok",
                "protocol": PROTOCOL_VERSION,
                "policy": {"tickIntervalMs": 15000},
            },
        )

        while True:
            frame = _parse_frame(await ws.receive_text())
            if frame is None or frame.get("type") != "req":
                await _send_res(ws, _req_id(frame), error=("INVALID_REQUEST", "invalid frame"))
                continue
            with self._cond:
                self._ws_requests.append(frame)
                self._cond.notify_all()
            await self._delay()
            fault = self._take("_ws_faults")
            if fault is not None:
                await _send_res(ws, frame.get("id"), error=(fault.code, fault.error))
                continue
            params = frame.get("params")
            params = params if isinstance(params, dict) else {}
            method = frame.get("method")
            if method == "sessions.create":
                payload, error = self._sessions_create(params)
            elif method == "agent":
                payload, error = self._agent(params)
            elif method == "agent.wait":
                payload, error = self._agent_wait(params)
            else:
                payload, error = None, ("INVALID_REQUEST", f"unknown method: {method}")
            await _send_res(ws, frame.get("id"), payload=payload, error=error)

    def _sessions_create(
        self, params: dict[str, Any]
    ) -> tuple[dict[str, Any] | None, tuple[str, str] | None]:
        key, agent_id, label = params.get("key"), params.get("agentId"), params.get("label")
        with self._cond:
            self._sessions_create_calls += 1
            self._cond.notify_all()
            if not isinstance(key, str) or not key.startswith("agent:"):
                return None, ("INVALID_REQUEST", "invalid session key")
            if self.known_agent_ids is not None and agent_id not in self.known_agent_ids:
                return None, ("INVALID_REQUEST", f'Unknown agent id "{agent_id}"')
            session = self._sessions.get(key)
            if session is None:
                session = self._sessions[key] = _Session(key, agent_id, label, time.time())
        entry = {
            "sessionId": session.session_id,
            "label": session.label,
            "createdVia": "operator",
            "createdAt": int(session.created_at * 1000),
            "parentSessionKey": f"agent:{agent_id}:main",
        }
        payload = {"ok": True, "key": key, "sessionId": session.session_id, "entry": entry}
        return {**payload, "runStarted": False}, None

    def _agent(
        self, params: dict[str, Any]
    ) -> tuple[dict[str, Any] | None, tuple[str, str] | None]:
        key, message = params.get("sessionKey"), params.get("message")
        idempotency_key = params.get("idempotencyKey")
        provenance = params.get("inputProvenance")
        if not isinstance(key, str) or not isinstance(message, str):
            return None, ("INVALID_REQUEST", "sessionKey and message required")
        if not isinstance(idempotency_key, str) or not idempotency_key:
            return None, ("INVALID_REQUEST", "idempotencyKey required")
        source = provenance.get("sourceSessionKey") if isinstance(provenance, dict) else None
        self._record(
            Injection(
                key=key,
                caller=source if isinstance(source, str) else key,
                message=message,
                via="agent",
                ts=time.time(),
                idempotency_key=idempotency_key,
                input_provenance=provenance if isinstance(provenance, dict) else None,
            )
        )
        run_id = str(uuid.uuid4())
        self._start_run(run_id)
        return {"runId": run_id, "status": "accepted"}, None

    def _start_run(self, run_id: str) -> None:
        """The run's outcome is fixed when it starts (the real one ends within seconds)."""
        now = int(time.time() * 1000)
        outcome: dict[str, Any] = {"runId": run_id, "status": "ok"}
        if self.run_error is not None:
            outcome = {**outcome, "status": "error", "error": self.run_error}
        with self._cond:
            self._runs[run_id] = {**outcome, "startedAt": now, "endedAt": now}

    def _agent_wait(
        self, params: dict[str, Any]
    ) -> tuple[dict[str, Any] | None, tuple[str, str] | None]:
        run_id = params.get("runId")
        if not isinstance(run_id, str) or not run_id:
            return None, ("INVALID_REQUEST", "runId required")
        with self._cond:
            outcome = self._runs.get(run_id)
        # an unknown run answers like one that did not end within timeoutMs
        return outcome or {"runId": run_id, "status": "timeout"}, None


def _http_error(
    status: int, kind: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"ok": False, "error": {"type": kind, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


def _tool_result(details: dict[str, Any]) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": json.dumps(details)}], "details": details}


def _parse_frame(raw: str) -> dict[str, Any] | None:
    try:
        frame = json.loads(raw)
    except ValueError:
        return None
    return frame if isinstance(frame, dict) else None


def _req_id(frame: dict[str, Any] | None) -> Any:
    return frame.get("id") if frame is not None else None


async def _send_res(
    ws: WebSocket,
    req_id: Any,
    *,
    payload: dict[str, Any] | None = None,
    error: tuple[str, str] | None = None,
) -> None:
    res: dict[str, Any] = {"type": "res", "id": req_id, "ok": error is None}
    if error is None:
        res["payload"] = payload or {}
    else:
        res["error"] = {"code": error[0], "message": error[1]}
    await ws.send_text(json.dumps(res))
