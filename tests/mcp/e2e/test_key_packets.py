"""The bounded packet walk that runs before pgpy: real keys pass, each limit holds exactly."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbox_mcp.e2e.armor import unarmor
from mailbox_mcp.e2e.key_packets import (
    MAX_KEY_PACKETS,
    MAX_SUBKEYS,
    MAX_SUBPACKETS,
    MAX_USER_IDS,
    KeyShapeError,
    check_public_key,
)
from mailbox_mcp.e2e.openpgp import PrivateKey
from tests.abusive_keys import packet, split, subpacket_count, with_signature_subpackets


@pytest.fixture(scope="module")
def parts() -> list[tuple[int, bytes]]:
    """primary key, user id, self-signature, subkey, binding signature."""
    return split(PrivateKey.generate("alice").public_armored())


def _data(packets: list[tuple[int, bytes]]) -> bytes:
    return b"".join(packet(tag, body) for tag, body in packets)


def _legacy(tag: int, body: bytes) -> bytes:
    return bytes([0x80 | tag << 2 | 1]) + len(body).to_bytes(2, "big") + body


def test_our_own_keys_and_an_rsa_key_pass() -> None:
    for key in (PrivateKey.generate("alice"), PrivateKey.generate("bob", rsa_bits=2048)):
        check_public_key(unarmor(key.public_armored(), "PUBLIC KEY BLOCK"))


def test_a_key_in_the_legacy_packet_format_passes(parts: list[tuple[int, bytes]]) -> None:
    check_public_key(b"".join(_legacy(tag, body) for tag, body in parts))


def test_five_octet_lengths_and_a_trust_packet_pass(parts: list[tuple[int, bytes]]) -> None:
    primary, *rest = parts
    long_form = bytes([0xC0 | 6, 0xFF]) + len(primary[1]).to_bytes(4, "big") + primary[1]
    check_public_key(long_form + _data([*rest, (12, b"\x00\x00")]))


@pytest.mark.parametrize("tag", [13, 17], ids=["user-id", "user-attribute"])
def test_user_ids_pass_up_to_their_limit_and_not_one_more(
    parts: list[tuple[int, bytes]], tag: int
) -> None:
    primary, uid, signature, _, _ = parts
    extra = (tag, uid[1] if tag == 13 else b"\x01\x01")  # an attribute of one bare subpacket
    check_public_key(_data([primary, uid, signature, *[extra] * (MAX_USER_IDS - 1)]))
    with pytest.raises(KeyShapeError, match=f"more than {MAX_USER_IDS} user ids"):
        check_public_key(_data([primary, uid, signature, *[extra] * MAX_USER_IDS]))


def test_subkeys_pass_up_to_their_limit_and_not_one_more(
    parts: list[tuple[int, bytes]],
) -> None:
    primary, uid, signature, subkey, binding = parts
    check_public_key(_data([primary, uid, signature, *[subkey, binding] * MAX_SUBKEYS]))
    with pytest.raises(KeyShapeError, match=f"more than {MAX_SUBKEYS} subkeys"):
        check_public_key(_data([primary, uid, signature, *[subkey, binding] * (MAX_SUBKEYS + 1)]))


def test_packets_pass_up_to_the_limit_and_not_one_more(parts: list[tuple[int, bytes]]) -> None:
    primary, uid, signature, _, _ = parts
    check_public_key(_data([primary, uid, *[signature] * (MAX_KEY_PACKETS - 2)]))
    with pytest.raises(KeyShapeError, match=f"more than {MAX_KEY_PACKETS} packets"):
        check_public_key(_data([primary, uid, *[signature] * (MAX_KEY_PACKETS - 1)]))


def test_subpackets_of_both_areas_count_against_the_limit(
    parts: list[tuple[int, bytes]],
) -> None:
    primary, uid, signature, _, _ = parts
    present = subpacket_count(signature[1])
    full = (2, with_signature_subpackets(signature[1], MAX_SUBPACKETS - present))
    over = (2, with_signature_subpackets(signature[1], MAX_SUBPACKETS - present + 1))
    check_public_key(_data([primary, uid, full]))
    with pytest.raises(KeyShapeError, match=f"more than {MAX_SUBPACKETS} subpackets"):
        check_public_key(_data([primary, uid, over]))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "no packets"),
        (b"\x00\x01", "does not start a packet"),
        (packet(13, b"alice"), "does not start with a primary key"),
        (bytes([0xC0 | 6, 0xE1]) + b"\x00" * 2, "partial length"),
        (packet(6, b"\x04") + packet(8, b"\x00"), "type 8"),
        (packet(6, b"\x04") + packet(6, b"\x04"), "more than one key"),
        (packet(6, b"\x04") + bytes([0xC0 | 13, 50]) + b"short", "runs past the end"),
        (packet(6, b"\x04") + packet(2, b"\x04\x13\x16\x0a\x00\x05\x03"), "runs past"),
        (packet(6, b"\x04") + packet(17, b"\x00"), "user attribute subpacket"),
    ],
    ids=[
        "empty",
        "not-a-packet",
        "no-primary",
        "partial-length",
        "compressed-data",
        "two-primaries",
        "truncated",
        "signature-area-past-end",
        "empty-attribute-subpacket",
    ],
)
def test_what_is_not_shaped_like_a_key_says_why(data: bytes, reason: str) -> None:
    with pytest.raises(KeyShapeError, match=reason):
        check_public_key(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400) | st.lists(st.binary(max_size=40), max_size=20).map(b"".join))
def test_any_bytes_either_pass_or_raise_a_key_shape_error(data: bytes) -> None:
    try:
        check_public_key(data)
    except KeyShapeError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_a_real_key_with_any_byte_changed_passes_or_raises_a_key_shape_error(
    data: st.DataObject,
) -> None:
    key = _data(split(_ALICE))
    at = data.draw(st.integers(0, len(key) - 1))
    changed = key[:at] + bytes([data.draw(st.integers(0, 255))]) + key[at + 1 :]
    try:
        check_public_key(changed)
    except KeyShapeError:
        pass


_ALICE = PrivateKey.generate("alice").public_armored()
