"""Agents: registration, authentication by API key, key rotation, look-ups by name."""

from __future__ import annotations

import uuid

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

import mailbox_wire as wire

from .. import cluster
from ..clock import as_utc, utcnow
from ..errors import Conflict, NotFound, RateLimited, Unauthorized
from ..models import agents
from ..security import hash_api_key, looks_like_api_key, new_api_key
from .context import AgentRef, Services


async def register(svc: Services, body: wire.RegisterRequest, client: str) -> wire.RegisterResponse:
    # The slot is taken before the insert's await, so concurrent registrations from
    # one address cannot all pass; a refused one (name taken, or a failure) gives it back.
    slot, wait = await svc.registrations.reserve(client)
    if slot is None:
        raise RateLimited("too many registrations from this address; try later", retry_after=wait)
    api_key = new_api_key()
    agent_id = str(uuid.uuid4())
    try:
        async with svc.db.write() as conn:
            await conn.execute(
                insert(agents).values(
                    id=agent_id,
                    name=body.name,
                    description_encrypted=svc.cipher.encrypt_optional(body.description),
                    api_key_hash=hash_api_key(api_key),
                    created_at=utcnow(),
                    last_seq=0,
                )
            )
    except IntegrityError:
        await svc.registrations.release(client, slot)
        raise Conflict(f"the name {body.name!r} is taken", code="name_taken") from None
    except BaseException:
        await svc.registrations.release(client, slot)
        raise
    svc.remember_agent(AgentRef(agent_id, body.name))
    return wire.RegisterResponse(agent_id=agent_id, name=body.name, api_key=api_key)


async def authenticate(svc: Services, api_key: str | None) -> AgentRef:
    if not api_key:
        raise Unauthorized("send your API key as 'Authorization: Bearer amb_...'")
    # Every request comes here: a key seen before (so well-formed) costs one hash and
    # one cache probe; the format and checksum are checked only before a database look-up.
    key_hash = hash_api_key(api_key)
    cached = svc.agents_by_key_hash.get(key_hash)
    if cached is not None:
        return cached
    if not looks_like_api_key(api_key):
        raise Unauthorized("that is not a valid Agent Mailbox API key")
    generation = svc.agents_by_key_hash.generation
    async with svc.db.read() as conn:
        row = (
            await conn.execute(
                select(agents.c.id, agents.c.name).where(agents.c.api_key_hash == key_hash)
            )
        ).first()
    if row is None:
        raise Unauthorized("unknown or revoked API key")
    agent = AgentRef(row.id, row.name)
    svc.agents_by_key_hash.fill(key_hash, agent, generation)
    svc.remember_agent(agent)
    return agent


async def me(svc: Services, agent: AgentRef) -> wire.AgentMe:
    async with svc.db.read() as conn:
        row = (await conn.execute(select(agents).where(agents.c.id == agent.id))).one()
    return wire.AgentMe(
        agent_id=row.id,
        name=row.name,
        description=svc.cipher.decrypt_optional(row.description_encrypted),
        created_at=as_utc(row.created_at),
    )


async def rotate_key(svc: Services, agent: AgentRef) -> wire.RotateKeyResponse:
    api_key = new_api_key()
    async with svc.db.write() as conn:
        old_hash = (
            await conn.execute(
                select(agents.c.api_key_hash).where(agents.c.id == agent.id).with_for_update()
            )
        ).scalar_one()
        await conn.execute(
            update(agents).where(agents.c.id == agent.id).values(api_key_hash=hash_api_key(api_key))
        )
        await cluster.announce(conn, cluster.KEY_CHANGED, agent.id, old_hash)
    # The old key stops working at once: forget it before answering, and close the
    # socket opened with it, which would otherwise keep receiving (and acknowledging).
    # Other processes do the same when the announcement reaches them.
    svc.agents_by_key_hash.pop(old_hash)
    svc.hub.close_key(agent.id, old_hash)
    return wire.RotateKeyResponse(api_key=api_key)


async def by_name(svc: Services, name: str) -> AgentRef:
    """The agent of that name, or `agent_not_found`."""
    cached = svc.agents_by_name.get(name)
    if cached is not None:
        return cached
    async with svc.db.read() as conn:
        row = (
            await conn.execute(select(agents.c.id, agents.c.name).where(agents.c.name == name))
        ).first()
    if row is None:
        raise NotFound(f"no agent is named {name!r}", code="agent_not_found")
    agent = AgentRef(row.id, row.name)
    svc.remember_agent(agent)
    return agent


async def names_by_id(svc: Services, ids: set[str]) -> dict[str, str]:
    """Names for agent ids, from the cache where possible."""
    names: dict[str, str] = {}
    missing = []
    for agent_id in ids:
        cached = svc.agents_by_id.get(agent_id)
        if cached is None:
            missing.append(agent_id)
        else:
            names[agent_id] = cached.name
    if missing:
        async with svc.db.read() as conn:
            rows = await conn.execute(
                select(agents.c.id, agents.c.name).where(agents.c.id.in_(missing))
            )
            for row in rows:
                svc.remember_agent(AgentRef(row.id, row.name))
                names[row.id] = row.name
    return names
