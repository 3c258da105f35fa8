"""What the database holds: no message plaintext, no API key, no connection code."""

from __future__ import annotations

import asyncio
import hashlib
import json
import stat
from pathlib import Path

import asyncpg

from tests.helpers import connect_agents, register
from tests.servers import POSTGRES_ADMIN_URL, ServerThread, server_settings, sqlite_url

SECRET_CONTENT = "ZEBRA-PLAINTEXT-4711 the launch code is hunter2"
SECRET_SUBJECT = "QUOKKA-SUBJECT-0815"
SECRET_NOTE = "WOMBAT-REQUEST-NOTE-23"  # not code-shaped: it must be stored (encrypted)
SECRET_DESCRIPTION = "OCELOT-DESCRIPTION-77 handles payroll"
SECRET_CORRELATION = "NARWHAL-CORRELATION-5150"
SECRET_IDEMPOTENCY_KEY = "PANGOLIN-IDEMPOTENCY-9000"


def _raw_sqlite(database_url: str) -> bytes:
    path = Path(database_url.split(":///", 1)[1])
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*") if p.suffix != ".key")


async def _raw_postgres(database_url: str) -> bytes:
    """Every row of every table as text, plus the table files on disk where readable."""
    name = database_url.rsplit("/", 1)[1]
    admin = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    conn = await asyncpg.connect(f"{admin}/{name}")
    try:
        await conn.execute("CHECKPOINT")
        dump = []
        tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        for table in tables:
            for row in await conn.fetch(f'SELECT * FROM "{table["tablename"]}"'):
                dump.append(repr(tuple(row)).encode())
        data_dir = Path(await conn.fetchval("SHOW data_directory"))
        oid = await conn.fetchval("SELECT oid FROM pg_database WHERE datname = $1", name)
    finally:
        await conn.close()
    base = data_dir / "base" / str(oid)
    if base.is_dir():
        dump.extend(p.read_bytes() for p in base.iterdir() if p.is_file())
    return b"\n".join(dump)


def _unsalted_hashes(code: str, send_body: dict[str, object]) -> list[bytes]:
    """What an attacker with the database would compute to confirm a guess (the old scheme)."""
    canonical = json.dumps(send_body, sort_keys=True).encode()
    return [
        hashlib.sha256(code.encode()).hexdigest().encode(),
        hashlib.sha256(canonical).hexdigest().encode(),
        hashlib.sha256(SECRET_IDEMPOTENCY_KEY.encode()).hexdigest().encode(),
    ]


def test_no_plaintext_message_key_or_code_is_stored(fresh_database_url: str) -> None:
    with ServerThread(server_settings(fresh_database_url)) as server:
        a, b = register(server.url), register(server.url)
        a.http.post(  # a second agent with a description: it is user text, kept encrypted
            "/agents/register", json={"name": a.name + "-d", "description": SECRET_DESCRIPTION}
        ).raise_for_status()
        request = a.post(
            "/connections/request", {"target_agent_name": b.name, "message": SECRET_NOTE}
        ).json()
        code = request["verification_code"]
        b.post("/connections/approve", {"verification_code": code})
        c, d = register(server.url), register(server.url)
        connect_agents(c, d)
        sent = a.send(
            b,
            SECRET_CONTENT,
            subject=SECRET_SUBJECT,
            correlation_id=SECRET_CORRELATION,
            idempotency_key=SECRET_IDEMPOTENCY_KEY,
        )
        # Still readable through the API: encrypted at rest, not lost.
        message = b.get(f"/messages/{sent['message_id']}").json()
        assert message["correlation_id"] == SECRET_CORRELATION
        rotated = a.post("/agents/me/rotate-key").json()["api_key"]
    if fresh_database_url.startswith("sqlite"):
        raw = _raw_sqlite(fresh_database_url)
    else:
        raw = asyncio.run(_raw_postgres(fresh_database_url))
    # The names are stored (they are public); the test must see real data.
    assert a.name.encode() in raw
    secrets = (
        SECRET_CONTENT,
        SECRET_SUBJECT,
        SECRET_NOTE,
        SECRET_DESCRIPTION,
        SECRET_CORRELATION,
        SECRET_IDEMPOTENCY_KEY,
        a.api_key,
        b.api_key,
        rotated,
    )
    for secret in secrets:
        assert secret.encode() not in raw, f"{secret[:12]}... is stored in plaintext"
    assert f"'{code}'".encode() not in raw and code.encode() + b"'" not in raw
    send_body = {
        "to": b.name,
        "content": SECRET_CONTENT,
        "subject": SECRET_SUBJECT,
        "session_id": None,
        "correlation_id": SECRET_CORRELATION,
        "encrypted": False,
        "encryption": None,
    }
    for digest in _unsalted_hashes(code, send_body):
        assert digest not in raw, "an unsalted hash lets a guess be confirmed offline"


def test_sqlite_files_are_readable_by_the_owner_only(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    with ServerThread(server_settings(url)) as server:
        a, b = register(server.url), register(server.url)
        connect_agents(a, b)
        a.send(b, "written while the write-ahead log is open")
        files = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert {"mailbox.db", "mailbox.db-wal", "mailbox.db-shm"} <= files.keys()
    assert all(mode == 0o600 for mode in files.values()), files
