"""End-to-end encrypted messages on the server: accepted for a peer with a published key,
stored and returned exactly as the sender's ciphertext, and Fernet-encrypted at rest around it.
"""

from __future__ import annotations

import asyncio

from mailbox_mcp.e2e import openpgp
from mailbox_mcp.e2e.openpgp import PrivateKey
from tests.helpers import Agent, connect_agents, register
from tests.server.test_storage_at_rest import _raw_postgres, _raw_sqlite
from tests.servers import ServerThread, server_settings

OPENPGP = {"algorithm": "openpgp", "format": "armored"}


def _publish(agent: Agent) -> PrivateKey:
    key = PrivateKey.generate(agent.name)
    response = agent.post(
        "/directory/register",
        {
            "public_key": key.spki_pem(),
            "algorithm": key.algorithm,
            "key_version": 1,
            "openpgp_public_key": key.public_armored(),
        },
    )
    assert response.status_code == 200, response.text
    return key


def _sealed_pair(server: ServerThread) -> tuple[Agent, Agent, str]:
    a, b = register(server.url, "alice"), register(server.url, "bob")
    connect_agents(a, b)
    a_key, b_key = _publish(a), _publish(b)
    sealed = openpgp.encrypt_and_sign("SEALED-PLAINTEXT-9931", b_key.public_key(b.name), a_key)
    return a, b, sealed


def test_an_encrypted_send_to_a_peer_with_a_key_returns_the_ciphertext_unchanged(
    server: ServerThread,
) -> None:
    a, b, sealed = _sealed_pair(server)
    sent = a.send(b, sealed, subject="s", encrypted=True, encryption=OPENPGP)
    fetched = b.get(f"/messages/{sent['message_id']}").json()
    [from_inbox] = b.get("/inbox").json()["messages"]
    history = a.get(f"/sessions/{sent['session_id']}/history").json()["messages"]
    for message in (fetched, from_inbox, *history):
        assert message["content"] == sealed
        assert message["encrypted"] is True and message["encryption"] == OPENPGP


def test_the_directory_answers_the_published_key_and_its_fingerprint(server: ServerThread) -> None:
    a = register(server.url, "alice")
    key = _publish(a)
    entry = a.http.get(f"/public/agents/{a.name}").json()  # no credentials needed
    assert entry["fingerprint"] == key.fingerprint
    assert entry["openpgp_public_key"] == key.public_armored()
    assert entry["public_key"] == key.spki_pem() and entry["key_version"] == 1


def test_the_ciphertext_itself_is_fernet_encrypted_at_rest(fresh_database_url: str) -> None:
    with ServerThread(server_settings(fresh_database_url)) as server:
        a, b, sealed = _sealed_pair(server)
        a.send(b, sealed, subject="s", encrypted=True, encryption=OPENPGP)
    if fresh_database_url.startswith("sqlite"):
        raw = _raw_sqlite(fresh_database_url)
    else:
        raw = asyncio.run(_raw_postgres(fresh_database_url))
    assert a.name.encode() in raw  # the test sees real data
    body_line = sealed.splitlines()[2]  # a line of the ciphertext's base64
    assert body_line.encode() not in raw
    assert b"SEALED-PLAINTEXT-9931" not in raw
