"""The inbox: what an agent has not acknowledged yet, and acknowledging it.

Everything at or below an agent's watermark (`ack_store`) is acknowledged;
single messages above it may be acknowledged by id (their own `acked_at`), and
the watermark follows once the gap closes. WebSocket acks wait briefly in the
`AckBuffer`; every read of the watermark here flushes the agent's first, so
what a client acknowledged is never shown to it again as unacknowledged.
"""

from __future__ import annotations

from sqlalchemy import func, select, update

import mailbox_wire as wire

from ..clock import utcnow
from ..errors import InvalidInput, NotFound
from ..models import agents, messages
from . import ack_store, page_budget
from .context import AgentRef, Services
from .message_views import message_query, to_messages


async def ack_seq(svc: Services, agent: AgentRef) -> int:
    """The agent's watermark, with every ack it sent so far written first."""
    await svc.acks.flush_agent(agent.id)
    async with svc.db.read() as conn:
        return await ack_store.watermark(conn, agent.id)


async def incoming_after(
    svc: Services,
    agent: AgentRef,
    after: int,
    unacked_only: bool,
    limit: int,
    *,
    max_bytes: int | None = None,
) -> list[wire.Message]:
    """Incoming messages with seq > `after`, oldest first (optionally only unacknowledged);
    with `max_bytes`, only as many as fit in that many bytes (at least one; see page_budget)."""
    where = [messages.c.to_agent_id == agent.id, messages.c.seq > after]
    if unacked_only:
        where.append(messages.c.acked_at.is_(None))
    async with svc.db.read() as conn:
        if max_bytes is None:
            query = message_query().where(*where).order_by(messages.c.seq).limit(limit)
        else:
            sized = (
                await conn.execute(
                    select(messages.c.id, page_budget.STORED_SIZE)
                    .where(*where)
                    .order_by(messages.c.seq)
                    .limit(limit)
                )
            ).all()
            chosen = page_budget.fitting(sized, (r.stored_size for r in sized), max_bytes)
            query = (
                message_query()
                .where(messages.c.id.in_([r.id for r in chosen]))
                .order_by(messages.c.seq)
            )
        rows = (await conn.execute(query)).all()
    found = await to_messages(svc, rows)
    return found if max_bytes is None else page_budget.trim_messages(found, max_bytes)


async def pending_messages(
    svc: Services, agent: AgentRef, since: int | None, limit: int
) -> tuple[list[wire.Message], int]:
    """Incoming messages after `since`, or those not yet acknowledged; and the next cursor.

    A page ends at `limit` messages or MAILBOX_MAX_PAGE_BYTES, whichever comes first;
    `next_since` is the last seq on it, so the next page starts right after it."""
    if since is None:
        after = await ack_seq(svc, agent)
        unacked_only = True
    else:
        after = since
        unacked_only = False
    found = await incoming_after(
        svc, agent, after, unacked_only, limit, max_bytes=svc.settings.max_page_bytes
    )
    return found, (found[-1].seq if found else after)


async def ack(svc: Services, agent: AgentRef, body: wire.AckRequest) -> wire.AckResponse:
    """`POST /inbox/ack`: answered after the commit (unlike WebSocket acks)."""
    if (body.up_to_seq is None) == (body.message_ids is None):
        raise InvalidInput("send exactly one of `up_to_seq` or `message_ids`")
    # The agent's socket acks first, so the answer's watermark counts them too.
    await svc.acks.flush_agent(agent.id)
    if body.up_to_seq is not None:
        return wire.AckResponse(acknowledged_up_to_seq=await ack_up_to(svc, agent, body.up_to_seq))
    ids = list(dict.fromkeys(body.message_ids or []))
    return wire.AckResponse(acknowledged_up_to_seq=await ack_ids(svc, agent, ids))


async def ack_up_to(svc: Services, agent: AgentRef, up_to_seq: int) -> int:
    """Acknowledge everything up to `up_to_seq` (never beyond what exists); the watermark."""
    moved = await ack_store.advance(svc.db, [ack_store.Ack(agent.id, up_to_seq, utcnow())])
    if agent.id in moved:
        return moved[agent.id]
    async with svc.db.read() as conn:
        return await ack_store.watermark(conn, agent.id)


async def ack_ids(svc: Services, agent: AgentRef, ids: list[str]) -> int:
    """Acknowledge single messages; the watermark moves over them once no gap is left."""
    now = utcnow()
    async with svc.db.write() as conn:
        mine = (
            await conn.execute(
                select(func.count())
                .select_from(messages)
                .where(messages.c.to_agent_id == agent.id, messages.c.id.in_(ids))
            )
        ).scalar_one()
        if mine != len(ids):
            raise NotFound("some of those message ids are not messages to you", code="not_found")
        current = await ack_store.lock_watermark(conn, agent.id)
        # Messages at or below the watermark were delivered already: their time stands.
        await conn.execute(
            update(messages)
            .where(
                messages.c.to_agent_id == agent.id,
                messages.c.id.in_(ids),
                messages.c.seq > current,
                messages.c.acked_at.is_(None),
            )
            .values(acked_at=now)
        )
        # The counter first, then the gaps: a message committed in between is above
        # this counter, so the watermark can never pass a message nobody acknowledged.
        last_seq = (
            await conn.execute(select(agents.c.last_seq).where(agents.c.id == agent.id))
        ).scalar_one()
        first_open = (
            await conn.execute(
                select(func.min(messages.c.seq)).where(
                    messages.c.to_agent_id == agent.id,
                    messages.c.seq > current,
                    messages.c.acked_at.is_(None),
                )
            )
        ).scalar_one()
        watermark = last_seq if first_open is None else min(last_seq, first_open - 1)
        if watermark > current:
            await ack_store.set_watermark(conn, agent.id, watermark)
    return int(max(watermark, current))
