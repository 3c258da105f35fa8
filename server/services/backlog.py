"""A socket's backlog, read a page at a time, each page bounded in messages and in bytes.

A page is held in memory until its client has read it, and a client may never
read: 500 large messages were 24 MB per socket (issue 13). So a page stops at
`max_bytes` of stored content (the encrypted form, about 4/3 of the text),
found by a first query that reads only the lengths; it always holds at least
one message, so the backlog always moves on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from sqlalchemy import func, select

import mailbox_wire as wire

from ..models import agents, messages
from .context import AgentRef, Services
from .message_views import message_query, to_messages

MAX_PAGE_MESSAGES = 500


async def newest_seq(svc: Services, agent: AgentRef) -> int:
    """The seq of the agent's newest message: where its backlog ends."""
    async with svc.db.read() as conn:
        value = (
            await conn.execute(select(agents.c.last_seq).where(agents.c.id == agent.id))
        ).scalar_one_or_none()
    return int(value or 0)


async def page_after(
    svc: Services,
    agent: AgentRef,
    after: int,
    unacked_only: bool,
    max_bytes: int,
    up_to: int,
) -> list[wire.Message]:
    """Incoming messages with `after` < seq <= `up_to`, oldest first (optionally only
    those not acknowledged by id), as many as fit in `max_bytes` (at least one)."""
    mine = [
        messages.c.to_agent_id == agent.id,
        messages.c.seq > after,
        messages.c.seq <= up_to,
    ]
    if unacked_only:
        mine.append(messages.c.acked_at.is_(None))
    sizes = (
        select(messages.c.seq, func.length(messages.c.content_encrypted))
        .where(*mine)
        .order_by(messages.c.seq)
        .limit(MAX_PAGE_MESSAGES)
    )
    async with svc.db.read() as conn:
        candidates = (await conn.execute(sizes)).all()
        last = _last_that_fits(cast("Sequence[tuple[int, int]]", candidates), max_bytes)
        if last is None:
            return []
        query = message_query().where(*mine, messages.c.seq <= last).order_by(messages.c.seq)
        rows = (await conn.execute(query)).all()
    return await to_messages(svc, rows)


def _last_that_fits(sizes: Sequence[tuple[int, int]], max_bytes: int) -> int | None:
    """The seq of the last message within the budget (the first always counts)."""
    if not sizes:
        return None
    total = 0
    last = sizes[0][0]
    for seq, size in sizes:
        total += size
        if total > max_bytes and seq != sizes[0][0]:
            break
        last = seq
    return last
