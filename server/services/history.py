"""Sessions (conversations between two agents) and their history, participants only."""

from __future__ import annotations

from sqlalchemy import and_, or_, select

import mailbox_wire as wire

from ..clock import as_utc
from ..errors import NotFound
from ..models import messages, sessions
from . import agents as agent_service
from . import page_budget
from .context import AgentRef, Services
from .message_views import message_query, to_messages


async def list_sessions(svc: Services, agent: AgentRef, limit: int) -> wire.SessionList:
    async with svc.db.read() as conn:
        rows = (
            await conn.execute(
                select(sessions)
                .where(
                    or_(sessions.c.agent_low_id == agent.id, sessions.c.agent_high_id == agent.id)
                )
                .order_by(sessions.c.created_at.desc())
                .limit(limit)
            )
        ).all()
    names = await agent_service.names_by_id(
        svc, {r.agent_low_id for r in rows} | {r.agent_high_id for r in rows}
    )
    return wire.SessionList(
        sessions=[
            wire.SessionSummary(
                session_id=r.id,
                subject=svc.cipher.decrypt(r.subject_encrypted),
                participants=sorted([names[r.agent_low_id], names[r.agent_high_id]]),
                created_at=as_utc(r.created_at),
            )
            for r in rows
        ]
    )


async def history(
    svc: Services, agent: AgentRef, session_id: str, limit: int, before: str | None
) -> wire.SessionHistory:
    """The newest `limit` messages of a session (before a message id, if given), oldest first.

    A page also ends at MAILBOX_MAX_PAGE_BYTES: the client asks for older ones with
    `before` set to the oldest message's id until a page comes back empty."""
    async with svc.db.read() as conn:
        session = (
            await conn.execute(
                select(sessions).where(
                    sessions.c.id == session_id,
                    or_(sessions.c.agent_low_id == agent.id, sessions.c.agent_high_id == agent.id),
                )
            )
        ).first()
        if session is None:
            raise NotFound("no session with that id", code="session_not_found")
        query = message_query().where(messages.c.session_id == session_id)
        if before is not None:
            anchor = (
                await conn.execute(
                    select(messages.c.created_at, messages.c.id).where(
                        messages.c.id == before, messages.c.session_id == session_id
                    )
                )
            ).first()
            if anchor is None:
                raise NotFound("`before` is not a message of this session", code="not_found")
            query = query.where(
                or_(
                    messages.c.created_at < anchor.created_at,
                    and_(messages.c.created_at == anchor.created_at, messages.c.id < anchor.id),
                )
            )
        newest_first = (messages.c.created_at.desc(), messages.c.id.desc())
        # The newest `limit` messages, or as many of them as fit in the page's bytes
        # (see page_budget): chosen by stored size first, read in full after.
        sized = (
            await conn.execute(
                query.with_only_columns(messages.c.id, page_budget.STORED_SIZE)
                .order_by(*newest_first)
                .limit(limit)
            )
        ).all()
        budget = svc.settings.max_page_bytes
        chosen = page_budget.fitting(sized, (r.stored_size for r in sized), budget)
        rows = (
            await conn.execute(
                message_query()
                .where(messages.c.id.in_([r.id for r in chosen]))
                .order_by(*newest_first)
            )
        ).all()
    found = list(reversed(page_budget.trim_messages(await to_messages(svc, rows), budget)))
    names = await agent_service.names_by_id(svc, {session.agent_low_id, session.agent_high_id})
    return wire.SessionHistory(
        session_id=session.id,
        subject=svc.cipher.decrypt(session.subject_encrypted),
        participants=sorted(names.values()),
        messages=found,
    )
