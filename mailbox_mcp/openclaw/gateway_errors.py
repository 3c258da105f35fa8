"""What can go wrong with the OpenClaw gateway, and how each answer is classified.

The gateway client (``gateway.py``) counts a message as delivered only when the
gateway said so; every other outcome becomes one of these errors. Each carries
the retry decision (``mailbox_mcp/errors.py``): ``retryable`` when waiting can
help, ``retry_after`` when the gateway named the wait, and ``fix``, what the
owner has to change, for the log, ``mailbox_status`` and ``mailbox-mcp doctor``.

GatewayError                 root (a BridgeError); .retryable, .retry_after, .fix
├── GatewayUnreachable       cannot connect, timeout, 5xx, 429 (retryable)
├── GatewayAuthError         401, WebSocket unauthorized: OPENCLAW_GATEWAY_TOKEN
├── GatewayToolNotAllowed    404 "Tool not available": gateway.tools.allow
└── GatewayRejected          the gateway answered, but did not accept

The classifiers take a ``safe`` function that cuts the gateway token out of
any text, so the token never appears in a log line or an exception message.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI

from mailbox_mcp.errors import BridgeError

__all__ = [
    "NO_SESSION",
    "PROTOCOL_VERSION",
    "SESSIONS_SEND_FIX",
    "TOKEN_FIX",
    "UNREACHABLE_FIX",
    "GatewayAuthError",
    "GatewayError",
    "GatewayRejected",
    "GatewayToolNotAllowed",
    "GatewayUnreachable",
    "Redact",
    "first_str",
    "invoke_details",
    "not_accepted",
    "rpc_error",
    "websocket_failure",
]

# The gateway protocol the bridge speaks (named in the fix for a gateway that does not).
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
UNREACHABLE_FIX = (
    "Start the OpenClaw gateway (openclaw gateway run) and check that OPENCLAW_GATEWAY_URL "
    "points at it, e.g. http://127.0.0.1:18789."
)
# What the gateway says, in some words, when it does not know a session key.
NO_SESSION = "no session found"

# Cuts the gateway token out of a text (GatewayClient.safe).
Redact = Callable[[object], str]


class GatewayError(BridgeError):
    """Root of every error of the gateway client.

    ``retryable`` is true when waiting and trying again can succeed without
    any change of configuration; ``fix`` is a hint a person can act on.
    """

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
        self, message: str, *, fix: str | None = UNREACHABLE_FIX, retry_after: float | None = None
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
    the RPC error code, if any. Retryable unless the case says otherwise (a
    session the gateway lost, a full queue: the next try can be accepted).
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


# -- HTTP: POST /tools/invoke -----------------------------------------------------------


def invoke_details(response: httpx.Response, safe: Redact) -> dict[str, object]:
    """``result.details`` of a 200 answer to ``/tools/invoke``; a GatewayError for any other."""
    code = response.status_code
    error_message = safe(_error_message(response))
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
    if not isinstance(data, dict) or data.get("ok") is not True or not isinstance(details, dict):
        raise GatewayRejected(
            f"unexpected answer from the gateway: {error_message or 'no result.details'}",
            status=code,
        )
    return details


def not_accepted(session_key: str, details: dict[str, object], safe: Redact) -> GatewayRejected:
    """The error for a ``sessions_send`` answered with a status other than ``accepted``."""
    status = details.get("status")
    message = first_str(details.get("error"), details.get("message")) or f"status {status!r}"
    message = safe(message)
    if status == "forbidden":
        return GatewayRejected(
            f"sessions_send to {session_key} was forbidden: {message}",
            status=status,
            retryable=False,
            fix="Check the tool policy of the agent of the per-peer session in openclaw.json.",
        )
    return GatewayRejected(
        f"sessions_send to {session_key} was not accepted: {message}",
        status=status if isinstance(status, str | int) else None,
    )


# -- WebSocket RPC ----------------------------------------------------------------------


def websocket_failure(exc: BaseException, ws_url: str, safe: Redact) -> GatewayError:
    """The GatewayError for what stopped a WebSocket exchange (an OSError or a
    WebSocketException; TimeoutError is an OSError)."""
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        if status in (401, 403):
            return GatewayAuthError(f"the gateway refused the WebSocket (HTTP {status})")
        return GatewayUnreachable(f"the gateway refused the WebSocket upgrade (HTTP {status})")
    if isinstance(exc, InvalidURI):
        return GatewayRejected(f"invalid gateway WebSocket URL {ws_url}", retryable=False)
    if isinstance(exc, TimeoutError):
        return GatewayUnreachable("the gateway did not answer in time")
    if isinstance(exc, ConnectionClosed):
        return GatewayUnreachable(f"the gateway closed the WebSocket ({safe(str(exc))})")
    return GatewayUnreachable(f"cannot reach the gateway: {safe(exc)}")


def rpc_error(method: str, error: object, *, handshake: bool, safe: Redact) -> GatewayError:
    """The GatewayError for an ``ok: false`` answer to ``method``."""
    error = error if isinstance(error, dict) else {}
    code = error.get("code") if isinstance(error.get("code"), str) else None
    message = safe(first_str(error.get("message")) or "no message")
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


# -- helpers ----------------------------------------------------------------------------


def first_str(*values: object) -> str | None:
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
        return first_str(error.get("message"), error.get("type")) or ""
    return first_str(error) or ""


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None
