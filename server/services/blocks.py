"""Blocks: an owner refuses another agent's connection requests, silently.

A blocked agent's request is answered as any other (201, a code, pending on its
side), so it learns nothing it could work around; but the blocker never sees it
(no frame, not in its pending lists or inbox), its code approves nothing, and
it does not count toward the blocker's incoming limit. It still counts toward
the blocked agent's own outgoing limit, so it cannot pile them up. Blocking a
connected agent also revokes the connection. The rows live in the database
(`connection_blocks`, migration 0004), so every server process sees them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, exists, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

import mailbox_wire as wire

from ..clock import as_utc, utcnow
from ..errors import InvalidInput, NotFound
from ..models import agents, connection_blocks
from . import agents as agent_service
from .context import AgentRef, Services


def blocked_by(blocker_id: Any, requester_id: Any) -> Any:
    """A SQL condition: `blocker_id` has blocked `requester_id` (both columns or values)."""
    return exists().where(
        connection_blocks.c.blocker_id == blocker_id,
        connection_blocks.c.blocked_id == requester_id,
    )


async def is_blocked(conn: AsyncConnection, blocker_id: str, requester_id: str) -> bool:
    return bool((await conn.execute(select(blocked_by(blocker_id, requester_id)))).scalar())


async def block(svc: Services, owner: AgentRef, body: wire.BlockRequest) -> wire.Block:
    """Block an agent (again: the first time stands); a connection to it is revoked."""
    # Imported here: connections imports this module for its filters.
    from .connections import revoke

    other = await agent_service.by_name(svc, body.agent_name)
    if other.id == owner.id:
        raise InvalidInput(
            "an agent cannot block itself", code="cannot_block_self", status_code=400
        )
    try:
        async with svc.db.write() as conn:
            await conn.execute(
                insert(connection_blocks).values(
                    blocker_id=owner.id, blocked_id=other.id, created_at=utcnow()
                )
            )
    except IntegrityError:
        pass  # blocked already (perhaps by a concurrent call): the first time stands
    try:
        await revoke(svc, owner, other.name)
    except NotFound:
        pass  # not connected
    async with svc.db.read() as conn:
        blocked_at = (
            await conn.execute(
                select(connection_blocks.c.created_at).where(
                    connection_blocks.c.blocker_id == owner.id,
                    connection_blocks.c.blocked_id == other.id,
                )
            )
        ).scalar_one()
    return wire.Block(agent_name=other.name, blocked_at=as_utc(blocked_at))


async def unblock(svc: Services, owner: AgentRef, name: str) -> wire.UnblockResponse:
    not_blocked = NotFound(f"you have not blocked {name!r}", code="not_found")
    try:
        other = await agent_service.by_name(svc, name)
    except NotFound:
        raise not_blocked from None
    async with svc.db.write() as conn:
        deleted = await conn.execute(
            delete(connection_blocks).where(
                connection_blocks.c.blocker_id == owner.id,
                connection_blocks.c.blocked_id == other.id,
            )
        )
        if deleted.rowcount == 0:
            raise not_blocked
    return wire.UnblockResponse(agent_name=other.name)


async def list_blocks(svc: Services, owner: AgentRef) -> wire.BlockList:
    async with svc.db.read() as conn:
        rows = (
            await conn.execute(
                select(agents.c.name, connection_blocks.c.created_at)
                .join(agents, agents.c.id == connection_blocks.c.blocked_id)
                .where(connection_blocks.c.blocker_id == owner.id)
                .order_by(connection_blocks.c.created_at, agents.c.name)
            )
        ).all()
    return wire.BlockList(
        blocks=[wire.Block(agent_name=r.name, blocked_at=as_utc(r.created_at)) for r in rows]
    )
