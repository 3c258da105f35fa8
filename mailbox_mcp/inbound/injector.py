"""Hands each incoming message to the agent: into OpenClaw, wrapped, exactly once.

A message is "delivered" only when the gateway accepted it. Until then the
injector tries again as the error says (server_link/retry.py: soon for a gateway
that is down or busy, at the slowest pace for a refusal only the owner can fix)
and the listener does not acknowledge, so nothing is lost while the gateway is
down, slow or refusing. Delivered ids are
recorded before the acknowledgement, so a crash in between never injects twice.

Each injected message carries a reply handle (safety/handles.py): the only
address a run started by it can answer. With an inbound guard configured, a
message it does not clear is held for the owner instead (safety/review.py),
stored first and then acknowledged, so one held message never stalls the rest.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import anyio

import mailbox_wire as wire
from mailbox_mcp.e2e.seal import EndToEnd
from mailbox_mcp.inbound.delivered_log import DeliveredLog
from mailbox_mcp.inbound.readable import Readable, read
from mailbox_mcp.inbound.run_watch import RunWatcher
from mailbox_mcp.openclaw.gateway import GatewayClient
from mailbox_mcp.openclaw.gateway_errors import GatewayError
from mailbox_mcp.safety import review
from mailbox_mcp.safety.context import Safety
from mailbox_mcp.safety.guard import InboundGuard
from mailbox_mcp.server_link.retry import Backoff
from mailbox_mcp.settings import BridgeSettings

log = logging.getLogger(__name__)


async def inject_text(
    gateway: GatewayClient, settings: BridgeSettings, peer: str, text: str, *, idempotency_key: str
) -> str | None:
    """One attempt to put `text` into `peer`'s session; the run id. Raises GatewayError."""
    session_key = settings.session_key(peer)
    await gateway.ensure_session(session_key, f"mailbox-{peer}")
    if settings.injection_path == "agent":
        # A fenced-off peer agent may not use session tools, so HTTP sessions_send
        # (which runs under its policy) is refused: the gateway's own `agent` method
        # injects the same text instead.
        return await gateway.inject_via_agent(session_key, text, idempotency_key)
    return await gateway.inject(session_key, text)


@dataclass
class DeliveryStatus:
    delivered: int = 0
    held: int = 0
    skipped_duplicates: int = 0
    last_delivered_at: float | None = None
    retrying_since: float | None = None
    last_error: str | None = None
    last_fix: str | None = None


@dataclass
class Injector:
    settings: BridgeSettings
    gateway: GatewayClient
    log_store: DeliveredLog
    status: DeliveryStatus = field(default_factory=DeliveryStatus)
    e2e: EndToEnd | None = None
    runs: RunWatcher | None = None  # told each run a message started, to report failures
    safety: Safety | None = None  # reply handles, held items, audit; None: no handles
    agent_id: str = ""  # ours: every reply handle is bound to it
    guard: InboundGuard | None = None

    async def deliver(self, message: wire.Message) -> bool:
        """Inject (or hold) unless already done; retries until accepted. False for a duplicate."""
        if self.log_store.was_delivered(message.message_id):
            self.status.skipped_duplicates += 1
            return False
        readable = await read(message, self.settings, self.e2e)
        if self.guard is not None and self.safety is not None:
            verdict = await self.guard.screen(
                from_agent=readable.from_agent, subject=readable.subject, content=readable.content
            )
            if not verdict.allows:
                # The owner reads the guard's reason; the audit log keeps no text of the
                # message, and the reason may quote it: only the verdict goes there.
                self._hold(
                    message,
                    readable,
                    reason=f"{verdict.decision} ({verdict.category}): {verdict.reason}",
                    verdict=f"{verdict.decision} ({verdict.category})",
                )
                return True
        await self.inject(readable, message.message_id)
        self.log_store.mark_delivered(message.message_id, message.seq)
        if self.safety is not None:
            self.safety.audit.record(
                "injected",
                peer=readable.from_agent,
                text=readable.content,
                message_id=message.message_id,
                session_id=readable.session_id,
            )
        return True

    async def inject(self, readable: Readable, message_id: str) -> None:
        """Into the peer's session, with a fresh reply handle; retries until accepted."""
        peer = readable.from_agent
        session_key = self.settings.session_key(peer)
        token = None
        if self.safety is not None:
            token = self.safety.mint(self.agent_id, peer, readable.session_id)
        text = readable.wrap(reply_token=token)
        backoff = Backoff(self.settings.retry_initial_seconds, self.settings.retry_max_seconds)
        while True:
            try:
                run_id = await inject_text(
                    self.gateway, self.settings, peer, text, idempotency_key=message_id
                )
                break
            except GatewayError as exc:
                told = self.status.last_error == str(exc)
                self._note_failure(exc)
                # The error decides: a gateway that is down or busy is tried again soon
                # (after its Retry-After, if it gave one); a refusal that waiting cannot
                # cure (the token, the allow list) only at the slowest pace, for the
                # owner's fix, which OpenClaw reloads without a restart.
                delay = backoff.delay_after(exc)
                if exc.retryable:
                    log.warning(
                        "could not inject message %s from %s (%s); retrying in %.1f s",
                        message_id,
                        peer,
                        exc,
                        delay,
                    )
                else:
                    log.log(
                        logging.DEBUG if told else logging.ERROR,
                        "cannot inject message %s from %s until this is fixed: %s; fix: %s "
                        "(checking again every %.0f s)",
                        message_id,
                        peer,
                        exc,
                        exc.fix or "see `mailbox-mcp doctor`",
                        delay,
                    )
                await anyio.sleep(delay)
        if self.runs is not None:
            self.runs.watch(session_key, run_id)
        self.status.delivered += 1
        self.status.last_delivered_at = time.time()
        self.status.retrying_since = None
        self.status.last_error = None
        self.status.last_fix = None

    def _hold(
        self, message: wire.Message, readable: Readable, *, reason: str, verdict: str
    ) -> None:
        assert self.safety is not None
        # Stored before the delivered record, and the record before the ack: a crash in
        # between holds the same message again, which returns the item already there.
        item = review.hold_incoming(
            self.safety.ledger,
            message_id=message.message_id,
            readable=readable.as_json(),
            reason=reason,
        )
        self.log_store.mark_delivered(message.message_id, message.seq)
        self.safety.audit.record(
            "held",
            peer=readable.from_agent,
            text=readable.content,
            held_id=item.held_id,
            direction=review.INCOMING,
            message_id=message.message_id,
            session_id=readable.session_id,
            reason=verdict,
        )
        self.status.held += 1
        log.warning(
            "message %s from %s held for the owner (%s): `mailbox-mcp review`",
            message.message_id,
            readable.from_agent,
            reason,
        )

    def _note_failure(self, exc: GatewayError) -> None:
        if self.status.retrying_since is None:
            self.status.retrying_since = time.time()
        self.status.last_error = str(exc)
        self.status.last_fix = exc.fix
