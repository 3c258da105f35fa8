"""The bridge's client of the OpenClaw gateway: the calls and their transport (contract, 6).

Two surfaces of the gateway are used:

- its WebSocket RPC at ``/``, to create the per-peer session
  (``sessions.create``, no model run, safe to repeat) and, for a peer agent
  whose tool policy denies session tools, to inject through the ``agent``
  method with inter-session provenance;
- ``POST /tools/invoke`` with ``sessions_send``, to inject a message, with the
  per-peer session as both target and caller and ``timeoutSeconds: 0`` so
  that no reply-back exchange reaches another session.

A message counts as delivered only when the gateway said so: HTTP 200 with
``result.details.status == "accepted"``, or an ``ok: true`` answer to
``agent``. Everything else raises a ``GatewayError`` (``gateway_errors.py``,
which also classifies the answers); the injector keeps the message
unacknowledged and tries again as the error's retry decision says.

Beside it: ``sessions.py`` (which sessions this process created),
``session_keys.py`` (the key format), ``probe.py`` (what ``doctor`` checks).
The gateway token never appears in a log line or an exception message.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit, urlunsplit

import anyio
import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from mailbox_mcp.openclaw.gateway_errors import (
    NO_SESSION,
    PROTOCOL_VERSION,
    GatewayAuthError,
    GatewayRejected,
    GatewayUnreachable,
    invoke_details,
    not_accepted,
    rpc_error,
    websocket_failure,
)
from mailbox_mcp.openclaw.sessions import CreateRequest, SessionRegistry, create_request

__all__ = ["PROTOCOL_VERSION", "GatewayClient"]

logger = logging.getLogger(__name__)


class GatewayClient:
    """Creates per-peer sessions and injects messages into them.

    ``gateway_url`` is ``OPENCLAW_GATEWAY_URL`` (``http(s)://host:port``;
    ``ws(s)://`` is accepted too). The client owns an ``httpx.AsyncClient``:
    use ``async with`` or call ``aclose()``.
    """

    def __init__(
        self,
        gateway_url: str,
        token: str,
        agent_id: str,
        client_version: str,
        *,
        connect_timeout: float = 5.0,
        request_timeout: float = 10.0,
    ) -> None:
        parts = urlsplit(gateway_url.strip())
        scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
        if scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"OPENCLAW_GATEWAY_URL must look like http://127.0.0.1:18789, got {gateway_url!r}"
            )
        self._http_base = urlunsplit((scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
        ws_scheme = "wss" if scheme == "https" else "ws"
        self._ws_url = urlunsplit((ws_scheme, parts.netloc, "/", "", ""))
        self._token = token
        self.agent_id = agent_id
        self.client_version = client_version
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(request_timeout, connect=connect_timeout),
            headers={"User-Agent": f"agent-mailbox/{client_version}"},
        )
        self.sessions = SessionRegistry()

    @property
    def url(self) -> str:
        return self._http_base

    @property
    def ws_url(self) -> str:
        return self._ws_url

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- sessions ------------------------------------------------------------

    async def ensure_session(self, session_key: str, label: str) -> None:
        """Create ``session_key`` on the gateway once per process (idempotent there too).

        Raises ``GatewayError``.
        """
        self.sessions.remember_label(session_key, label)
        async with self.sessions.lock:
            if self.sessions.is_created(session_key):
                return
            await self._ws_calls([self._create_request(session_key, label)])
            self.sessions.mark_created(session_key)
            logger.info("gateway session %s is ready", session_key)

    def forget_session(self, session_key: str) -> None:
        """Make the next ``ensure_session`` for this key ask the gateway again."""
        self.sessions.forget(session_key)

    # -- injection -------------------------------------------------------------

    async def inject(self, session_key: str, text: str) -> str | None:
        """Inject ``text`` into ``session_key`` with ``sessions_send`` over HTTP.

        Returns the run's id, only when the gateway accepted the message. If the gateway lost
        the session (a restart), it is created again and the send retried once.
        Raises ``GatewayError``.
        """
        label = self.sessions.label_for(session_key)
        await self.ensure_session(session_key, label)
        try:
            run_id = await self.sessions_send(session_key, text)
        except GatewayRejected as exc:
            if exc.status != "error" or NO_SESSION not in exc.message.lower():
                raise
            logger.warning("gateway lost session %s; creating it again", session_key)
            self.forget_session(session_key)
            await self.ensure_session(session_key, label)
            run_id = await self.sessions_send(session_key, text)
        logger.debug("injected into %s (run %s)", session_key, run_id)
        return run_id

    async def inject_via_agent(
        self, session_key: str, text: str, idempotency_key: str
    ) -> str | None:
        """Inject ``text`` through the WebSocket ``agent`` method.

        For a per-peer agent whose tool policy denies session tools; the input
        carries the same inter-session provenance as ``sessions_send``. Returns
        the run's id when the gateway accepted the run. Raises ``GatewayError``.
        """
        label = self.sessions.label_for(session_key)
        agent_request: CreateRequest = (
            "agent",
            {
                "sessionKey": session_key,
                "message": text,
                "idempotencyKey": idempotency_key,
                "inputProvenance": {
                    "kind": "inter_session",
                    "sourceSessionKey": session_key,
                    "sourceTool": "sessions_send",
                },
            },
        )
        for attempt in range(2):
            async with self.sessions.lock:
                # one connection: create the session first if this process has not yet
                requests = [agent_request]
                if not self.sessions.is_created(session_key):
                    requests.insert(0, self._create_request(session_key, label))
                try:
                    payloads = await self._ws_calls(requests)
                except GatewayRejected as exc:
                    if attempt or NO_SESSION not in exc.message.lower():
                        raise
                    self.forget_session(session_key)
                    continue
                self.sessions.mark_created(session_key)
                break
        payload = payloads[-1]
        status = payload.get("status")
        if status in ("error", "failed", "rejected"):
            raise GatewayRejected(
                f"the gateway did not accept the run in {session_key}: {status}",
                status=status,
            )
        run_id = payload.get("runId")
        logger.debug("injected into %s via agent (run %s)", session_key, run_id)
        return run_id if isinstance(run_id, str) else None

    async def wait_for_run(self, run_id: str, timeout_ms: int) -> dict[str, Any]:
        """``agent.wait``: the run's outcome (``status`` ok or error, with ``error``), or
        ``timeout``/``pending`` while it is still queued or running. Raises ``GatewayError``."""
        request = ("agent.wait", {"runId": run_id, "timeoutMs": timeout_ms})
        [payload] = await self._ws_calls([request])
        return payload

    async def handshake(self) -> None:
        """Connect and authenticate over the WebSocket, calling nothing. Raises
        ``GatewayError`` (``GatewayAuthError`` for a refused token)."""
        await self._ws_calls([])

    # -- HTTP ------------------------------------------------------------------

    async def sessions_send(self, session_key: str, text: str) -> str | None:
        """One ``sessions_send`` over HTTP, the session as its own caller; the run's id when
        accepted. No session is created first. Raises ``GatewayError``."""
        body = {
            "tool": "sessions_send",
            "sessionKey": session_key,
            "args": {"sessionKey": session_key, "message": text, "timeoutSeconds": 0},
        }
        url = f"{self._http_base}/tools/invoke"
        try:
            response = await self._http.post(
                url, json=body, headers={"Authorization": f"Bearer {self._token}"}
            )
        except httpx.TimeoutException as exc:
            raise GatewayUnreachable(f"gateway timed out ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            raise GatewayUnreachable(f"cannot reach the gateway: {self.safe(exc)}") from None
        details = invoke_details(response, self.safe)
        if details.get("status") == "accepted":
            run_id = details.get("runId")
            return run_id if isinstance(run_id, str) else None
        raise not_accepted(session_key, details, self.safe)

    # -- WebSocket RPC ---------------------------------------------------------

    def _create_request(self, session_key: str, label: str) -> CreateRequest:
        return create_request(session_key, label, self.agent_id)

    def _connect_params(self) -> dict[str, Any]:
        return {
            "minProtocol": PROTOCOL_VERSION,
            "maxProtocol": PROTOCOL_VERSION,
            "client": {
                "id": "gateway-client",
                "version": self.client_version,
                "platform": sys.platform,
                "mode": "backend",
            },
            "role": "operator",
            "scopes": ["operator.read", "operator.write"],
            "caps": [],
            "commands": [],
            "permissions": {},
            "auth": {"token": self._token},
        }

    async def _ws_calls(self, requests: Sequence[CreateRequest]) -> list[dict[str, Any]]:
        """Connect, authenticate, run ``requests`` in order; return their payloads."""
        try:
            async with connect(
                self._ws_url,
                open_timeout=self.connect_timeout,
                close_timeout=self.connect_timeout,
                max_size=2**22,
                user_agent_header=f"agent-mailbox/{self.client_version}",
            ) as ws:
                with anyio.fail_after(self.connect_timeout):
                    await _wait_for_challenge(ws)
                await self._call(ws, "1", "connect", self._connect_params(), handshake=True)
                return [
                    await self._call(ws, str(n), method, params)
                    for n, (method, params) in enumerate(requests, start=2)
                ]
        except (OSError, WebSocketException) as exc:  # TimeoutError is an OSError
            raise websocket_failure(exc, self._ws_url, self.safe) from None

    async def _call(
        self,
        ws: ClientConnection,
        req_id: str,
        method: str,
        params: dict[str, Any],
        *,
        handshake: bool = False,
    ) -> dict[str, Any]:
        await ws.send(json.dumps({"type": "req", "id": req_id, "method": method, "params": params}))
        try:
            with anyio.fail_after(self.request_timeout):
                res = await _wait_for_res(ws, req_id)
        except ConnectionClosed as exc:
            # the gateway closes with 1008 (policy violation) on bad credentials
            if handshake and exc.rcvd is not None and exc.rcvd.code == 1008:
                raise GatewayAuthError(
                    f"the gateway closed the connection: {self.safe(exc.rcvd.reason)}"
                ) from None
            raise
        if res.get("ok") is True:
            payload = res.get("payload")
            return payload if isinstance(payload, dict) else {}
        raise rpc_error(method, res.get("error"), handshake=handshake, safe=self.safe)

    def safe(self, value: object) -> str:
        """``str(value)`` with the token cut out, in case something echoes it."""
        text = str(value)
        return text.replace(self._token, "[token]") if self._token else text


async def _wait_for_challenge(ws: ClientConnection) -> None:
    async for raw in ws:
        frame = _frame(raw)
        if frame.get("type") == "event" and frame.get("event") == "connect.challenge":
            return
    # the gateway closed before answering (the connection's own attributes live on .protocol)
    raise ConnectionClosed(ws.protocol.close_rcvd, ws.protocol.close_sent)


async def _wait_for_res(ws: ClientConnection, req_id: str) -> dict[str, Any]:
    # other frames (ticks, presence, answers to nothing of ours) are skipped
    async for raw in ws:
        frame = _frame(raw)
        if frame.get("type") == "res" and frame.get("id") == req_id:
            return frame
    # the gateway closed before answering (the connection's own attributes live on .protocol)
    raise ConnectionClosed(ws.protocol.close_rcvd, ws.protocol.close_sent)


def _frame(raw: str | bytes) -> dict[str, Any]:
    try:
        frame = json.loads(raw)
    except ValueError:
        logger.debug("ignoring a non-JSON frame from the gateway")
        return {}
    return frame if isinstance(frame, dict) else {}
