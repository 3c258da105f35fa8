"""The per-peer sessions this process has made sure of on the gateway.

``sessions.create`` is safe to repeat on the gateway, but costs a WebSocket
exchange: the registry remembers which keys this process already created, and
each key's label, so that a message only pays for it the first time, and again
after the gateway lost the session (a restart: ``forget``).
"""

from __future__ import annotations

import anyio

from mailbox_mcp.openclaw.session_keys import agent_of, label_of

__all__ = ["CreateRequest", "SessionRegistry", "create_request"]

# One gateway RPC: its method and params.
CreateRequest = tuple[str, dict[str, object]]


def create_request(session_key: str, label: str, default_agent_id: str) -> CreateRequest:
    """The ``sessions.create`` call for ``session_key`` (no model run, idempotent)."""
    return (
        "sessions.create",
        {"key": session_key, "agentId": agent_of(session_key, default_agent_id), "label": label},
    )


class SessionRegistry:
    def __init__(self) -> None:
        self._created: set[str] = set()
        self._labels: dict[str, str] = {}
        # Held while a key is created, so two messages of one peer create it once.
        self.lock = anyio.Lock()

    def remember_label(self, session_key: str, label: str) -> None:
        self._labels[session_key] = label

    def label_for(self, session_key: str) -> str:
        return self._labels.get(session_key) or label_of(session_key)

    def is_created(self, session_key: str) -> bool:
        return session_key in self._created

    def mark_created(self, session_key: str) -> None:
        self._created.add(session_key)

    def forget(self, session_key: str) -> None:
        """Make the next use of this key ask the gateway again."""
        self._created.discard(session_key)
