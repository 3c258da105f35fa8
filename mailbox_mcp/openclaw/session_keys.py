"""OpenClaw's session keys, read and written here and nowhere else.

A session key is ``agent:<agentId>:<rest>``: the agent whose session it is, then
the session's own name. The bridge's per-peer sessions are
``agent:<agentId>:dm:mailbox-<peer>`` (``MAILBOX_SESSION_KEY_TEMPLATE``), and it
must never name an agent's ``main`` session, the owner's own conversation.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

__all__ = ["PREFIX", "SessionKey", "agent_of", "doctor_probe_key", "label_of", "names_main"]

PREFIX = "agent"
_SEP = ":"


@dataclass(frozen=True)
class SessionKey:
    agent_id: str
    rest: str

    @classmethod
    def parse(cls, key: str) -> SessionKey | None:
        """The parts of ``agent:<agentId>:<rest>``; None for anything else."""
        prefix, _, tail = key.partition(_SEP)
        agent_id, sep, rest = tail.partition(_SEP)
        if prefix != PREFIX or not agent_id or not sep or not rest:
            return None
        return cls(agent_id, rest)

    def __str__(self) -> str:
        return _SEP.join((PREFIX, self.agent_id, self.rest))


def agent_of(key: str, default: str) -> str:
    """The agent whose session ``key`` is; ``default`` for a key of no known shape."""
    parsed = SessionKey.parse(key)
    return parsed.agent_id if parsed else default


def label_of(key: str) -> str:
    """The session's last name part (``mailbox-bob``), a label when none was given."""
    return key.rsplit(_SEP, 1)[-1]


def names_main(key: str) -> bool:
    """Is ``key`` an agent's main session (the owner's own conversation)?"""
    return key.endswith(f"{_SEP}main")


def doctor_probe_key(agent_id: str) -> str:
    """A per-peer-shaped key no session has, for `doctor` to probe without a run."""
    return str(SessionKey(agent_id, f"dm:mailbox-doctor-probe-{secrets.token_hex(4)}"))
