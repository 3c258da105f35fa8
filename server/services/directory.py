"""The public key directory: agents publish keys, anyone may read them.

A published OpenPGP key is checked in two steps. First its packet framing, in
one bounded pass on the event loop (well under a millisecond for 64 KiB,
`mailbox_mcp.e2e.key_packets`): pgpy's pure-Python parser is worse than linear
in places, and 64 KiB of crafted packets cost it seconds of CPU, so a key with
more packets, user ids or subpackets than a real key has is refused (422)
before pgpy sees it. Then pgpy itself, in a worker process
(`openpgp_parse.py`, which says why not a thread).
"""

from __future__ import annotations

from sqlalchemy import select, update

import mailbox_wire as wire
from mailbox_mcp.e2e.armor import ArmorError, unarmor
from mailbox_mcp.e2e.key_packets import KeyShapeError, check_public_key

from .. import cluster
from ..errors import InvalidInput, NotFound
from ..models import agents
from .context import AgentRef, Services
from .openpgp_parse import default_parser

_PRIVATE_ARMOR = "-----BEGIN PGP PRIVATE KEY BLOCK-----"
_FIELD = "openpgp_public_key"

# One worker process for the whole server process (and for every server a test runs).
parser = default_parser()


def openpgp_key_bytes(armored: str) -> bytes:
    """The packets of an armored public key, checked to be shaped like one; InvalidInput if not.

    Our own armor reader: pgpy's checks the CRC bit by bit in Python (~40 ms for 45 KiB).
    """
    if _PRIVATE_ARMOR in armored:
        raise InvalidInput(f"{_FIELD} is a PRIVATE key: publish only the public key")
    try:
        data = unarmor(armored, "PUBLIC KEY BLOCK")
    except ArmorError as exc:
        raise InvalidInput(f"{_FIELD} is not an armored OpenPGP public key: {exc}") from None
    try:
        check_public_key(data)
    except KeyShapeError as exc:
        raise InvalidInput(f"{_FIELD} is refused: {exc}") from None
    return data


async def register(
    svc: Services, agent: AgentRef, body: wire.DirectoryRegister
) -> wire.DirectoryEntry:
    fingerprint = await parser.fingerprint(openpgp_key_bytes(body.openpgp_public_key))
    async with svc.db.write() as conn:
        await conn.execute(
            update(agents)
            .where(agents.c.id == agent.id)
            .values(
                public_key=body.public_key,
                public_key_algorithm=body.algorithm,
                openpgp_public_key=body.openpgp_public_key,
                key_version=body.key_version,
                fingerprint=fingerprint,
            )
        )
        await cluster.announce(conn, cluster.OPENPGP_CHANGED, agent.id)
    svc.has_openpgp_key.put(agent.id, True)
    return await lookup(svc, agent.name)


async def lookup(svc: Services, name: str) -> wire.DirectoryEntry:
    async with svc.db.read() as conn:
        row = (await conn.execute(select(agents).where(agents.c.name == name))).first()
    if row is None:
        raise NotFound(f"no agent is named {name!r}", code="agent_not_found")
    return wire.DirectoryEntry(
        agent_id=row.id,
        name=row.name,
        public_key=row.public_key,
        openpgp_public_key=row.openpgp_public_key,
        key_version=row.key_version,
        fingerprint=row.fingerprint,
    )
