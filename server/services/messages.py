"""Sending a message: the hot path.

A send is one transaction: bump the recipient's counter, insert the encrypted
message (and a new session, and the idempotency record). It is answered only
after the commit, and pushed to the recipient's WebSocket right after it by
the same task. Sends to one recipient are serialised in-process, so frames
leave in `seq` order; the database's row lock on the counter does the same
across connections.

The pair limit (MAILBOX_PAIR_MESSAGES_PER_HOUR) is taken as a reservation once
the send is known to be valid and not a replay, in one synchronous step, and
given back if the send then fails: only stored messages count.
"""

from __future__ import annotations

import asyncio
import json
import uuid
import weakref
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

import mailbox_wire as wire

from ..clock import as_utc, utcnow
from ..errors import Conflict, Forbidden, InvalidInput, NotFound, PayloadTooLarge, RateLimited
from ..models import agents, idempotency_keys, messages, sessions
from . import agents as agent_service
from . import frames, message_store
from .connections import are_connected
from .context import AgentRef, Services, pair
from .message_store import NewMessage

OPENPGP = {"algorithm": "openpgp", "format": "armored"}


class SendGate:
    """Per-recipient ordering plus a bound on sends in flight (load shedding)."""

    def __init__(self, max_inflight: int) -> None:
        self.max_inflight = max_inflight
        self.inflight = 0
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def lock_for(self, recipient_id: str) -> asyncio.Lock:
        lock = self._locks.get(recipient_id)
        if lock is None:
            lock = self._locks[recipient_id] = asyncio.Lock()
        return lock


def _body_hash(svc: Services, body: wire.SendRequest) -> str:
    """Keyed, so the stored digest cannot confirm a guessed message (see keyed_hash)."""
    data = body.model_dump(exclude={"idempotency_key"}, mode="json")
    return svc.hashes.send_body(json.dumps(data, sort_keys=True).encode())


async def send(
    svc: Services, gate: SendGate, sender: AgentRef, body: wire.SendRequest
) -> wire.SendResponse:
    size = len(body.content.encode())
    if size > svc.settings.max_message_bytes:
        raise PayloadTooLarge(
            f"content is {size} bytes; the limit is {svc.settings.max_message_bytes}"
        )
    if body.encryption is not None and not body.encrypted:
        raise InvalidInput("`encryption` is only allowed with `encrypted: true`")
    encryption = OPENPGP if body.encrypted else None

    recipient = await agent_service.by_name(svc, body.to)
    if recipient.id == sender.id or not await are_connected(svc, sender.id, recipient.id):
        raise Forbidden(
            f"you are not connected to {body.to!r}; request a connection first",
            code="not_connected",
        )
    if body.encrypted and not await _has_openpgp_key(svc, recipient.id):
        raise Conflict(
            f"{body.to!r} has not published an OpenPGP key, so it cannot receive encrypted mail",
            code="peer_missing_openpgp_public_key",
        )

    body_hash = key_hash = None
    if body.idempotency_key is not None:
        body_hash = _body_hash(svc, body)
        key_hash = svc.hashes.idempotency_key(body.idempotency_key)
        earlier = await _replay(svc, sender, key_hash, body_hash)
        if earlier is not None:
            return earlier

    if body.session_id is not None:
        subject = await _session_subject(svc, body.session_id, sender.id, recipient.id)
        new_session = False
        session_id = body.session_id
    else:
        subject = " ".join((body.subject or "").split())
        if not subject:
            raise InvalidInput(
                "a new conversation needs a `subject` (or pass `session_id` to continue one)",
                code="subject_required",
            )
        new_session = True
        session_id = str(uuid.uuid4())

    pair_slot = _take_pair_slot(svc, sender, recipient)
    stored = False
    try:
        if gate.inflight >= gate.max_inflight:
            raise RateLimited(
                "the server is at capacity; retry shortly",
                code="overloaded",
                retry_after=1,
                status_code=503,
            )
        gate.inflight += 1
        try:
            async with gate.lock_for(recipient.id):
                message_id = str(uuid.uuid4())
                now = utcnow()
                low, high = pair(sender.id, recipient.id)
                row = NewMessage(
                    message_id=message_id,
                    sender_id=sender.id,
                    recipient_id=recipient.id,
                    session_id=session_id,
                    content_encrypted=svc.cipher.encrypt(body.content),
                    correlation_id_encrypted=svc.cipher.encrypt_optional(body.correlation_id),
                    encrypted=body.encrypted,
                    encryption=json.dumps(encryption) if encryption else None,
                    created_at=now,
                    new_session_subject=svc.cipher.encrypt(subject) if new_session else None,
                    session_low_id=low,
                    session_high_id=high,
                    idempotency_key_hash=key_hash,
                    body_hash=body_hash,
                )
                try:
                    seq = await message_store.store(svc.db, row)
                    stored = True
                except IntegrityError:
                    if key_hash is None or body_hash is None:
                        raise
                    # A concurrent retry with the same key won the race: answer as it did.
                    earlier = await _replay(svc, sender, key_hash, body_hash)
                    if earlier is None:
                        raise
                    return earlier
                if new_session:
                    svc.session_info.put(session_id, (*pair(sender.id, recipient.id), subject))
                frame = frames.new_message(
                    message_id=message_id,
                    seq=seq,
                    session_id=session_id,
                    from_agent=sender.name,
                    to_agent=recipient.name,
                    subject=subject,
                    content=body.content,
                    created_at=now,
                    correlation_id=body.correlation_id,
                    encrypted=body.encrypted,
                    encryption=encryption,
                )
                svc.hub.push_message(recipient.id, seq, frame)
                if svc.cluster is not None and svc.cluster.processes > 1:
                    # Only another process could hold the recipient's socket.
                    svc.notices.note(recipient.id, seq)
        finally:
            gate.inflight -= 1
    finally:
        if not stored and pair_slot is not None:
            _give_back_pair_slot(svc, sender, recipient, pair_slot)
    return wire.SendResponse(message_id=message_id, session_id=session_id, seq=seq, created_at=now)


def _take_pair_slot(svc: Services, sender: AgentRef, recipient: AgentRef) -> float | None:
    """Reserve one of the pair's messages of the hour (None when the limit is off).

    Synchronous on purpose: the check and the record happen with no await between."""
    window = svc.pair_messages
    if window is None:
        return None
    key = (sender.id, recipient.id)
    slot = window.reserve(key)
    if slot is None:
        raise RateLimited(
            f"you sent {recipient.name!r} {window.limit} messages within the last hour, "
            "the most this server allows from one agent to another; retry later",
            retry_after=window.retry_after(key),
        )
    return slot


def _give_back_pair_slot(svc: Services, sender: AgentRef, recipient: AgentRef, slot: float) -> None:
    if svc.pair_messages is not None:
        svc.pair_messages.release((sender.id, recipient.id), slot)


async def _has_openpgp_key(svc: Services, agent_id: str) -> bool:
    cached = svc.has_openpgp_key.get(agent_id)
    if cached is not None:
        return cached
    generation = svc.has_openpgp_key.generation
    async with svc.db.read() as conn:
        key = (
            await conn.execute(select(agents.c.openpgp_public_key).where(agents.c.id == agent_id))
        ).scalar_one_or_none()
    # As for connections: "no key" is kept only where no other process can add one.
    if key is not None or svc.cluster is None:
        svc.has_openpgp_key.fill(agent_id, key is not None, generation)
    return key is not None


async def _replay(
    svc: Services, sender: AgentRef, key_hash: str, body_hash: str
) -> wire.SendResponse | None:
    """The first answer for an idempotency key, or None if the key is new (or expired)."""
    cutoff = utcnow().timestamp() - svc.settings.idempotency_ttl_seconds
    async with svc.db.read() as conn:
        row = (
            await conn.execute(
                select(
                    idempotency_keys.c.body_hash,
                    idempotency_keys.c.created_at.label("key_created_at"),
                    messages.c.id,
                    messages.c.session_id,
                    messages.c.seq,
                    messages.c.created_at,
                )
                .join(messages, messages.c.id == idempotency_keys.c.message_id)
                .where(
                    idempotency_keys.c.sender_id == sender.id,
                    idempotency_keys.c.key_hash == key_hash,
                )
            )
        ).first()
    if row is None:
        return None
    if as_utc(row.key_created_at).timestamp() < cutoff:
        # Expired: the janitor deletes it soon; until then it no longer binds.
        await _forget_idempotency_key(svc, sender.id, key_hash)
        return None
    if row.body_hash != body_hash:
        raise Conflict(
            "this idempotency_key was used with a different message", code="idempotency_conflict"
        )
    return wire.SendResponse(
        message_id=row.id, session_id=row.session_id, seq=row.seq, created_at=as_utc(row.created_at)
    )


async def _forget_idempotency_key(svc: Services, sender_id: str, key_hash: str) -> None:
    async with svc.db.write() as conn:
        await conn.execute(
            idempotency_keys.delete().where(
                idempotency_keys.c.sender_id == sender_id, idempotency_keys.c.key_hash == key_hash
            )
        )


async def purge_expired_idempotency_keys(svc: Services) -> int:
    cutoff = datetime.fromtimestamp(
        utcnow().timestamp() - svc.settings.idempotency_ttl_seconds, tz=utcnow().tzinfo
    )
    async with svc.db.write() as conn:
        result = await conn.execute(
            idempotency_keys.delete().where(idempotency_keys.c.created_at < cutoff)
        )
    return result.rowcount or 0


async def _session_subject(
    svc: Services, session_id: str, sender_id: str, recipient_id: str
) -> str:
    """The subject of a session between exactly these two agents, else `session_not_found`."""
    info = svc.session_info.get(session_id)
    if info is None:
        async with svc.db.read() as conn:
            row = (
                await conn.execute(
                    select(
                        sessions.c.agent_low_id,
                        sessions.c.agent_high_id,
                        sessions.c.subject_encrypted,
                    ).where(sessions.c.id == session_id)
                )
            ).first()
        if row is not None:
            info = (row.agent_low_id, row.agent_high_id, svc.cipher.decrypt(row.subject_encrypted))
            svc.session_info.put(session_id, info)
    if info is None or (info[0], info[1]) != pair(sender_id, recipient_id):
        raise NotFound(
            "no session with that id between you and that agent", code="session_not_found"
        )
    return info[2]
