"""Reading a socket's messages from the database when live frames cannot be trusted
to be complete and in order.

A live push carries the message the committing task just wrote. The socket
takes it directly only when it is the very next seq after everything the socket
has sent or queued. Otherwise something is missing in between: a message
committed by another server process (whose announcement arrives separately,
`cluster_events`), a push that overtook an earlier one, or the backlog still
being sent. Then the socket catches up from the database, in seq order, and
every push for that agent goes the same way until the catch-up is done, so
nothing overtakes it. The database is the one copy; a catch-up only reads.
"""

from __future__ import annotations

import asyncio
import logging

from mailbox_wire import CloseCode

from . import agents as agent_service
from . import frames
from . import inbox as inbox_service
from .context import AgentRef, Services
from .delivery import Subscriber

log = logging.getLogger(__name__)

PAGE = 200
TO_THE_END = 2**62  # "whatever is committed": read to the end


class CatchUp:
    def __init__(self, svc: Services) -> None:
        self.svc = svc
        # Per agent with a socket here: the newest seq known committed, not yet read.
        self._wanted: dict[str, int] = {}
        self._running: dict[str, asyncio.Task[None]] = {}

    def request(self, subscriber: Subscriber, up_to: int) -> None:
        agent_id = subscriber.agent_id
        self._wanted[agent_id] = max(up_to, self._wanted.get(agent_id, 0))
        if agent_id not in self._running:
            subscriber.catching_up = True
            self._running[agent_id] = asyncio.create_task(self._run(subscriber))

    async def _run(self, subscriber: Subscriber) -> None:
        agent_id = subscriber.agent_id
        try:
            # The backlog reads to the end of what is committed; only what it may
            # have missed is left, after it.
            await subscriber.backlog_sent.wait()
            while (wanted := self._wanted.pop(agent_id, None)) is not None:
                if subscriber.closed:
                    return
                await self._read(subscriber, wanted)
        except Exception:
            # The socket then lacks frames it gets on its next connection: close it
            # so that the client reconnects now rather than waiting in a gap.
            log.exception("catching up the socket of %s failed; closing it", agent_id)
            subscriber.close(CloseCode.SERVER_ERROR)
        finally:
            self._wanted.pop(agent_id, None)
            self._running.pop(agent_id, None)
            subscriber.catching_up = False

    async def _read(self, subscriber: Subscriber, up_to: int) -> None:
        agent_id = subscriber.agent_id
        names = await agent_service.names_by_id(self.svc, {agent_id})
        agent = AgentRef(agent_id, names[agent_id])
        after = subscriber.newest_seq
        while after < up_to and not subscriber.closed:
            page = await inbox_service.incoming_after(
                self.svc, agent, after, unacked_only=False, limit=PAGE
            )
            for message in page:
                subscriber.offer(message.seq, frames.message(message))
            if len(page) < PAGE:
                return
            after = page[-1].seq

    async def close(self) -> None:
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
