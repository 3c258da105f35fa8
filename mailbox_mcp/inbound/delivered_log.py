"""What the bridge remembers across restarts, in MAILBOX_STATE_DIR.

The gateway does not deduplicate, and the server delivers at least once: a
crash between injecting a message and acknowledging it would inject it twice
on restart. So every injected message id is written here (and synced) before
the acknowledgement is sent, and checked before each injection.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

# Ids far below the acknowledged watermark can never come back; keep a margin.
_PRUNE_MARGIN = 10_000


class DeliveredLog:
    def __init__(self, state_dir: Path, agent_id: str) -> None:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = state_dir / "delivered.sqlite3"
        self.agent_id = agent_id
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        os.chmod(self.path, 0o600)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a killed process (the case that matters: the
        # host stops the bridge at will); only a power loss could forget the last
        # records, and then a message is injected once more, never lost.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS delivered ("
            " agent_id TEXT NOT NULL, message_id TEXT NOT NULL, seq INTEGER NOT NULL,"
            " PRIMARY KEY (agent_id, message_id))"
        )
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS cursor"
            " (agent_id TEXT PRIMARY KEY, acked_seq INTEGER NOT NULL)"
        )

    def was_delivered(self, message_id: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM delivered WHERE agent_id = ? AND message_id = ?",
            (self.agent_id, message_id),
        ).fetchone()
        return row is not None

    def mark_delivered(self, message_id: str, seq: int) -> None:
        """Record an injected message and advance the cursor to it, in one commit."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute(
                "INSERT OR IGNORE INTO delivered (agent_id, message_id, seq) VALUES (?, ?, ?)",
                (self.agent_id, message_id, seq),
            )
            self._advance(seq)

    def acked_seq(self) -> int:
        row = self._db.execute(
            "SELECT acked_seq FROM cursor WHERE agent_id = ?", (self.agent_id,)
        ).fetchone()
        return int(row[0]) if row else 0

    def set_acked_seq(self, seq: int) -> None:
        """Everything up to `seq` has been handed on (or was a duplicate)."""
        self._advance(seq)

    def _advance(self, seq: int) -> None:
        self._db.execute(
            "INSERT INTO cursor (agent_id, acked_seq) VALUES (?, ?) "
            "ON CONFLICT (agent_id) DO UPDATE SET acked_seq = MAX(acked_seq, excluded.acked_seq)",
            (self.agent_id, seq),
        )
        if seq % 1000 == 0:
            self._db.execute(
                "DELETE FROM delivered WHERE agent_id = ? AND seq < ?",
                (self.agent_id, seq - _PRUNE_MARGIN),
            )

    def count(self) -> int:
        return int(
            self._db.execute(
                "SELECT COUNT(*) FROM delivered WHERE agent_id = ?", (self.agent_id,)
            ).fetchone()[0]
        )

    def close(self) -> None:
        self._db.close()
