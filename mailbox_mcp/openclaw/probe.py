"""What ``mailbox-mcp doctor`` learns about the gateway, without a model run or a session.

Three links, each checked only if the one before answered: is the gateway
reachable, does it accept the token, does it let ``sessions_send`` through over
HTTP? The ``sessions_send`` probe goes to a session key that does not exist, so
an allowed tool answers "no session found", and nothing is created or run.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailbox_mcp.openclaw.gateway import GatewayClient
from mailbox_mcp.openclaw.gateway_errors import (
    NO_SESSION,
    UNREACHABLE_FIX,
    GatewayAuthError,
    GatewayError,
    GatewayRejected,
    GatewayToolNotAllowed,
    GatewayUnreachable,
)
from mailbox_mcp.openclaw.session_keys import doctor_probe_key

__all__ = ["GatewayCheck", "check_gateway"]


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


async def check_gateway(client: GatewayClient) -> GatewayCheck:
    """Is the gateway reachable, the token accepted and ``sessions_send`` allowed?

    Starts no model run and creates no session.
    """
    unreachable: list[str] = []
    token_fix: str | None = None
    token_checked = False
    try:
        await client.handshake()
        token_checked = True
    except GatewayUnreachable as exc:
        unreachable.append(f"WebSocket {client.ws_url}: {exc.message}")
    except GatewayError as exc:
        token_checked = True
        token_fix = f"{exc.message}. {exc.fix or ''}".strip()

    allowed: bool | None = None
    send_fix: str | None = None
    probe = doctor_probe_key(client.agent_id)
    try:
        await client.sessions_send(probe, "mailbox doctor probe (no such session)")
        allowed = True  # only if someone created the probe key; still proves it
    except GatewayUnreachable as exc:
        unreachable.append(f"HTTP {client.url}: {exc.message}")
    except GatewayAuthError as exc:
        token_checked = True
        token_fix = token_fix or f"{exc.message}. {exc.fix}"
    except GatewayToolNotAllowed as exc:
        token_checked = True
        allowed, send_fix = False, f"{exc.message}. {exc.fix}"
    except GatewayRejected as exc:
        token_checked = True
        if NO_SESSION in exc.message.lower():
            allowed = True
        else:
            allowed = False
            send_fix = f"sessions_send probe failed: {exc.message}. {exc.fix or ''}".strip()

    return GatewayCheck(
        reachable=not unreachable,
        token_accepted=(token_fix is None) if token_checked else None,
        sessions_send_allowed=allowed,
        reachable_fix=f"{'; '.join(unreachable)}. {UNREACHABLE_FIX}" if unreachable else None,
        token_fix=token_fix,
        sessions_send_fix=send_fix,
    )
