"""The bridge's client of the OpenClaw gateway (contract, section 6).

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
``agent``. Everything else raises a ``GatewayError``; the listener keeps the
message unacknowledged and retries with backoff. ``retryable`` tells whether
waiting can help or the owner has to change the configuration first; ``fix``
says what to do, for the log and for ``mailbox-mcp doctor``.

Exceptions::

    GatewayError                 root; .retryable, .fix
    ├── GatewayUnreachable       cannot connect, timeout, 5xx, 429 (retryable)
    ├── GatewayAuthError         401, WebSocket unauthorized: OPENCLAW_GATEWAY_TOKEN
    ├── GatewayToolNotAllowed    404 "Tool not available": gateway.tools.allow
    └── GatewayRejected          the gateway answered, but did not accept

The gateway token never appears in a log line or an exception message.
"""

from __future__ import annotations

import json
import logging
import secrets
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit, urlunsplit

import anyio
import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI, WebSocketException

__all__ = [
    "PROTOCOL_VERSION",
    "SESSIONS_SEND_FIX",
    "TOKEN_FIX",
    "GatewayAuthError",
    "GatewayCheck",
    "GatewayClient",
    "GatewayError",
    "GatewayRejected",
    "GatewayToolNotAllowed",
    "GatewayUnreachable",
]

logger = logging.getLogger(__name__)

PROTOCOL_VERSION = 4

TOKEN_FIX = (
    "Set OPENCLAW_GATEWAY_TOKEN to the gateway's token (gateway.auth.token in openclaw.json, "
    "or the OPENCLAW_GATEWAY_TOKEN the gateway was started with)."
)
SESSIONS_SEND_FIX = (
    'Add "gateway": {"tools": {"allow": ["sessions_send"]}} to openclaw.json '
    "(keep any tools already listed there); the gateway reloads it by itself. "
    "If the per-peer session belongs to an agent whose tool policy denies session tools, "
    "that policy also blocks sessions_send over HTTP."
)
_UNREACHABLE_FIX = (
    "Start the OpenClaw gateway (openclaw gateway run) and check that OPENCLAW_GATEWAY_URL "
    "points at it, e.g. http://127.0.0.1:18789."
)
_NO_SESSION = "no session found"


class GatewayError(Exception):
    """Root of every error of the gateway client.

    ``retryable`` is true when waiting and trying again can succeed without
    any change of configuration; ``fix`` is a hint a person can act on.
    """

    retryable: bool = False

    def __init__(self, message: str, *, fix: str | None = None, retryable: bool | None = None):
        super().__init__(message)
        self.message = message
        self.fix = fix
        if retryable is not None:
            self.retryable = retryable


class GatewayUnreachable(GatewayError):
    """The gateway could not be reached or was not able to answer (retryable).

    ``retry_after`` is the gateway's ``Retry-After`` in seconds, if it sent one.
    """

    retryable = True

    def __init__(
        self, message: str, *, fix: str | None = _UNREACHABLE_FIX, retry_after: float | None = None
    ):
        super().__init__(message, fix=fix)
        self.retry_after = retry_after


class GatewayAuthError(GatewayError):
    """The gateway refused the token (HTTP 401, WebSocket unauthorized)."""

    def __init__(self, message: str, *, fix: str | None = TOKEN_FIX):
        super().__init__(message, fix=fix)


class GatewayToolNotAllowed(GatewayError):
    """``/tools/invoke`` answered 404 ``Tool not available: sessions_send``."""

    def __init__(self, message: str, *, fix: str | None = SESSIONS_SEND_FIX):
        super().__init__(message, fix=fix)


class GatewayRejected(GatewayError):
    """The gateway answered but did not accept: a status other than ``accepted``,
    an ``ok: false`` RPC answer, or an HTTP error that waiting will not cure.

    ``status`` is ``result.details.status`` or the HTTP status code; ``code``
    the RPC error code, if any.
    """

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        status: str | int | None = None,
        code: str | None = None,
        fix: str | None = None,
        retryable: bool | None = None,
    ):
        super().__init__(message, fix=fix, retryable=retryable)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class GatewayCheck:
    """What ``doctor`` learns about the gateway.

    A ``None`` means "not checked", because an earlier step failed. Each
    ``*_fix`` is set when its check failed.
    """

    reachable: bool
    token_accepted: bool | None
    sessions_send_allowed: bool | None
    reachable_fix: str | None = None
    token_fix: str | None = None
    sessions_send_fix: str | None = None

    @property
    def ok(self) -> bool:
        return bool(self.reachable and self.token_accepted and self.sessions_send_allowed)

    @property
    def fixes(self) -> list[str]:
        return [f for f in (self.reachable_fix, self.token_fix, self.sessions_send_fix) if f]


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
        self._created: set[str] = set()
        self._labels: dict[str, str] = {}
        self._create_lock = anyio.Lock()

    @property
    def url(self) -> str:
        return self._http_base

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
        self._labels[session_key] = label
        async with self._create_lock:
            if session_key in self._created:
                return
            await self._ws_calls([self._create_request(session_key, label)])
            self._created.add(session_key)
            logger.info("gateway session %s is ready", session_key)

    def forget_session(self, session_key: str) -> None:
        """Make the next ``ensure_session`` for this key ask the gateway again."""
        self._created.discard(session_key)

    # -- injection -------------------------------------------------------------

    async def inject(self, session_key: str, text: str) -> str | None:
        """Inject ``text`` into ``session_key`` with ``sessions_send`` over HTTP.

        Returns the run's id, only when the gateway accepted the message. If the gateway lost
        the session (a restart), it is created again and the send retried once.
        Raises ``GatewayError``.
        """
        label = self._label_for(session_key)
        await self.ensure_session(session_key, label)
        try:
            run_id = await self._sessions_send(session_key, text)
        except GatewayRejected as exc:
            if exc.status != "error" or _NO_SESSION not in exc.message.lower():
                raise
            logger.warning("gateway lost session %s; creating it again", session_key)
            self.forget_session(session_key)
            await self.ensure_session(session_key, label)
            run_id = await self._sessions_send(session_key, text)
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
        label = self._label_for(session_key)
        agent_request = (
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
            async with self._create_lock:
                # one connection: create the session first if this process has not yet
                requests = [agent_request]
                if session_key not in self._created:
                    requests.insert(0, self._create_request(session_key, label))
                try:
                    payloads = await self._ws_calls(requests)
                except GatewayRejected as exc:
                    if attempt or _NO_SESSION not in exc.message.lower():
                        raise
                    self.forget_session(session_key)
                    continue
                self._created.add(session_key)
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

    # -- doctor ------------------------------------------------------------------

    async def check(self) -> GatewayCheck:
        """Is the gateway reachable, the token accepted and ``sessions_send`` allowed?

        Starts no model run and creates no session: the ``sessions_send`` probe
        goes to a session key that does not exist.
        """
        unreachable: list[str] = []
        token_fix: str | None = None
        token_checked = False
        try:
            await self._ws_calls([])
            token_checked = True
        except GatewayUnreachable as exc:
            unreachable.append(f"WebSocket {self._ws_url}: {exc.message}")
        except GatewayError as exc:
            token_checked = True
            token_fix = f"{exc.message}. {exc.fix or ''}".strip()

        allowed: bool | None = None
        send_fix: str | None = None
        probe = f"agent:{self.agent_id}:dm:mailbox-doctor-probe-{secrets.token_hex(4)}"
        try:
            await self._sessions_send(probe, "mailbox doctor probe (no such session)")
            allowed = True  # only if someone created the probe key; still proves it
        except GatewayUnreachable as exc:
            unreachable.append(f"HTTP {self._http_base}: {exc.message}")
        except GatewayAuthError as exc:
            token_checked = True
            token_fix = token_fix or f"{exc.message}. {exc.fix}"
        except GatewayToolNotAllowed as exc:
            token_checked = True
            allowed, send_fix = False, f"{exc.message}. {exc.fix}"
        except GatewayRejected as exc:
            token_checked = True
            if _NO_SESSION in exc.message.lower():
                allowed = True
            else:
                allowed = False
                send_fix = f"sessions_send probe failed: {exc.message}. {exc.fix or ''}".strip()

        return GatewayCheck(
            reachable=not unreachable,
            token_accepted=(token_fix is None) if token_checked else None,
            sessions_send_allowed=allowed,
            reachable_fix=f"{'; '.join(unreachable)}. {_UNREACHABLE_FIX}" if unreachable else None,
            token_fix=token_fix,
            sessions_send_fix=send_fix,
        )

    # -- HTTP ------------------------------------------------------------------

    async def _sessions_send(self, session_key: str, text: str) -> str | None:
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
            raise GatewayUnreachable(f"cannot reach the gateway: {self._safe(exc)}") from None
        details = self._parse_invoke(response)
        status = details.get("status")
        if status == "accepted":
            run_id = details.get("runId")
            return run_id if isinstance(run_id, str) else None
        message = _first_str(details.get("error"), details.get("message")) or f"status {status!r}"
        message = self._safe(message)
        if status == "forbidden":
            raise GatewayRejected(
                f"sessions_send to {session_key} was forbidden: {message}",
                status=status,
                retryable=False,
                fix="Check the tool policy of the agent of the per-peer session in openclaw.json.",
            )
        raise GatewayRejected(
            f"sessions_send to {session_key} was not accepted: {message}", status=status
        )

    def _parse_invoke(self, response: httpx.Response) -> dict[str, Any]:
        """``result.details`` of a 200 answer; raises ``GatewayError`` for any other."""
        code = response.status_code
        error_message = self._safe(_error_message(response))
        if code in (401, 403):
            raise GatewayAuthError(f"the gateway refused the token (HTTP {code})")
        if code == 404 and "tool not available" in error_message.lower():
            raise GatewayToolNotAllowed(f"the gateway answered 404: {error_message}")
        if code == 429:
            raise GatewayUnreachable(
                "the gateway is rate limiting (HTTP 429)",
                fix="Wait; the bridge retries by itself.",
                retry_after=_retry_after(response),
            )
        if code >= 500 or code == 408:
            raise GatewayUnreachable(
                f"the gateway answered HTTP {code}: {error_message}",
                retry_after=_retry_after(response),
            )
        if code == 404 or code == 405:
            raise GatewayRejected(
                f"no tools endpoint at {response.request.url} (HTTP {code})",
                status=code,
                retryable=False,
                fix="Check that OPENCLAW_GATEWAY_URL is the gateway's own http(s)://host:port.",
            )
        if code == 413:
            raise GatewayRejected(
                "the gateway refused the message as too large (HTTP 413)",
                status=code,
                retryable=False,
            )
        if code != 200:
            raise GatewayRejected(
                f"the gateway answered HTTP {code}: {error_message}", status=code, retryable=False
            )
        try:
            data = response.json()
        except ValueError:
            data = None
        result = data.get("result") if isinstance(data, dict) else None
        details = result.get("details") if isinstance(result, dict) else None
        if (
            not isinstance(data, dict)
            or data.get("ok") is not True
            or not isinstance(details, dict)
        ):
            raise GatewayRejected(
                f"unexpected answer from the gateway: {error_message or 'no result.details'}",
                status=code,
            )
        return details

    # -- WebSocket RPC ---------------------------------------------------------

    def _create_request(self, session_key: str, label: str) -> tuple[str, dict[str, Any]]:
        return (
            "sessions.create",
            {"key": session_key, "agentId": self._agent_of(session_key), "label": label},
        )

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

    async def _ws_calls(
        self, requests: Sequence[tuple[str, dict[str, Any]]]
    ) -> list[dict[str, Any]]:
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
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):
                raise GatewayAuthError(
                    f"the gateway refused the WebSocket (HTTP {status})"
                ) from None
            raise GatewayUnreachable(
                f"the gateway refused the WebSocket upgrade (HTTP {status})"
            ) from None
        except InvalidURI:
            raise GatewayRejected(
                f"invalid gateway WebSocket URL {self._ws_url}", retryable=False
            ) from None
        except TimeoutError:
            raise GatewayUnreachable("the gateway did not answer in time") from None
        except ConnectionClosed as exc:
            raise GatewayUnreachable(
                f"the gateway closed the WebSocket ({self._safe(str(exc))})"
            ) from None
        except (OSError, WebSocketException) as exc:
            raise GatewayUnreachable(f"cannot reach the gateway: {self._safe(exc)}") from None

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
                    f"the gateway closed the connection: {self._safe(exc.rcvd.reason)}"
                ) from None
            raise
        if res.get("ok") is True:
            payload = res.get("payload")
            return payload if isinstance(payload, dict) else {}
        raise self._rpc_error(method, res.get("error"), handshake=handshake)

    def _rpc_error(self, method: str, error: Any, *, handshake: bool) -> GatewayError:
        error = error if isinstance(error, dict) else {}
        code = error.get("code") if isinstance(error.get("code"), str) else None
        message = self._safe(_first_str(error.get("message")) or "no message")
        text = f"gateway {method} failed: {code or 'error'}: {message}"
        lowered = f"{code} {message}".lower()
        if handshake and any(w in lowered for w in ("unauthorized", "token", "auth")):
            return GatewayAuthError(text)
        retry_ms = error.get("retryAfterMs")
        if code == "UNAVAILABLE" or error.get("retryable") is True:
            return GatewayUnreachable(
                text, retry_after=retry_ms / 1000 if isinstance(retry_ms, int | float) else None
            )
        if handshake:
            return GatewayRejected(
                text,
                code=code,
                retryable=False,
                fix=f"Use an OpenClaw gateway that speaks protocol {PROTOCOL_VERSION} "
                "(the bridge is tested with openclaw 2026.9.6).",
            )
        fix = None
        if "unknown agent id" in message.lower():
            fix = (
                "List the agent of the per-peer session key under agents.entries in "
                "openclaw.json, or set OPENCLAW_AGENT_ID to an agent that exists."
            )
        # a malformed or refused request will not get better by waiting
        retryable = fix is None and code != "INVALID_REQUEST"
        return GatewayRejected(text, code=code, fix=fix, retryable=retryable)

    # -- helpers -----------------------------------------------------------------

    def _label_for(self, session_key: str) -> str:
        return self._labels.get(session_key) or session_key.rsplit(":", 1)[-1]

    def _agent_of(self, session_key: str) -> str:
        parts = session_key.split(":")
        if len(parts) >= 3 and parts[0] == "agent" and parts[1]:
            return parts[1]
        return self.agent_id

    def _safe(self, value: object) -> str:
        """``str(value)`` with the token cut out, in case something echoes it."""
        text = str(value)
        return text.replace(self._token, "[token]") if self._token else text


async def _wait_for_challenge(ws: ClientConnection) -> None:
    async for raw in ws:
        frame = _frame(raw)
        if frame.get("type") == "event" and frame.get("event") == "connect.challenge":
            return
    raise ConnectionClosed(ws.close_rcvd, ws.close_sent)


async def _wait_for_res(ws: ClientConnection, req_id: str) -> dict[str, Any]:
    # other frames (ticks, presence, answers to nothing of ours) are skipped
    async for raw in ws:
        frame = _frame(raw)
        if frame.get("type") == "res" and frame.get("id") == req_id:
            return frame
    raise ConnectionClosed(ws.close_rcvd, ws.close_sent)


def _frame(raw: str | bytes) -> dict[str, Any]:
    try:
        frame = json.loads(raw)
    except ValueError:
        logger.debug("ignoring a non-JSON frame from the gateway")
        return {}
    return frame if isinstance(frame, dict) else {}


def _first_str(*values: Any) -> str | None:
    for value in values:
        if isinstance(value, str) and value:
            return value
    return None


def _error_message(response: httpx.Response) -> str:
    """The gateway's own error text (``{"error": {"message"}}``), or a bit of the body."""
    try:
        data = response.json()
    except ValueError:
        return response.text[:200]
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return _first_str(error.get("message"), error.get("type")) or ""
    return _first_str(error) or ""


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None
