"""The bridge process: settings in, a server client, and (in push mode) the listener.

Push mode (OPENCLAW_GATEWAY_URL set): the listener keeps the WebSocket and the
injector hands each message to OpenClaw. Pull mode (Claude Desktop): messages
wait on the server until `mailbox_inbox` reads and acknowledges them.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio

import mailbox_wire as wire
from mailbox_mcp import __version__
from mailbox_mcp.e2e.seal import EndToEnd
from mailbox_mcp.errors import ConfigError, MailboxAPIError
from mailbox_mcp.inbound.delivered_log import DeliveredLog
from mailbox_mcp.inbound.election import ListenerLock
from mailbox_mcp.inbound.injector import Injector
from mailbox_mcp.inbound.run_watch import RunWatcher
from mailbox_mcp.openclaw.gateway import GatewayClient
from mailbox_mcp.safety.context import Safety
from mailbox_mcp.safety.guard import InboundGuard
from mailbox_mcp.server_link.client import MailboxAPI
from mailbox_mcp.server_link.listener import Listener
from mailbox_mcp.server_link.retry import Backoff
from mailbox_mcp.settings import BridgeSettings

log = logging.getLogger(__name__)


@dataclass
class Identity:
    agent_id: str
    name: str


class Bridge:
    def __init__(self, settings: BridgeSettings) -> None:
        self.settings = settings
        self.api_key = settings.resolved_api_key()
        self.api = MailboxAPI(settings.server_url, self.api_key)
        self.e2e = EndToEnd(settings, self.api)
        self.safety = Safety(settings, self.api_key)
        self.identity: Identity | None = None
        self.listener: Listener | None = None
        self.injector: Injector | None = None
        self.runs: RunWatcher | None = None
        self.gateway: GatewayClient | None = None
        self.startup_error: str | None = None
        self.election: ListenerLock | None = None
        self.pid = os.getpid()

    def require_key(self) -> None:
        if not self.api_key:
            raise ConfigError(
                "no mailbox API key: the owner runs `mailbox-mcp register NAME` "
                "(or sets MAILBOX_API_KEY in this MCP server's env)"
            )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Bridge]:
        """Run the background work for the life of the MCP session. Never raises on failure."""
        async with anyio.create_task_group() as tasks:
            if self.settings.push_mode:
                tasks.start_soon(self._listen)
            try:
                yield self
            finally:
                tasks.cancel_scope.cancel()
        await self.aclose()

    async def _listen(self) -> None:
        try:
            self.require_key()
            identity = await self._identify_with_retry()
        except ConfigError as exc:
            self.startup_error = str(exc)
            log.error("%s", exc)
            return
        settings = self.settings
        self.election = ListenerLock(settings.state_dir, identity.agent_id)
        try:
            await self.election.acquire()
            await self._listen_as_holder(identity)
            # Stopped for good (bad key, or replaced by a bridge elsewhere): keep the
            # lock, so sibling bridges stay on standby instead of fighting over it.
            await anyio.sleep_forever()
        finally:
            self.election.release()

    async def _listen_as_holder(self, identity: Identity) -> None:
        settings = self.settings
        token = settings.gateway_token.get_secret_value() if settings.gateway_token else ""
        assert settings.gateway_url is not None
        self.gateway = GatewayClient(
            settings.gateway_url, token, settings.session_agent_id, __version__
        )
        store = DeliveredLog(settings.state_dir, identity.agent_id)
        self.runs = RunWatcher(
            self.gateway,
            settings.state_dir,
            identity.agent_id,
            backoff=Backoff(settings.retry_initial_seconds, settings.retry_max_seconds),
        )
        guard = _inbound_guard(settings)
        self.injector = Injector(
            settings,
            self.gateway,
            store,
            e2e=self.e2e,
            runs=self.runs,
            safety=self.safety,
            agent_id=identity.agent_id,
            guard=guard,
        )
        self.listener = Listener(
            self.api.ws_url,
            self.api_key or "",
            store,
            self.injector.deliver,
            on_event=self._on_connection_event,
            on_connected=self.sync_connections,
            backoff=Backoff(settings.retry_initial_seconds, settings.retry_max_seconds),
        )
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(self.runs.run)
                await self.listener.run()
                tasks.cancel_scope.cancel()
        finally:
            store.close()
            if guard is not None:
                await guard.aclose()

    async def sync_connections(self) -> None:
        """Reply handles follow the connections: a revoke missed while nobody listened
        voids the handles minted before it all the same (safety/ledger.py)."""
        try:
            connections = await self.api.connections()
        except MailboxAPIError as exc:
            log.warning("cannot list connections to check reply handles: %s", exc)
            return
        # The ledger keeps the time as the server wrote it: compare text with text.
        connected = {c.peer_agent_name: wire.wire_time(c.connected_at) for c in connections}
        for peer in self.safety.ledger.sync_connections(connected):
            log.info("connection with %s changed: its earlier reply handles are void", peer)

    async def _on_connection_event(self, frame: wire.ConnectionEvent) -> None:
        if isinstance(frame, wire.ConnectionRevoked) and frame.peer_agent_name:
            self.safety.ledger.bump_epoch(frame.peer_agent_name)
            log.info(
                "connection with %s revoked: its reply handles are void", frame.peer_agent_name
            )
        if isinstance(frame, wire.ConnectionRevoked | wire.ConnectionApproved):
            await self.sync_connections()

    async def _identify_with_retry(self) -> Identity:
        backoff = Backoff(self.settings.retry_initial_seconds, self.settings.retry_max_seconds)
        while True:
            try:
                return await self.identify()
            except MailboxAPIError as exc:
                if exc.status == 401:
                    raise ConfigError(
                        "the mailbox server rejected the API key: check MAILBOX_API_KEY "
                        "or run `mailbox-mcp doctor`"
                    ) from None
                self.startup_error = exc.message
                await anyio.sleep(backoff.delay_after(exc))

    async def identify(self) -> Identity:
        if self.identity is None:
            me = await self.api.me()
            self.identity = Identity(me.agent_id, me.name)
            self.startup_error = None
        return self.identity

    async def aclose(self) -> None:
        self.e2e.close()
        self.safety.close()
        await self.api.aclose()
        if self.gateway is not None:
            await self.gateway.aclose()


def _inbound_guard(settings: BridgeSettings) -> InboundGuard | None:
    if not settings.guard_url or not settings.guard_model:
        return None
    key = settings.guard_api_key.get_secret_value() if settings.guard_api_key else None
    return InboundGuard(
        settings.guard_url, settings.guard_model, api_key=key, timeout=settings.guard_timeout
    )
