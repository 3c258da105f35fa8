"""One bridge process's handle on the agent's safety state, opened on first use.

Every bridge process of the agent (stdio per session, or one `serve`) builds a
`Safety` over the same state dir: the same key, ledger and audit log, so a
handle minted by the listening process is checked by the process that serves
the reply, and budgets count for the agent as a whole.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailbox_mcp.errors import BridgeError
from mailbox_mcp.safety import handles, secret_key
from mailbox_mcp.safety.handles import Handle
from mailbox_mcp.safety.ledger import Ledger
from mailbox_mcp.settings import BridgeSettings

if TYPE_CHECKING:
    from mailbox_mcp.safety.audit import AuditLog
    from mailbox_mcp.safety.secret_scan import SecretScanner


class SecretFound(BridgeError):
    """Outgoing text that holds a secret: nothing is sent or held."""

    def __init__(self, kinds: list[str]) -> None:
        super().__init__(
            f"the text holds {' and '.join(kinds)}: nothing was sent. Remove it and send "
            "again; never pass secrets to another agent"
        )
        self.kinds = kinds


class Safety:
    def __init__(self, settings: BridgeSettings, api_key: str | None) -> None:
        self.settings = settings
        self._api_key = api_key
        self._handle_key: bytes | None = None
        self._ledger: Ledger | None = None
        self._audit: AuditLog | None = None
        self._scanner: SecretScanner | None = None

    def _keys(self) -> tuple[bytes, bytes]:
        key = secret_key.load_or_create(self.settings.state_dir)
        return secret_key.derive(key, "reply-handle"), secret_key.derive(key, "audit-text")

    @property
    def handle_key(self) -> bytes:
        if self._handle_key is None:
            self._handle_key = self._keys()[0]
        return self._handle_key

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            self._ledger = Ledger(self.settings.state_dir)
        return self._ledger

    @property
    def audit(self) -> AuditLog:
        if self._audit is None:
            from mailbox_mcp.safety.audit import AuditLog

            self._audit = AuditLog(self.settings.state_dir, self._keys()[1])
        return self._audit

    @property
    def scanner(self) -> SecretScanner:
        if self._scanner is None:
            # The detector's patterns load on the first outgoing text, not at start-up.
            from mailbox_mcp.safety.secret_scan import SecretScanner

            settings = self.settings
            exact = {
                "this agent's mailbox API key": self._api_key,
                "the OpenClaw gateway token": _secret(settings.gateway_token),
                "the bridge's serve token": _secret(settings.serve_token),
                "the guard's API key": _secret(settings.guard_api_key),
                "the OpenPGP passphrase": _secret(settings.pgp_passphrase),
            }
            self._scanner = SecretScanner({kind: value for kind, value in exact.items() if value})
        return self._scanner

    def mint(self, agent_id: str, peer: str, session_id: str) -> str:
        """A reply handle for `peer` in `session_id`, under the peer's current epoch."""
        return handles.mint(self.handle_key, agent_id, peer, session_id, self.ledger.epoch(peer))

    def verify(self, token: str, agent_id: str) -> Handle:
        """Raises handles.HandleRefused."""
        return handles.verify(
            token, key=self.handle_key, agent_id=agent_id, epoch_of=self.ledger.epoch
        )

    def check_outgoing(
        self, *texts: str | None, peer: str | None = None, session_id: str | None = None
    ) -> None:
        """Raises SecretFound when any of `texts` holds a secret (before any encryption);
        the refusal is an audit event (`blocked`) naming the kinds, never the texts."""
        kinds: list[str] = []
        for text in texts:
            if text:
                kinds.extend(k for k in self.scanner.find(text) if k not in kinds)
        if kinds:
            self.audit.record(
                "blocked",
                peer=peer,
                text="\n".join(t for t in texts if t),
                session_id=session_id,
                kinds=", ".join(kinds),
            )
            raise SecretFound(kinds)

    def close(self) -> None:
        if self._ledger is not None:
            self._ledger.close()


def _secret(value: object) -> str | None:
    getter = getattr(value, "get_secret_value", None)
    return getter() if getter is not None else None
