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

from . import __version__
from .api import MailboxAPI
from .backoff import Backoff
from .delivery import Injector
from .e2e import EndToEnd
from .election import ListenerLock
from .errors import ConfigError, MailboxAPIError
from .gateway import GatewayClient
from .listener import Listener
from .run_watch import RunWatcher
from .settings import BridgeSettings
from .state import DeliveredLog

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
        self.runs = RunWatcher(self.gateway, settings.state_dir, identity.agent_id)
        self.injector = Injector(settings, self.gateway, store, e2e=self.e2e, runs=self.runs)
        self.listener = Listener(
            self.api.ws_url,
            self.api_key or "",
            store,
            self.injector.deliver,
            backoff=Backoff(settings.retry_initial_seconds, settings.retry_max_seconds),
        )
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(self.runs.run)
                await self.listener.run()
                tasks.cancel_scope.cancel()
        finally:
            store.close()

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
                await anyio.sleep(backoff.next_delay())

    async def identify(self) -> Identity:
        if self.identity is None:
            me = await self.api.me()
            self.identity = Identity(me["agent_id"], me["name"])
            self.startup_error = None
        return self.identity

    async def aclose(self) -> None:
        self.e2e.close()
        await self.api.aclose()
        if self.gateway is not None:
            await self.gateway.aclose()
