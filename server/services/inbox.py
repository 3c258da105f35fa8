"""The inbox: what an agent has not acknowledged yet, and acknowledging it.

Everything at or below an agent's `ack_seq` is acknowledged; single messages
above it may be acknowledged by id, and the watermark follows once the gap closes.
"""

from __future__ import annotations

from sqlalchemy import func, select, update

from .. import schemas
from ..clock import utcnow
from ..errors import InvalidInput, NotFound
from ..models import agents, messages
from .context import AgentRef, Services
from .message_views import message_query, to_messages


async def ack_seq(svc: Services, agent: AgentRef) -> int:
    async with svc.db.read() as conn:
        return (
            await conn.execute(select(agents.c.ack_seq).where(agents.c.id == agent.id))
        ).scalar_one()


async def incoming_after(
    svc: Services, agent: AgentRef, after: int, unacked_only: bool, limit: int
) -> list[schemas.Message]:
    """Incoming messages with seq > `after`, oldest first (optionally only unacknowledged)."""
    query = message_query().where(messages.c.to_agent_id == agent.id, messages.c.seq > after)
    if unacked_only:
        query = query.where(messages.c.acked_at.is_(None))
    async with svc.db.read() as conn:
        rows = (await conn.execute(query.order_by(messages.c.seq).limit(limit))).all()
    return await to_messages(svc, rows)


async def pending_messages(
    svc: Services, agent: AgentRef, since: int | None, limit: int
) -> tuple[list[schemas.Message], int]:
    """Incoming messages after `since`, or those not yet acknowledged; and the next cursor."""
    if since is None:
        after = await ack_seq(svc, agent)
        found = await incoming_after(svc, agent, after, unacked_only=True, limit=limit)
    else:
        after = since
        found = await incoming_after(svc, agent, after, unacked_only=False, limit=limit)
    return found, (found[-1].seq if found else after)


async def ack(svc: Services, agent: AgentRef, body: schemas.AckRequest) -> schemas.AckResponse:
    if (body.up_to_seq is None) == (body.message_ids is None):
        raise InvalidInput("send exactly one of `up_to_seq` or `message_ids`")
    if body.up_to_seq is not None:
        return schemas.AckResponse(
            acknowledged_up_to_seq=await ack_up_to(svc, agent, body.up_to_seq)
        )
    ids = list(dict.fromkeys(body.message_ids or []))
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
        await conn.execute(
            update(messages)
            .where(
                messages.c.to_agent_id == agent.id,
                messages.c.id.in_(ids),
                messages.c.acked_at.is_(None),
            )
            .values(acked_at=now)
        )
        row = (
            await conn.execute(
                select(agents.c.ack_seq, agents.c.last_seq).where(agents.c.id == agent.id)
            )
        ).one()
        first_open = (
            await conn.execute(
                select(func.min(messages.c.seq)).where(
                    messages.c.to_agent_id == agent.id,
                    messages.c.seq > row.ack_seq,
                    messages.c.acked_at.is_(None),
                )
            )
        ).scalar_one()
        watermark = row.last_seq if first_open is None else first_open - 1
        if watermark > row.ack_seq:
            await conn.execute(
                update(agents).where(agents.c.id == agent.id).values(ack_seq=watermark)
            )
    return schemas.AckResponse(acknowledged_up_to_seq=max(watermark, row.ack_seq))


async def ack_up_to(svc: Services, agent: AgentRef, up_to_seq: int) -> int:
    """Acknowledge everything up to `up_to_seq` (never beyond what exists); the new watermark."""
    now = utcnow()
    async with svc.db.write() as conn:
        row = (
            await conn.execute(
                select(agents.c.ack_seq, agents.c.last_seq).where(agents.c.id == agent.id)
            )
        ).one()
        target = min(up_to_seq, row.last_seq)
        if target <= row.ack_seq:
            return row.ack_seq
        await conn.execute(
            update(messages)
            .where(
                messages.c.to_agent_id == agent.id,
                messages.c.seq > row.ack_seq,
                messages.c.seq <= target,
                messages.c.acked_at.is_(None),
            )
            .values(acked_at=now)
        )
        await conn.execute(update(agents).where(agents.c.id == agent.id).values(ack_seq=target))
    return target
