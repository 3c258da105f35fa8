"""End-to-end encryption through the real bridges, the real server and a fake OpenClaw gateway.

Keys are made with `mailbox_mcp.e2e.openpgp` and published through the real
directory endpoint. A peer's message is sealed either by its own bridge
(`mailbox_send(encrypt=true)`) or, to forge or misdirect one, right here and
posted with the peer's API key, as a thief of that key could.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mailbox_mcp.e2e import openpgp
from mailbox_mcp.e2e.openpgp import PrivateKey
from mailbox_mcp.inbound import envelope
from tests.fakes.openclaw_gateway import FakeGateway
from tests.helpers import Agent
from tests.mcp.conftest import bridge, bridge_env, reply_token, send
from tests.servers import ServerThread

pytestmark = pytest.mark.anyio

OPENPGP = {"algorithm": "openpgp", "format": "armored"}
NOTICE = "Encryption: end-to-end (OpenPGP)"
INVALID = "Signature  : INVALID — do not trust the claimed sender"
SECRET = "msg-secret: the launch code is 0000, tell no one\nsecond line ✓"


def _keys(agent: Agent, state_dir: Path, *, passphrase: str | None = None) -> PrivateKey:
    """A key for `agent` in the bridge's default place, published in the directory."""
    key = PrivateKey.generate(agent.name)
    key.write(state_dir / "openpgp-private-key.asc", passphrase)
    _publish(agent, key)
    return key


def _publish(agent: Agent, key: PrivateKey, version: int = 1) -> None:
    response = agent.post(
        "/directory/register",
        {
            "public_key": key.spki_pem(),
            "algorithm": key.algorithm,
            "key_version": version,
            "openpgp_public_key": key.public_armored(),
        },
    )
    assert response.status_code == 200, response.text


async def _post_sealed(sender: Agent, to: Agent, sealed: str) -> dict[str, Any]:
    return await send(sender, to, sealed, encrypted=True, encryption=OPENPGP)


def _lines(text: str) -> list[str]:
    return text.splitlines()


async def test_an_encrypted_send_is_ciphertext_on_the_server_and_verified_plaintext_when_injected(
    mailbox: ServerThread, gateway: FakeGateway, peers: tuple[Agent, Agent], tmp_path: Path
) -> None:
    me, peer = peers
    _keys(me, tmp_path / "me")
    peer_key = _keys(peer, tmp_path / "peer", passphrase="s3cret")
    sender_env = bridge_env(mailbox, peer, tmp_path / "peer", MAILBOX_PGP_PASSPHRASE="s3cret")
    async with (
        bridge(sender_env) as sender,
        bridge(bridge_env(mailbox, me, tmp_path / "me", gateway)),
    ):
        result = await sender.call_tool(
            "mailbox_send",
            {"to": me.name, "content": SECRET, "subject": "Plans", "encrypt": True},
        )
        assert not result.is_error, result.content
        [injection] = await gateway.await_injections(1, timeout=15)
    sent = result.structured_content
    assert sent is not None and sent["encrypted"] is True
    stored = me.get(f"/messages/{sent['message_id']}").json()
    assert stored["encrypted"] is True and stored["encryption"] == OPENPGP
    assert stored["content"].startswith("-----BEGIN PGP MESSAGE-----\n")
    assert "launch code" not in stored["content"]
    nonce = _lines(injection.message)[8].removeprefix("[BEGIN AGENT_MSG_").removesuffix("]")
    assert injection.message == envelope.wrap_incoming_message(
        from_agent=peer.name,
        subject="Plans",
        content=SECRET,
        session_id=sent["session_id"],
        notice=NOTICE,
        signature=f"valid, fingerprint {peer_key.fingerprint}",
        reply_token=reply_token(injection.message),
        nonce=nonce,
    )


async def test_a_message_encrypted_to_someone_else_is_injected_with_a_decrypt_error_notice(
    mailbox: ServerThread, gateway: FakeGateway, peers: tuple[Agent, Agent], tmp_path: Path
) -> None:
    me, peer = peers
    _keys(me, tmp_path)
    peer_key = _keys(peer, tmp_path / "peer")
    other = PrivateKey.generate("someone-else")
    sealed = openpgp.encrypt_and_sign("msg-not-for-me", other.public_key("someone-else"), peer_key)
    async with bridge(bridge_env(mailbox, me, tmp_path, gateway)):
        await _post_sealed(peer, me, sealed)
        [injection] = await gateway.await_injections(1, timeout=15)
    lines = _lines(injection.message)
    assert "msg-not-for-me" not in injection.message
    [notice] = [line for line in lines if line.startswith(NOTICE)]
    assert "COULD NOT DECRYPT" in notice and "another key" in notice
    assert "Signature  : unknown (the message could not be decrypted)" in lines
    assert sealed.strip() in injection.message  # the armored text, inside the block


async def test_a_bridge_without_a_private_key_still_injects_and_says_how_to_set_one_up(
    mailbox: ServerThread, gateway: FakeGateway, peers: tuple[Agent, Agent], tmp_path: Path
) -> None:
    me, peer = peers
    me_key = PrivateKey.generate(me.name)
    _publish(me, me_key)  # published, but the file is not where the bridge looks
    peer_key = _keys(peer, tmp_path / "peer")
    sealed = openpgp.encrypt_and_sign("msg-locked", me_key.public_key(me.name), peer_key)
    async with bridge(bridge_env(mailbox, me, tmp_path, gateway)):
        await _post_sealed(peer, me, sealed)
        [injection] = await gateway.await_injections(1, timeout=15)
    [notice] = [line for line in _lines(injection.message) if line.startswith(NOTICE)]
    assert "COULD NOT DECRYPT" in notice and "keys generate" in notice


async def test_a_signature_by_a_key_not_published_for_the_sender_is_shown_invalid_and_untrusted(
    mailbox: ServerThread, gateway: FakeGateway, peers: tuple[Agent, Agent], tmp_path: Path
) -> None:
    me, peer = peers
    me_key = _keys(me, tmp_path)
    peer_key = _keys(peer, tmp_path / "peer")
    forger = PrivateKey.generate(peer.name)  # the right name, but not the published key
    honest = openpgp.encrypt_and_sign("msg-honest", me_key.public_key(me.name), peer_key)
    forged = openpgp.encrypt_and_sign("msg-forged", me_key.public_key(me.name), forger)
    env = bridge_env(mailbox, me, tmp_path, gateway, MAILBOX_TRUSTED_PEERS=peer.name)
    async with bridge(env):
        await _post_sealed(peer, me, honest)
        await _post_sealed(peer, me, forged)
        first, second = await gateway.await_injections(2, timeout=15)
    assert "msg-honest" in first.message and "Trust level: TRUSTED" in _lines(first.message)
    assert f"Signature  : valid, fingerprint {peer_key.fingerprint}" in _lines(first.message)
    assert "msg-forged" in second.message
    assert INVALID in _lines(second.message)
    assert "Trust level: UNKNOWN" in _lines(second.message)


async def test_a_rotated_sender_key_is_fetched_again_and_verifies(
    mailbox: ServerThread, gateway: FakeGateway, peers: tuple[Agent, Agent], tmp_path: Path
) -> None:
    me, peer = peers
    me_key = _keys(me, tmp_path)
    old = _keys(peer, tmp_path / "peer")
    async with bridge(bridge_env(mailbox, me, tmp_path, gateway)):
        await _post_sealed(
            peer, me, openpgp.encrypt_and_sign("msg-1", me_key.public_key(me.name), old)
        )
        await gateway.await_injections(1, timeout=15)  # the old key is cached now
        new = PrivateKey.generate(peer.name)
        _publish(peer, new, version=2)
        await _post_sealed(
            peer, me, openpgp.encrypt_and_sign("msg-2", me_key.public_key(me.name), new)
        )
        _, second = await gateway.await_injections(2, timeout=15)
    assert "msg-2" in second.message
    assert f"Signature  : valid, fingerprint {new.fingerprint}" in _lines(second.message)


async def test_an_unsigned_encrypted_message_says_it_is_not_signed(
    mailbox: ServerThread, gateway: FakeGateway, peers: tuple[Agent, Agent], tmp_path: Path
) -> None:
    import pgpy
    from pgpy.constants import CompressionAlgorithm

    from mailbox_mcp.e2e.armor import armor

    me, peer = peers
    me_key = _keys(me, tmp_path)
    plain = pgpy.PGPMessage.new("msg-unsigned", compression=CompressionAlgorithm.Uncompressed)
    sealed = armor(bytes(me_key.public_key(me.name).key.encrypt(plain)))
    async with bridge(bridge_env(mailbox, me, tmp_path, gateway)):
        await _post_sealed(peer, me, sealed)
        [injection] = await gateway.await_injections(1, timeout=15)
    assert "msg-unsigned" in injection.message
    assert "Signature  : none (not signed)" in _lines(injection.message)
    assert NOTICE in _lines(injection.message)


async def test_in_pull_mode_inbox_and_history_decrypt_and_our_own_sent_mail_says_why_not(
    mailbox: ServerThread, peers: tuple[Agent, Agent], tmp_path: Path
) -> None:
    me, peer = peers
    _keys(me, tmp_path / "me")
    peer_key = _keys(peer, tmp_path / "peer")
    async with bridge(bridge_env(mailbox, peer, tmp_path / "peer")) as sender:
        sent = await sender.call_tool(
            "mailbox_send", {"to": me.name, "content": SECRET, "subject": "s", "encrypt": True}
        )
        assert sent.structured_content is not None
        session_id = sent.structured_content["session_id"]
        history = await sender.call_tool("mailbox_history", {"session_id": session_id})
    async with bridge(bridge_env(mailbox, me, tmp_path / "me")) as reader:
        inbox = await reader.call_tool("mailbox_inbox", {})
    assert inbox.structured_content is not None
    [message] = inbox.structured_content["messages"]
    assert SECRET.splitlines()[0] in message["text"]
    assert f"Signature  : valid, fingerprint {peer_key.fingerprint}" in _lines(message["text"])
    assert history.structured_content is not None
    [own] = history.structured_content["messages"]
    assert "launch code" not in own["text"]
    assert "sent by this agent, encrypted for the recipient only" in own["text"]


async def test_sending_encrypted_to_a_peer_without_a_key_names_the_error(
    mailbox: ServerThread, peers: tuple[Agent, Agent], tmp_path: Path
) -> None:
    me, peer = peers
    _keys(me, tmp_path)
    async with bridge(bridge_env(mailbox, me, tmp_path)) as client:
        result = await client.call_tool(
            "mailbox_send", {"to": peer.name, "content": "x", "subject": "s", "encrypt": True}
        )
    assert result.is_error and "peer_missing_openpgp_public_key" in result.content[0].text
    assert peer.get("/inbox").json()["messages"] == []


async def test_sending_encrypted_without_a_private_key_says_to_generate_and_publish_one(
    mailbox: ServerThread, peers: tuple[Agent, Agent], tmp_path: Path
) -> None:
    me, peer = peers
    _keys(peer, tmp_path / "peer")
    env = bridge_env(mailbox, me, tmp_path, MAILBOX_REQUIRE_ENCRYPTION="1")
    async with bridge(env) as client:
        result = await client.call_tool(
            "mailbox_send", {"to": peer.name, "content": "x", "subject": "s", "encrypt": True}
        )
    assert result.is_error
    assert "mailbox-mcp keys generate" in result.content[0].text
    assert "mailbox-mcp keys publish" in result.content[0].text
    assert peer.get("/inbox").json()["messages"] == []


async def test_a_directory_key_made_out_to_another_agent_is_refused_for_sending(
    mailbox: ServerThread, peers: tuple[Agent, Agent], tmp_path: Path
) -> None:
    me, peer = peers
    _keys(me, tmp_path)
    _publish(peer, PrivateKey.generate("mallory"))
    async with bridge(bridge_env(mailbox, me, tmp_path)) as client:
        result = await client.call_tool(
            "mailbox_send", {"to": peer.name, "content": "x", "subject": "s", "encrypt": True}
        )
    assert result.is_error and "mallory" in result.content[0].text
    assert peer.get("/inbox").json()["messages"] == []
