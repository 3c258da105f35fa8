"""OpenPGP public keys built to cost pgpy's parser as much CPU as 64 KiB allows.

Each starts from a real key (its primary key, user id, self-signature,
subkey and binding signature) and adds packets or subpackets that pgpy
parses worse than linearly (`mailbox_mcp/e2e/key_packets.py`). Used by the
tests and by `bench/openpgp_register.py`.
"""

from __future__ import annotations

from mailbox_mcp.e2e.armor import armor, unarmor
from mailbox_mcp.e2e.key_packets import MAX_KEY_PACKETS, MAX_SUBPACKETS, MAX_USER_IDS

# The directory's limit on `openpgp_public_key` (mailbox_wire/directory.py).
ARMORED_LIMIT = 64 * 1024


def packet(tag: int, body: bytes) -> bytes:
    """One packet in the OpenPGP format with a 1, 2 or 5 octet length."""
    n = len(body)
    if n < 192:
        length = bytes([n])
    elif n < 8384:
        length = bytes([((n - 192) >> 8) + 192, (n - 192) & 0xFF])
    else:
        length = b"\xff" + n.to_bytes(4, "big")
    return bytes([0xC0 | tag]) + length + body


def split(armored: str) -> list[tuple[int, bytes]]:
    """(tag, body) of each packet of an armored key that uses the OpenPGP format."""
    data, at, out = unarmor(armored, "PUBLIC KEY BLOCK"), 0, []
    while at < len(data):
        tag, first = data[at] & 0x3F, data[at + 1]
        if first < 192:
            length, at = first, at + 2
        elif first < 224:
            length, at = ((first - 192) << 8) + data[at + 2] + 192, at + 3
        else:
            length, at = int.from_bytes(data[at + 2 : at + 6], "big"), at + 6
        out.append((tag, data[at : at + length]))
        at += length
    return out


def join(packets: list[tuple[int, bytes]]) -> str:
    return armor(b"".join(packet(tag, body) for tag, body in packets), "PUBLIC KEY BLOCK")


def _largest(build: object, low: int, high: int) -> str:
    """build(n) for the largest n in [low, high] whose armor fits the directory's limit."""
    assert callable(build)
    while low < high:
        middle = (low + high + 1) // 2
        if len(build(middle)) <= ARMORED_LIMIT:
            low = middle
        else:
            high = middle - 1
    text = build(low)
    assert isinstance(text, str)
    return text


def with_signature_subpackets(signature: bytes, extra: int) -> bytes:
    """A v4 signature with `extra` more (2-octet, private type 100) unhashed subpackets."""
    hashed = int.from_bytes(signature[4:6], "big")
    at = 6 + hashed
    unhashed = int.from_bytes(signature[at : at + 2], "big")
    added = b"\x02\x64\x00" * extra
    return (
        signature[:at]
        + (unhashed + len(added)).to_bytes(2, "big")
        + signature[at + 2 : at + 2 + unhashed]
        + added
        + signature[at + 2 + unhashed :]
    )


def many_user_ids(armored: str) -> str:
    """The key plus as many empty user ids as fit: about 15,000."""
    parts = split(armored)
    return _largest(lambda n: join([*parts, *[(13, b"")] * n]), 0, 40_000)


def one_fat_signature(armored: str) -> str:
    """The key with its self-signature carrying as many subpackets as fit: about 10,000."""
    primary, uid, signature, *rest = split(armored)

    def build(n: int) -> str:
        return join([primary, uid, (2, with_signature_subpackets(signature[1], n)), *rest])

    return _largest(build, 0, 21_000)


def heaviest_allowed(armored: str) -> str:
    """What costs pgpy the most and still passes `check_public_key`: every user id
    allowed, each followed by its share of the signatures up to the packet limit,
    each signature with the most subpackets allowed (pgpy rescans subpackets and
    recomputes the key's fingerprint per signature, more so for more user ids)."""
    primary, uid, signature, subkey, binding = split(armored)
    present = subpacket_count(signature[1])
    fat = (2, with_signature_subpackets(signature[1], MAX_SUBPACKETS - present))
    signatures = MAX_KEY_PACKETS - 3 - MAX_USER_IDS
    middle = []
    for index in range(MAX_USER_IDS):
        share = signatures // MAX_USER_IDS + (index < signatures % MAX_USER_IDS)
        middle += [uid, *[fat] * share]
    return join([primary, *middle, subkey, binding])


def subpacket_count(signature: bytes) -> int:
    """How many subpackets a v4 signature has in its two areas."""
    hashed = int.from_bytes(signature[4:6], "big")
    unhashed = int.from_bytes(signature[6 + hashed : 8 + hashed], "big")
    areas = [signature[6 : 6 + hashed], signature[8 + hashed : 8 + hashed + unhashed]]
    found = []
    for area in areas:
        at = 0
        while at < len(area):
            first = area[at]
            if first < 192:
                length, at = first, at + 1
            elif first < 255:
                length, at = ((first - 192) << 8) + area[at + 1] + 192, at + 2
            else:
                length, at = int.from_bytes(area[at + 1 : at + 5], "big"), at + 5
            found.append(area[at])
            at += length
    return len(found)
