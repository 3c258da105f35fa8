"""Hands each incoming message to the agent: into OpenClaw, wrapped, exactly once.

A message is "delivered" only when the gateway accepted it. Until then the
injector retries with backoff and the listener does not acknowledge, so
nothing is lost while the gateway is down, slow or refusing. Delivered ids are
recorded before the acknowledgement, so a crash in between never injects twice.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import anyio

from .backoff import Backoff
from .e2e import EndToEnd
from .e2e import render as render_message
from .gateway import GatewayClient, GatewayError
from .run_watch import RunWatcher
from .settings import BridgeSettings
from .state import DeliveredLog

log = logging.getLogger(__name__)


@dataclass
class DeliveryStatus:
    delivered: int = 0
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

    async def render(self, message: dict[str, Any]) -> str:
        """The text the agent sees: the message inside the untrusted-message envelope.

        An end-to-end encrypted message is decrypted and its signature checked
        first (`e2e.render`); a plaintext one costs no network call.
        """
        return await render_message(message, self.settings, self.e2e)

    async def deliver(self, message: dict[str, Any]) -> bool:
        """Inject unless already done; retries until accepted. False if it was a duplicate."""
        if self.log_store.was_delivered(message["message_id"]):
            self.status.skipped_duplicates += 1
            return False
        peer = message["from_agent"]
        session_key = self.settings.session_key(peer)
        text = await self.render(message)
        backoff = Backoff(self.settings.retry_initial_seconds, self.settings.retry_max_seconds)
        while True:
            try:
                await self.gateway.ensure_session(session_key, f"mailbox-{peer}")
                if self.settings.injection_path == "agent":
                    # A fenced-off peer agent may not use session tools, so HTTP
                    # sessions_send (which runs under its policy) is refused: the
                    # gateway's own `agent` method injects the same text instead.
                    run_id = await self.gateway.inject_via_agent(
                        session_key, text, message["message_id"]
                    )
                else:
                    run_id = await self.gateway.inject(session_key, text)
                break
            except GatewayError as exc:
                self._note_failure(exc)
                delay = backoff.next_delay()
                log.warning(
                    "could not inject message %s from %s (%s); retrying in %.1f s",
                    message["message_id"],
                    peer,
                    exc,
                    delay,
                )
                await anyio.sleep(delay)
        self.log_store.mark_delivered(message["message_id"], int(message["seq"]))
        if self.runs is not None:
            self.runs.watch(session_key, run_id)
        self.status.delivered += 1
        self.status.last_delivered_at = time.time()
        self.status.retrying_since = None
        self.status.last_error = None
        self.status.last_fix = None
        return True

    def _note_failure(self, exc: GatewayError) -> None:
        if self.status.retrying_since is None:
            self.status.retrying_since = time.time()
        self.status.last_error = str(exc)
        self.status.last_fix = exc.fix
