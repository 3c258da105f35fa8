"""Migration 0003 on a database with data: nothing plain left, and everything still works.

A 0002 database is filled the way a 0002 server wrote it (plaintext correlation
ids, idempotency keys and descriptions; SHA-256 codes and bodies), upgraded,
then served by the real server: the old pending code approves, an idempotent
retry replays, and the plaintext and the unsalted digests are gone.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from cryptography.fernet import Fernet
from sqlalchemy.engine import Connection

import mailbox_wire as schemas
from server.cipher import Cipher
from server.clock import utcnow
from server.security import hash_api_key, new_api_key
from tests.helpers import Agent, assert_error
from tests.server.test_migrations import _empty_database, _migrate, _run
from tests.servers import ServerThread, server_settings

KEY = Fernet.generate_key().decode()
CIPHER = Cipher([KEY])
CODE = "XC-992"
DESCRIPTION = "OLD-PLAIN-DESCRIPTION-31"
CORRELATION = "OLD-PLAIN-CORRELATION-62"
IDEMPOTENCY_KEY = "OLD-PLAIN-IDEMPOTENCY-93"
API_KEYS = {name: new_api_key() for name in ("alice-old", "bob-old", "carol-old")}
SEND = {"to": "bob-old", "content": "first", "subject": "kept", "idempotency_key": IDEMPOTENCY_KEY}


def _old_body_hash(body: dict[str, Any]) -> str:
    """What a 0002 server stored for an idempotent send: the SHA-256 of its canonical JSON."""
    data = schemas.SendRequest.model_validate(body).model_dump(
        exclude={"idempotency_key"}, mode="json"
    )
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _seed_0002(connection: Connection) -> None:
    now = utcnow()

    def insert(table: str, **values: Any) -> None:
        names = ", ".join(values)
        connection.execute(
            sa.text(f"INSERT INTO {table} ({names}) VALUES ({', '.join(':' + n for n in values)})"),
            values,
        )

    for name, api_key in API_KEYS.items():
        insert(
            "agents",
            id=name,
            name=name,
            description=DESCRIPTION if name == "alice-old" else None,
            api_key_hash=hash_api_key(api_key),
            created_at=now,
            last_seq=1 if name == "bob-old" else 0,
        )
    insert(
        "connections", id="c1", agent_low_id="alice-old", agent_high_id="bob-old", created_at=now
    )
    insert(
        "sessions",
        id="s1",
        subject_encrypted=CIPHER.encrypt("kept"),
        agent_low_id="alice-old",
        agent_high_id="bob-old",
        created_at=now,
    )
    insert(
        "messages",
        id="m1",
        to_agent_id="bob-old",
        seq=1,
        from_agent_id="alice-old",
        session_id="s1",
        content_encrypted=CIPHER.encrypt("first"),
        correlation_id=CORRELATION,
        encrypted=False,
        created_at=now,
    )
    insert(
        "idempotency_keys",
        sender_id="alice-old",
        key=IDEMPOTENCY_KEY,
        body_hash=_old_body_hash(SEND),
        message_id="m1",
        created_at=now,
    )
    insert(
        "connection_requests",
        id="r1",
        requester_id="alice-old",
        target_id="carol-old",
        code_hash=hashlib.sha256(CODE.encode()).hexdigest(),
        code_encrypted=CIPHER.encrypt(CODE),
        status="pending",
        created_at=now,
        expires_at=now + timedelta(hours=1),
    )


def _dump(connection: Connection) -> str:
    tables = sa.inspect(connection).get_table_names()
    rows = [
        repr(tuple(row))
        for table in tables
        for row in connection.execute(sa.text(f'SELECT * FROM "{table}"')).all()
    ]
    return "\n".join(rows)


def _client(server: ServerThread, name: str) -> Agent:
    http = httpx.Client(base_url=server.url, timeout=10)
    return Agent(name=name, agent_id=name, api_key=API_KEYS[name], http=http)


def test_upgrading_a_0002_database_keys_the_hashes_and_encrypts_the_plain_fields(
    database_url: str, tmp_path: Path
) -> None:
    with _empty_database(database_url, tmp_path) as url:
        _run(url, _migrate("0002"))
        _run(url, _seed_0002)
        _run(url, _migrate("head", cipher=CIPHER))
        stored = _run(url, _dump)
        for plain in (DESCRIPTION, CORRELATION, IDEMPOTENCY_KEY):
            assert plain not in stored
        for digest in (_old_body_hash(SEND), hashlib.sha256(CODE.encode()).hexdigest()):
            assert digest not in stored, "an unsalted digest survived the migration"

        with ServerThread(server_settings(url, MAILBOX_ENCRYPTION_KEY=KEY)) as server:
            alice, bob, carol = (_client(server, n) for n in API_KEYS)
            try:
                assert alice.get("/agents/me").json()["description"] == DESCRIPTION
                message = bob.get("/messages/m1").json()
                assert (message["content"], message["correlation_id"]) == ("first", CORRELATION)
                # The retry within 24 hours still answers with the first send ...
                replay = alice.post("/messages/send", SEND)
                assert replay.status_code == 201, replay.text
                assert replay.json()["message_id"] == "m1"
                # ... and another body under the same key is still a conflict.
                other = alice.post("/messages/send", {**SEND, "content": "changed"})
                assert_error(other, 409, "idempotency_conflict")
                # The owners' code of the pending request still approves it.
                approved = carol.post("/connections/approve", {"verification_code": CODE})
                assert approved.status_code == 200, approved.text
                assert approved.json()["peer_agent_name"] == "alice-old"
            finally:
                for agent in (alice, bob, carol):
                    agent.http.close()


def test_downgrading_0003_gives_the_plain_fields_back(database_url: str, tmp_path: Path) -> None:
    with _empty_database(database_url, tmp_path) as url:
        _run(url, _migrate("0002"))
        _run(url, _seed_0002)
        _run(url, _migrate("head", cipher=CIPHER))
        _run(url, _migrate("0002", down=True, cipher=CIPHER))
        found = _run(
            url,
            lambda c: (
                c.execute(
                    sa.text("SELECT description FROM agents WHERE id = 'alice-old'")
                ).scalar(),
                c.execute(sa.text("SELECT correlation_id FROM messages")).scalar(),
                c.execute(sa.text("SELECT code_hash FROM connection_requests")).scalar(),
                c.execute(sa.text("SELECT count(*) FROM idempotency_keys")).scalar(),
            ),
        )
    assert found == (DESCRIPTION, CORRELATION, hashlib.sha256(CODE.encode()).hexdigest(), 0)
