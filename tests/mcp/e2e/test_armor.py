"""ASCII armor: our fast writer and reader agree with pgpy's own and with the RFC."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pgpy.types import Armorable

from mailbox_mcp.e2e.armor import ArmorError, armor, crc24, unarmor


@given(st.binary(min_size=1, max_size=3000))
def test_unarmor_returns_exactly_what_armor_wrapped(data: bytes) -> None:
    assert unarmor(armor(data)) == data


@given(st.binary(max_size=600))
def test_the_checksum_is_the_rfc_crc24_that_pgpy_computes(data: bytes) -> None:
    assert crc24(data) == Armorable.crc24(bytearray(data))


def test_armor_has_64_character_lines_a_checksum_and_matching_markers() -> None:
    text = armor(bytes(range(256)) * 3, "MESSAGE")
    lines = text.splitlines()
    assert lines[0] == "-----BEGIN PGP MESSAGE-----" and lines[1] == ""
    assert lines[-1] == "-----END PGP MESSAGE-----"
    assert lines[-2].startswith("=") and len(lines[-2]) == 5
    assert all(len(line) <= 64 for line in lines[2:-2])


def test_headers_crlf_and_a_missing_checksum_are_accepted() -> None:
    data = b"\x85\x01\x02hello"
    body = base64.b64encode(data).decode()
    text = f"junk\r\n-----BEGIN PGP MESSAGE-----\r\nVersion: X 1\r\nComment: c\r\n\r\n{body}\r\n"
    text += "-----END PGP MESSAGE-----\r\ntrailing"
    assert unarmor(text) == data


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello",
        "-----BEGIN PGP MESSAGE-----\n\n-----END PGP MESSAGE-----\n",
        "-----BEGIN PGP MESSAGE-----\n\n!!!not base64!!!\n-----END PGP MESSAGE-----\n",
        "-----BEGIN PGP MESSAGE-----\n\nAAAA\n-----END PGP SIGNATURE-----\n",
        armor(b"\x01\x02", "PUBLIC KEY BLOCK"),
    ],
    ids=["empty", "text", "no-body", "not-base64", "mismatched-end", "other-kind"],
)
def test_anything_but_an_armored_block_of_the_kind_asked_for_is_an_armor_error(text: str) -> None:
    with pytest.raises(ArmorError):
        unarmor(text, "MESSAGE")
