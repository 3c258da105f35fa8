"""Messages as participants read them: decrypted, with names and the session's subject."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, or_, select

import mailbox_wire as wire

from ..clock import as_utc
from ..errors import NotFound
from ..models import ack_watermark_moves, messages, sessions
from . import agents as agent_service
from .context import AgentRef, Services

MAX_PAGE = 500

# When the recipient's watermark first reached the message: the first move at or past
# its seq (moves only go up, in seq and in time). One step down the moves' primary key.
_WATERMARK_REACHED = (
    select(ack_watermark_moves.c.acked_at)
    .where(
        ack_watermark_moves.c.agent_id == messages.c.to_agent_id,
        ack_watermark_moves.c.up_to_seq >= messages.c.seq,
    )
    .order_by(ack_watermark_moves.c.up_to_seq)
    .limit(1)
    .scalar_subquery()
    .label("watermark_reached_at")
)

_MESSAGE_COLUMNS = (
    messages.c.id,
    messages.c.seq,
    messages.c.session_id,
    messages.c.from_agent_id,
    messages.c.to_agent_id,
    messages.c.content_encrypted,
    messages.c.created_at,
    messages.c.correlation_id_encrypted,
    messages.c.encrypted,
    messages.c.encryption,
    messages.c.acked_at,
    _WATERMARK_REACHED,
    sessions.c.subject_encrypted,
    sessions.c.agent_low_id,
    sessions.c.agent_high_id,
)


def message_query() -> Any:
    return select(*_MESSAGE_COLUMNS).join(sessions, sessions.c.id == messages.c.session_id)


async def to_messages(svc: Services, rows: Sequence[Row[Any]]) -> list[wire.Message]:
    names = await agent_service.names_by_id(
        svc, {r.from_agent_id for r in rows} | {r.to_agent_id for r in rows}
    )
    result = []
    for r in rows:
        info = svc.session_info.get(r.session_id)
        if info is None:
            info = (r.agent_low_id, r.agent_high_id, svc.cipher.decrypt(r.subject_encrypted))
            svc.session_info.put(r.session_id, info)
        result.append(
            wire.Message(
                message_id=r.id,
                seq=r.seq,
                session_id=r.session_id,
                from_agent=names[r.from_agent_id],
                to_agent=names[r.to_agent_id],
                subject=info[2],
                content=svc.cipher.decrypt(r.content_encrypted),
                created_at=as_utc(r.created_at),
                correlation_id=svc.cipher.decrypt_optional(r.correlation_id_encrypted),
                encrypted=r.encrypted,
                encryption=json.loads(r.encryption) if r.encryption else None,
                delivered_at=delivered_at(r.acked_at, r.watermark_reached_at),
            )
        )
    return result


def delivered_at(by_id: datetime | None, by_watermark: datetime | None) -> datetime | None:
    """The recipient's first acknowledgement is the delivery receipt: by id (the row's
    own acked_at) or by the watermark passing it, whichever came first."""
    times = [as_utc(t) for t in (by_id, by_watermark) if t is not None]
    return min(times) if times else None


async def get_message(svc: Services, agent: AgentRef, message_id: str) -> wire.Message:
    async with svc.db.read() as conn:
        rows = (
            await conn.execute(
                message_query().where(
                    messages.c.id == message_id,
                    or_(messages.c.to_agent_id == agent.id, messages.c.from_agent_id == agent.id),
                )
            )
        ).all()
    if not rows:
        raise NotFound("no message with that id", code="not_found")
    return (await to_messages(svc, rows))[0]
