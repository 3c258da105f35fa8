"""The public key directory: agents publish keys, anyone may read them."""

from __future__ import annotations

import warnings

from sqlalchemy import select, update

from .. import schemas
from ..errors import InvalidInput, NotFound
from ..models import agents
from .context import AgentRef, Services


def openpgp_fingerprint(armored: str) -> str:
    """The fingerprint of an ASCII-armored OpenPGP public key; InvalidInput if it is not one."""
    with warnings.catch_warnings():
        # pgpy 0.6 warns about cryptography APIs it uses; that is not our caller's problem.
        warnings.simplefilter("ignore")
        import pgpy

        try:
            key, _ = pgpy.PGPKey.from_blob(armored)
        except Exception as exc:  # pgpy raises a wide range of types on bad input
            raise InvalidInput(f"openpgp_public_key is not an armored OpenPGP key: {exc}") from None
    if not key.is_public:
        raise InvalidInput("openpgp_public_key is a PRIVATE key: publish only the public key")
    return str(key.fingerprint).replace(" ", "")


async def register(
    svc: Services, agent: AgentRef, body: schemas.DirectoryRegister
) -> schemas.DirectoryEntry:
    fingerprint = openpgp_fingerprint(body.openpgp_public_key)
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
    svc.has_openpgp_key.put(agent.id, True)
    return await lookup(svc, agent.name)


async def lookup(svc: Services, name: str) -> schemas.DirectoryEntry:
    async with svc.db.read() as conn:
        row = (await conn.execute(select(agents).where(agents.c.name == name))).first()
    if row is None:
        raise NotFound(f"no agent is named {name!r}", code="agent_not_found")
    return schemas.DirectoryEntry(
        agent_id=row.id,
        name=row.name,
        public_key=row.public_key,
        openpgp_public_key=row.openpgp_public_key,
        key_version=row.key_version,
        fingerprint=row.fingerprint,
    )
