"""State that every bridge process of the agent shares: one SQLite file in the state dir.

OpenClaw starts a bridge process per session, so a reply budget counted in one
process's memory could be spent again by each of its siblings. Here every
count, level, epoch and held item lives in `peer-safety.sqlite3` (WAL), and a
decision that reads then writes runs in one `BEGIN IMMEDIATE` transaction:
SQLite's write lock makes it atomic across processes.

Calls are synchronous and short (well under a millisecond); the bridge makes
them from the event loop, as it does with its delivered log.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

FILE_NAME = "peer-safety.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS peers (
    peer TEXT PRIMARY KEY,
    -- bumped by every revoke (and by a new connection), voiding older reply handles
    epoch INTEGER NOT NULL DEFAULT 0,
    -- the connection the epoch belongs to, as the server last showed it
    connected_at TEXT,
    level TEXT,
    per_conversation INTEGER,
    per_day INTEGER,
    changed_at REAL
);
-- Replies that went out on their own, counted against the peer's budget.
CREATE TABLE IF NOT EXISTS replies (
    id INTEGER PRIMARY KEY,
    peer TEXT NOT NULL,
    session_id TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS replies_peer_at ON replies (peer, at);
CREATE INDEX IF NOT EXISTS replies_peer_session ON replies (peer, session_id);
-- Items waiting for the owner: replies past the budget, messages the guard held.
CREATE TABLE IF NOT EXISTS held (
    held_id TEXT PRIMARY KEY,
    direction TEXT NOT NULL,
    peer TEXT NOT NULL,
    session_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    content TEXT NOT NULL,
    encrypt INTEGER NOT NULL DEFAULT 0,
    -- incoming: the message as the agent would read it (JSON); one item per message
    message_id TEXT UNIQUE,
    readable TEXT,
    resolved_at REAL,
    result TEXT
);
CREATE INDEX IF NOT EXISTS held_status ON held (status, created_at);
"""


class Ledger:
    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = state_dir / FILE_NAME
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        self._db = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=10
        )
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        # A killed process loses nothing committed; only a power loss could drop the
        # last commits, and then a reply is counted or held once less, never sent twice.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic read-then-write across every process of the agent."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def query(self, sql: str, parameters: tuple[object, ...] = ()) -> list[sqlite3.Row]:
        return self._db.execute(sql, parameters).fetchall()

    # --- epochs -------------------------------------------------------------------

    def epoch(self, peer: str) -> int:
        row = self._db.execute("SELECT epoch FROM peers WHERE peer = ?", (peer,)).fetchone()
        return int(row["epoch"]) if row else 0

    def bump_epoch(self, peer: str) -> int:
        """Void every reply handle for `peer` minted so far; the new epoch."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO peers (peer, epoch) VALUES (?, 1) "
                "ON CONFLICT (peer) DO UPDATE SET epoch = epoch + 1",
                (peer,),
            )
            return int(db.execute("SELECT epoch FROM peers WHERE peer = ?", (peer,)).fetchone()[0])

    def sync_connections(self, connected: dict[str, str]) -> list[str]:
        """Bring epochs in line with the server's connections (peer -> connected_at).

        A revoke, or a revoke and a new connection, that happened while no bridge
        listened shows here as a changed or missing `connected_at`: that peer's
        epoch goes up as if the revoke had been seen live. Returns those peers.
        """
        bumped = []
        with self.transaction() as db:
            known = {
                row["peer"]: row["connected_at"]
                for row in db.execute("SELECT peer, connected_at FROM peers")
            }
            for peer, was in known.items():
                now = connected.get(peer)
                if was is not None and was != now:
                    db.execute(
                        "UPDATE peers SET epoch = epoch + 1, connected_at = ? WHERE peer = ?",
                        (now, peer),
                    )
                    bumped.append(peer)
                elif was is None and now is not None:
                    db.execute("UPDATE peers SET connected_at = ? WHERE peer = ?", (now, peer))
            for peer, at in connected.items():
                if peer not in known:
                    db.execute("INSERT INTO peers (peer, connected_at) VALUES (?, ?)", (peer, at))
        return bumped

    def close(self) -> None:
        self._db.close()
