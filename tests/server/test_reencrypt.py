"""Retiring an encryption key: the refusal that names the fix, `reencrypt`, and no 500.

Before issue 13 an old key could never be removed: without it every read
answered 500. Now a server that holds data under a key it lacks refuses to
start and names `mailbox-server reencrypt`; after reencrypt the old key goes.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import pytest
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import LargeBinary, select, update

from server.cipher import Cipher
from server.db import Database
from server.models import messages, metadata
from server.reencrypt import ENCRYPTED, Progress, reencrypt
from server.settings import Settings
from tests.helpers import Agent, assert_error, connect_agents, register
from tests.servers import ServerThread, server_env, server_settings

OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()
MESSAGES = 7


def _settings(url: str, keys: str) -> Settings:
    return server_settings(url, MAILBOX_ENCRYPTION_KEY=keys)


def _mailbox_server(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        env=server_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _fill_under_old_key(url: str) -> tuple[Agent, Agent, str]:
    """Two agents, messages with correlation ids, an idempotent send; all under OLD."""
    with ServerThread(_settings(url, OLD)) as server:
        a, b = register(server.url), register(server.url)
        connect_agents(a, b)
        for n in range(MESSAGES - 1):
            a.send(b, f"message {n}", correlation_id=f"corr-{n}")
        first = a.send(b, "idempotent", idempotency_key="retry-me")
    return a, b, first["message_id"]


def _contents_under(url: str, key: str) -> int:
    """How many stored message contents `key` decrypts."""

    async def count() -> int:
        database = Database(_settings(url, key))
        try:
            async with database.read() as conn:
                tokens = (await conn.execute(select(messages.c.content_encrypted))).scalars()
                fernet, found = Fernet(key.encode()), 0
                for token in tokens:
                    try:
                        fernet.decrypt(token)
                        found += 1
                    except InvalidToken:
                        pass
                return found
        finally:
            await database.dispose()

    return asyncio.run(count())


def test_every_encrypted_column_is_reencrypted() -> None:
    stored = {
        (table.name, column.name)
        for table in metadata.tables.values()
        for column in table.columns
        if isinstance(column.type, LargeBinary)
    }
    covered = {(spec.name, column.name) for spec in ENCRYPTED for column in spec.columns}
    assert covered == stored


def test_removing_a_key_without_reencrypt_refuses_to_start_and_names_the_fix(
    fresh_database_url: str,
) -> None:
    _fill_under_old_key(fresh_database_url)
    refused = _mailbox_server(_settings(fresh_database_url, NEW))
    assert refused.returncode == 2, refused.stderr
    assert "mailbox-server reencrypt" in refused.stderr
    assert Cipher([OLD]).primary_fingerprint[:12] in refused.stderr


def test_after_reencrypt_the_old_key_can_be_removed(fresh_database_url: str) -> None:
    a, b, idempotent_id = _fill_under_old_key(fresh_database_url)
    done = _mailbox_server(_settings(fresh_database_url, f"{NEW},{OLD}"), "reencrypt")
    assert done.returncode == 0, done.stderr
    assert "reencrypt: messages: 7 of 7 rows, 13 values rewritten" in done.stderr
    assert _contents_under(fresh_database_url, OLD) == 0

    with ServerThread(_settings(fresh_database_url, NEW)) as server:
        a.http.base_url = b.http.base_url = server.url
        inbox = b.get("/inbox").json()["messages"]
        assert [m["content"] for m in inbox[:2]] == ["message 0", "message 1"]
        assert inbox[0]["correlation_id"] == "corr-0"
        # The keyed hashes survive: the server secret was re-encrypted, not replaced.
        replay = a.post(
            "/messages/send",
            {
                "to": b.name,
                "content": "idempotent",
                "subject": "test",
                "idempotency_key": "retry-me",
            },
        )
        assert replay.json()["message_id"] == idempotent_id


class Interrupted(Exception):
    pass


def _stop_after_first_batch(_state: Progress) -> None:
    raise Interrupted


def test_an_interrupted_reencrypt_keeps_its_batches_and_a_rerun_finishes(
    fresh_database_url: str,
) -> None:
    _fill_under_old_key(fresh_database_url)
    settings = _settings(fresh_database_url, f"{NEW},{OLD}")

    async def interrupted_run() -> None:
        database = Database(settings)
        try:
            with pytest.raises(Interrupted):
                await reencrypt(
                    database,
                    Cipher([NEW, OLD]),
                    batch_size=3,
                    progress=_stop_after_first_batch,
                )
        finally:
            await database.dispose()

    # Interrupted after the first batch of the first tables; messages untouched then.
    asyncio.run(interrupted_run())
    assert _contents_under(fresh_database_url, OLD) == MESSAGES
    # Still refused without OLD: an unfinished run narrows nothing.
    assert _mailbox_server(_settings(fresh_database_url, NEW)).returncode == 2

    rerun = _mailbox_server(settings, "reencrypt", "--batch-size", "3")
    assert rerun.returncode == 0, rerun.stderr
    # The server secret's first batch was done: the rerun found it under NEW.
    assert "reencrypt: server_secrets: 1 of 1 rows, 0 values rewritten, 1 already" in rerun.stderr
    assert _contents_under(fresh_database_url, NEW) == MESSAGES
    with ServerThread(_settings(fresh_database_url, NEW)):
        pass


def test_an_undecryptable_row_answers_json_not_500(fresh_database_url: str) -> None:
    settings = _settings(fresh_database_url, OLD)
    with ServerThread(settings) as server:
        a, b = register(server.url), register(server.url)
        connect_agents(a, b)
        sent = a.send(b, "will be unreadable")
        foreign = Fernet(Fernet.generate_key()).encrypt(b"written behind the server's back")

        async def damage() -> Any:
            database = Database(settings)
            try:
                async with database.write() as conn:
                    await conn.execute(
                        update(messages)
                        .where(messages.c.id == sent["message_id"])
                        .values(content_encrypted=foreign)
                    )
            finally:
                await database.dispose()

        asyncio.run(damage())
        assert_error(b.get("/inbox"), 503, "stored_data_unreadable")
        response = b.get(f"/messages/{sent['message_id']}")
        assert_error(response, 503, "stored_data_unreadable")
        assert "MAILBOX_ENCRYPTION_KEY" in response.json()["message"]
        # The rest of the server is unaffected.
        assert a.get("/agents/me").status_code == 200


def test_the_server_writes_rows_already_reencrypted_while_the_run_goes_on(
    fresh_database_url: str,
) -> None:
    """Each batch commits on its own: an ack by id of a message rewritten in the first
    batch goes through between batches (a run in one transaction would hold it)."""
    _, b, _ = _fill_under_old_key(fresh_database_url)
    settings = _settings(fresh_database_url, f"{NEW},{OLD}")
    answers: list[int] = []
    with ServerThread(settings) as server:
        b.http.base_url = server.url
        first_rewritten = min(m["message_id"] for m in b.get("/inbox").json()["messages"])

        def ack_during_the_run(state: Progress) -> None:
            if state.table == "messages" and not answers:
                ack = b.post("/inbox/ack", {"message_ids": [first_rewritten]}, timeout=5)
                answers.append(ack.status_code)

        async def run() -> Progress:
            database = Database(settings)
            try:
                return await reencrypt(
                    database, Cipher([NEW, OLD]), batch_size=3, progress=ack_during_the_run
                )
            finally:
                await database.dispose()

        totals = asyncio.run(run())
        delivered = b.get(f"/messages/{first_rewritten}").json()["delivered_at"]
    assert answers == [200]
    assert totals.rows_done > 3 and not totals.unreadable
    assert delivered is not None
