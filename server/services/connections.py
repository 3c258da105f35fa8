"""Connections: double opt-in with a short human code, listing and revoking.

The requester's owner gets the code and hands it to the target's owner out of
band; only the target can approve, and only with the code. Failed approvals
are counted per agent, so guessing the code space (576,000 codes) is hopeless.
"""

from __future__ import annotations

import re
import secrets
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, and_, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

import mailbox_wire as wire

from .. import cluster
from ..clock import as_utc, utcnow
from ..errors import Conflict, Gone, InvalidInput, NotFound, RateLimited
from ..models import agents, connection_requests, connections
from . import agents as agent_service
from . import blocks, cluster_events, frames, request_limits
from .code_scrub import scrub_codes
from .context import AgentRef, Services, pair

# Letters without I and O, so the code reads unambiguously over the phone.
_CODE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
_CODE_PATTERN = re.compile(r"^[A-Z]{2}-[0-9]{3}$")


def new_code() -> str:
    letters = "".join(secrets.choice(_CODE_LETTERS) for _ in range(2))
    return f"{letters}-{secrets.randbelow(1000):03d}"


def normalise_code(code: str) -> str:
    # What this accepts, `code_scrub` removes from request notes: keep them in step.
    return code.strip().upper().replace(" ", "")


async def are_connected(svc: Services, a: str, b: str) -> bool:
    key = pair(a, b)
    cached = svc.connected_pairs.get(key)
    if cached is not None:
        return cached
    generation = svc.connected_pairs.generation
    async with svc.db.read() as conn:
        found = (
            await conn.execute(
                select(connections.c.id).where(
                    connections.c.agent_low_id == key[0], connections.c.agent_high_id == key[1]
                )
            )
        ).first() is not None
    # "Not connected" is kept only where no other process can connect the pair (SQLite):
    # on PostgreSQL an approve on another process must work here at once, not after
    # its announcement arrives.
    if found or svc.cluster is None:
        svc.connected_pairs.fill(key, found, generation)
    return found


async def request(
    svc: Services, requester: AgentRef, body: wire.ConnectionRequestCreate
) -> wire.ConnectionRequestCreated:
    target = await agent_service.by_name(svc, body.target_agent_name)
    if target.id == requester.id:
        raise InvalidInput(
            "an agent cannot connect to itself", code="cannot_connect_to_self", status_code=400
        )
    if await are_connected(svc, requester.id, target.id):
        raise Conflict(f"already connected to {target.name!r}", code="already_connected")
    # Scrubbed once, before anything stores or pushes it: no view can show a code.
    note = scrub_codes(body.message) if body.message is not None else None
    now = utcnow()
    code = new_code()
    request_id = str(uuid.uuid4())
    expires_at = now + timedelta(seconds=svc.settings.connection_code_ttl_seconds)
    async with svc.db.write() as conn:
        # Lock both rows, in id order (no deadlock between crossed requests), so two
        # concurrent requests cannot both pass the requester's or the target's limit.
        await conn.execute(
            select(agents.c.id)
            .where(agents.c.id.in_([requester.id, target.id]))
            .order_by(agents.c.id)
            .with_for_update()
        )
        await request_limits.check_cooldown(conn, requester.id, target.id, now, svc.settings)
        # A blocked requester goes on as if nothing were wrong; only the target's views
        # leave its request out (see blocks.py), and the target's limit ignores it.
        silenced = await blocks.is_blocked(conn, target.id, requester.id)
        pending = (
            await conn.execute(
                select(connection_requests.c.target_id, connection_requests.c.expires_at).where(
                    connection_requests.c.requester_id == requester.id,
                    connection_requests.c.status == "pending",
                    connection_requests.c.expires_at > now,
                )
            )
        ).all()
        if any(row.target_id == target.id for row in pending):
            raise Conflict(
                f"a request to {target.name!r} is already pending; "
                "use its code, or wait for it to expire",
                code="request_already_pending",
            )
        if len(pending) >= svc.settings.max_outgoing_pending:
            soonest = min(as_utc(row.expires_at) for row in pending)
            raise RateLimited(
                f"at most {svc.settings.max_outgoing_pending} outgoing requests may be pending",
                code="pending_limit_reached",
                retry_after=(soonest - now).total_seconds(),
            )
        if not silenced:
            await request_limits.check_incoming_room(conn, target.id, now, svc.settings)
        await conn.execute(
            insert(connection_requests).values(
                id=request_id,
                requester_id=requester.id,
                target_id=target.id,
                code_hash=svc.hashes.connection_code(code),
                code_encrypted=svc.cipher.encrypt(code),
                message_encrypted=svc.cipher.encrypt_optional(note),
                status="pending",
                created_at=now,
                expires_at=expires_at,
            )
        )
    if silenced:
        return wire.ConnectionRequestCreated(
            request_id=request_id,
            verification_code=code,
            target_agent_name=target.name,
            expires_at=expires_at,
        )
    cluster_events.push_event(
        svc,
        target.id,
        frames.connection_request(
            wire.IncomingRequest(
                request_id=request_id,
                from_agent_name=requester.name,
                message=note,
                status="pending",
                created_at=now,
                expires_at=expires_at,
            )
        ),
    )
    return wire.ConnectionRequestCreated(
        request_id=request_id,
        verification_code=code,
        target_agent_name=target.name,
        expires_at=expires_at,
    )


async def incoming_pending(svc: Services, agent: AgentRef) -> list[wire.IncomingRequest]:
    """What waits for the agent's answer, oldest first: never from an agent it blocked,
    and never more than MAILBOX_MAX_INCOMING_PENDING (new ones are refused past that)."""
    now = utcnow()
    async with svc.db.read() as conn:
        rows = (
            await conn.execute(
                select(connection_requests, agents.c.name.label("requester_name"))
                .join(agents, agents.c.id == connection_requests.c.requester_id)
                .where(
                    connection_requests.c.target_id == agent.id,
                    connection_requests.c.status == "pending",
                    connection_requests.c.expires_at > now,
                    ~blocks.blocked_by(agent.id, connection_requests.c.requester_id),
                )
                .order_by(connection_requests.c.created_at)
                .limit(svc.settings.max_incoming_pending)
            )
        ).all()
    return [
        wire.IncomingRequest(
            request_id=row.id,
            from_agent_name=row.requester_name,
            message=svc.cipher.decrypt_optional(row.message_encrypted),
            status=row.status,
            created_at=as_utc(row.created_at),
            expires_at=as_utc(row.expires_at),
        )
        for row in rows
    ]


async def pending(svc: Services, agent: AgentRef) -> wire.PendingConnections:
    now = utcnow()
    async with svc.db.read() as conn:
        rows = (
            await conn.execute(
                select(connection_requests, agents.c.name.label("target_name"))
                .join(agents, agents.c.id == connection_requests.c.target_id)
                .where(
                    connection_requests.c.requester_id == agent.id,
                    connection_requests.c.status == "pending",
                    connection_requests.c.expires_at > now,
                )
                .order_by(connection_requests.c.created_at)
            )
        ).all()
    outgoing = [
        wire.OutgoingRequest(
            request_id=row.id,
            target_agent_name=row.target_name,
            verification_code=svc.cipher.decrypt(row.code_encrypted),
            message=svc.cipher.decrypt_optional(row.message_encrypted),
            status=row.status,
            created_at=as_utc(row.created_at),
            expires_at=as_utc(row.expires_at),
        )
        for row in rows
    ]
    return wire.PendingConnections(incoming=await incoming_pending(svc, agent), outgoing=outgoing)


async def approve(
    svc: Services, target: AgentRef, body: wire.ApproveRequest
) -> wire.ApproveResponse:
    # Every attempt takes a failure slot before its first await, so wrong codes sent
    # together cannot all be tried before the first is counted; an attempt that was
    # not a wrong code (approved, expired, already connected) gives its slot back.
    slot, wait = await svc.approve_failures.reserve(target.id)
    if slot is None:
        raise RateLimited("too many wrong codes; wait before trying again", retry_after=wait)
    try:
        approved = await _connect_with_code(svc, target, body.verification_code)
    except NotFound as exc:
        if exc.code != INVALID_CODE:
            await svc.approve_failures.release(target.id, slot)
        raise
    except BaseException:
        await svc.approve_failures.release(target.id, slot)
        raise
    await svc.approve_failures.release(target.id, slot)
    return approved


INVALID_CODE = "invalid_code"


async def _connect_with_code(
    svc: Services, target: AgentRef, verification_code: str
) -> wire.ApproveResponse:
    code = normalise_code(verification_code)
    invalid = NotFound(
        "no pending request to you has that code; ask the requester's owner for it",
        code=INVALID_CODE,
    )
    if not _CODE_PATTERN.match(code):
        raise invalid
    now = utcnow()
    try:
        async with svc.db.write() as conn:
            row = await _settle_request(conn, svc, target, code, now, invalid)
            low, high = pair(row.requester_id, target.id)
            await conn.execute(
                insert(connections).values(
                    id=str(uuid.uuid4()), agent_low_id=low, agent_high_id=high, created_at=now
                )
            )
            await cluster.announce(conn, cluster.PAIR_CHANGED, low, high)
    except IntegrityError:
        # Both sides approved each other's requests at the same moment.
        raise Conflict("you are already connected", code="already_connected") from None
    svc.connected_pairs.put((low, high), True)
    requester_name = (await agent_service.names_by_id(svc, {row.requester_id}))[row.requester_id]
    stamp = now.isoformat()
    cluster_events.push_event(
        svc, row.requester_id, frames.connection_approved(target.name, stamp, row.id)
    )
    cluster_events.push_event(
        svc, target.id, frames.connection_approved(requester_name, stamp, row.id)
    )
    return wire.ApproveResponse(peer_agent_name=requester_name, connected_at=now)


async def _settle_request(
    conn: AsyncConnection,
    svc: Services,
    target: AgentRef,
    code: str,
    now: datetime,
    invalid: NotFound,
) -> Row[Any]:
    """Find the pending request to `target` with `code` and mark it (and its mirror) approved."""
    row = (
        await conn.execute(
            select(connection_requests)
            .where(
                connection_requests.c.target_id == target.id,
                connection_requests.c.code_hash == svc.hashes.connection_code(code),
                connection_requests.c.status == "pending",
                # A blocked agent's code approves nothing, whoever passed it on.
                ~blocks.blocked_by(target.id, connection_requests.c.requester_id),
            )
            .order_by(connection_requests.c.created_at.desc())
            .limit(1)
            .with_for_update()
        )
    ).first()
    if row is None:
        raise invalid
    if as_utc(row.expires_at) <= now:
        raise Gone(
            "that code has expired; the requester must send a new request", code="code_expired"
        )
    low, high = pair(row.requester_id, target.id)
    existing = (
        await conn.execute(
            select(connections.c.id).where(
                connections.c.agent_low_id == low, connections.c.agent_high_id == high
            )
        )
    ).first()
    if existing is not None:
        raise Conflict("you are already connected", code="already_connected")
    # Any pending request between the two, either way, is settled by this approval.
    await conn.execute(
        update(connection_requests)
        .where(
            connection_requests.c.status == "pending",
            or_(
                and_(
                    connection_requests.c.requester_id == row.requester_id,
                    connection_requests.c.target_id == target.id,
                ),
                and_(
                    connection_requests.c.requester_id == target.id,
                    connection_requests.c.target_id == row.requester_id,
                ),
            ),
        )
        .values(status="approved", resolved_at=now)
    )
    return row


async def reject(svc: Services, agent: AgentRef, body: wire.RejectRequest) -> wire.RejectResponse:
    """The target rejects an incoming request; the requester may cancel its own."""
    now = utcnow()
    async with svc.db.write() as conn:
        row = (
            await conn.execute(
                select(connection_requests.c.requester_id, connection_requests.c.target_id).where(
                    connection_requests.c.id == body.request_id,
                    connection_requests.c.status == "pending",
                    or_(
                        connection_requests.c.target_id == agent.id,
                        connection_requests.c.requester_id == agent.id,
                    ),
                )
            )
        ).first()
        if row is None:
            raise NotFound("no pending request with that id", code="not_found")
        status = "rejected" if row.target_id == agent.id else "cancelled"
        await conn.execute(
            update(connection_requests)
            .where(connection_requests.c.id == body.request_id)
            .values(status=status, resolved_at=now)
        )
    return wire.RejectResponse(status=status, request_id=body.request_id)


async def list_connections(svc: Services, agent: AgentRef) -> wire.ConnectionList:
    async with svc.db.read() as conn:
        rows = (
            await conn.execute(
                select(connections)
                .where(
                    or_(
                        connections.c.agent_low_id == agent.id,
                        connections.c.agent_high_id == agent.id,
                    )
                )
                .order_by(connections.c.created_at)
            )
        ).all()
    peers = {r.agent_high_id if r.agent_low_id == agent.id else r.agent_low_id for r in rows}
    names = await agent_service.names_by_id(svc, peers)
    result = []
    for r in rows:
        peer_id = r.agent_high_id if r.agent_low_id == agent.id else r.agent_low_id
        result.append(
            wire.Connection(
                peer_agent_name=names[peer_id],
                peer_agent_id=peer_id,
                connected_at=as_utc(r.created_at),
            )
        )
    return wire.ConnectionList(connections=result)


async def revoke(svc: Services, agent: AgentRef, peer_name: str) -> wire.RevokeResponse:
    not_connected = NotFound(f"you are not connected to {peer_name!r}", code="not_found")
    try:
        peer = await agent_service.by_name(svc, peer_name)
    except NotFound:
        raise not_connected from None
    low, high = pair(agent.id, peer.id)
    async with svc.db.write() as conn:
        deleted = await conn.execute(
            delete(connections).where(
                connections.c.agent_low_id == low, connections.c.agent_high_id == high
            )
        )
        if deleted.rowcount == 0:
            raise not_connected
        await cluster.announce(conn, cluster.PAIR_CHANGED, low, high)
    # Forgotten rather than cached as False (a reader from before the revoke cannot put
    # True back; see `are_connected` for why False is not cached here).
    svc.connected_pairs.invalidate((low, high))
    cluster_events.push_event(svc, peer.id, frames.connection_revoked(agent.name))
    cluster_events.push_event(svc, agent.id, frames.connection_revoked(peer.name))
    return wire.RevokeResponse(peer_agent_name=peer.name)
