"""Publishing an OpenPGP key: crafted keys are refused before pgpy, parsing never holds the loop.

pgpy's parser is worse than linear in user ids and signature subpackets: the
keys of `tests.abusive_keys` cost it seconds of CPU each, on the event loop
before the fix (issue 13).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from mailbox_mcp.e2e.armor import armor, unarmor
from mailbox_mcp.e2e.openpgp import PrivateKey
from server.services import directory
from server.services.openpgp_parse import KeyParser
from tests import abusive_keys
from tests.helpers import Agent, assert_error, register
from tests.server import parse_faults
from tests.server.fifos import HeldParse
from tests.servers import ServerThread


def _publish(agent: Agent, armored: str, key: PrivateKey) -> httpx.Response:
    return agent.post(
        "/directory/register",
        {
            "public_key": key.spki_pem(),
            "algorithm": key.algorithm,
            "key_version": 1,
            "openpgp_public_key": armored,
        },
    )


def _two_keys(armored: str) -> str:
    other = PrivateKey.generate("mallory").public_armored()
    both = unarmor(armored, "PUBLIC KEY BLOCK") + unarmor(other, "PUBLIC KEY BLOCK")
    return armor(both, "PUBLIC KEY BLOCK")


@pytest.mark.parametrize(
    ("craft", "reason"),
    [
        (abusive_keys.many_user_ids, "more than 8 user ids"),
        (abusive_keys.one_fat_signature, "more than 32 subpackets"),
        (_two_keys, "more than one key"),
        (lambda a: armor(unarmor(a, "PUBLIC KEY BLOCK")[:-7], "PUBLIC KEY BLOCK"), "runs past"),
        (lambda a: armor(b"\x00" * 4000, "PUBLIC KEY BLOCK"), "does not start a packet"),
    ],
    ids=["15000-user-ids", "10000-subpackets", "two-keys", "truncated", "not-packets"],
)
def test_a_key_shaped_to_cost_cpu_is_refused_with_422_saying_why(
    server: ServerThread, craft: Callable[[str], str], reason: str
) -> None:
    agent = register(server.url, "pgp")
    key = PrivateKey.generate(agent.name)
    crafted = craft(key.public_armored())
    assert len(crafted) <= abusive_keys.ARMORED_LIMIT  # within the field's own limit
    response = _publish(agent, crafted, key)
    assert_error(response, 422, "validation_error")
    assert reason in response.json()["message"]
    assert agent.http.get(f"/public/agents/{agent.name}").json()["openpgp_public_key"] is None


def test_a_private_key_is_refused_before_it_is_parsed(server: ServerThread) -> None:
    agent = register(server.url, "pgp")
    key = PrivateKey.generate(agent.name)
    response = _publish(agent, key.to_armored(None), key)
    assert_error(response, 422, "validation_error")
    assert "PRIVATE key" in response.json()["message"]


def test_the_heaviest_key_within_the_limits_is_published_with_its_fingerprint(
    server: ServerThread,
) -> None:
    agent = register(server.url, "pgp")
    key = PrivateKey.generate(agent.name)
    response = _publish(agent, abusive_keys.heaviest_allowed(key.public_armored()), key)
    assert response.status_code == 200, response.text
    assert response.json()["fingerprint"] == key.fingerprint


@pytest.mark.direct_only  # it replaces the parser inside the server's process
def test_health_answers_while_a_published_key_is_being_parsed(
    server: ServerThread, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The worker holds the parse until /health has answered: a parse on the event loop
    # would deadlock instead, which the timeouts below turn into a failure.
    held = HeldParse(tmp_path)
    parser = KeyParser(
        command=parse_faults.held(str(held.started), str(held.release)),
        parse_seconds=60,
        wait_seconds=60,
    )
    monkeypatch.setattr(directory, "parser", parser)
    agent = register(server.url, "pgp")
    key = PrivateKey.generate(agent.name)
    try:
        with ThreadPoolExecutor(1) as pool:
            published = pool.submit(_publish, agent, key.public_armored(), key)
            try:
                assert held.wait_started(30)
                health = httpx.get(f"{server.url}/health", timeout=5)
            finally:
                held.let_go()
            response = published.result(timeout=30)
    finally:
        parser.close()
        held.close()
    assert health.status_code == 200
    assert response.status_code == 200, response.text
    assert response.json()["fingerprint"] == key.fingerprint
