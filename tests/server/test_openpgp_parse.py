"""pgpy for published keys runs in a worker process, with bounds on waiting and on time."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

from mailbox_mcp.e2e.armor import unarmor
from mailbox_mcp.e2e.openpgp import PrivateKey
from server.errors import InvalidInput, RateLimited
from server.services.openpgp_parse import WORKER, KeyParser
from tests.abusive_keys import packet
from tests.server import parse_faults
from tests.server.fifos import HeldParse

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def alice() -> tuple[bytes, str]:
    key = PrivateKey.generate("alice")
    return unarmor(key.public_armored(), "PUBLIC KEY BLOCK"), key.fingerprint


@pytest.fixture
def held(tmp_path: Path) -> Iterator[HeldParse]:
    fifos = HeldParse(tmp_path)
    yield fifos
    fifos.close()


async def test_a_key_is_parsed_in_another_process() -> None:
    parser = KeyParser(command=parse_faults.PID)
    try:
        assert await parser.fingerprint(b"any") != str(os.getpid())
    finally:
        parser.close()


async def test_the_fingerprint_comes_back_and_what_pgpy_cannot_read_or_a_private_key_is_422(
    alice: tuple[bytes, str],
) -> None:
    parser = KeyParser()
    try:
        data, fingerprint = alice
        assert await parser.fingerprint(data) == fingerprint
        with pytest.raises(InvalidInput, match="not an OpenPGP key"):
            await parser.fingerprint(packet(6, b"\x04"))  # a version and nothing else
        secret = unarmor(str(PrivateKey.generate("alice").key), "PRIVATE KEY BLOCK")
        with pytest.raises(InvalidInput, match="PRIVATE key"):
            await parser.fingerprint(secret)
        assert await parser.fingerprint(data) == fingerprint  # the same worker goes on
    finally:
        parser.close()


async def test_past_the_waiting_limit_a_parse_is_refused_503_at_once(
    alice: tuple[bytes, str], held: HeldParse
) -> None:
    # The parse deadline runs from the moment the key is written, through the held
    # worker's start-up and its wait: generous, so only the waiting limit can refuse.
    parser = KeyParser(
        command=parse_faults.held(str(held.started), str(held.release)),
        max_waiting=1,
        parse_seconds=60,
        wait_seconds=60,
    )
    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(parser.fingerprint, alice[0])
            assert await anyio.to_thread.run_sync(held.wait_started, 30)
            with pytest.raises(RateLimited) as refused:
                await parser.fingerprint(alice[0])
            held.let_go()
    finally:
        parser.close()
    assert (refused.value.status_code, refused.value.code) == (503, "overloaded")


@pytest.mark.parametrize("fault", [parse_faults.HANG, parse_faults.CRASH], ids=["hangs", "dies"])
async def test_a_worker_that_hangs_or_dies_is_503_and_the_next_key_gets_a_new_one(
    alice: tuple[bytes, str], fault: tuple[str, ...]
) -> None:
    parser = KeyParser(command=fault, parse_seconds=0.5)
    try:
        with pytest.raises(RateLimited, match="retry shortly"):
            await parser.fingerprint(alice[0])
        parser._command = WORKER  # the fault is gone: the next worker is a healthy one
        assert await parser.fingerprint(alice[0]) == alice[1]
    finally:
        parser.close()
