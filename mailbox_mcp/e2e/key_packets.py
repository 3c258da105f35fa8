"""A bounded look at a public key's packets before pgpy parses it (RFC 9580, sections 4.2, 5.2.3.7).

pgpy's parser is pure Python and worse than linear in places: each signature
subpacket is stored after a scan of the ones of its type before it, and each
signature on a user id recomputes the primary key's fingerprint. Within the
directory's 64 KiB limit a key of 15,000 empty user ids costs it 2-3 s of
CPU, one signature with 10,000 subpackets about 9 s. A real key has a handful
of packets (ours has 5), so this walk reads only the packet and subpacket
framing, in one pass that stops at the first thing over a limit, and says
what is wrong before pgpy sees the key. Within the limits pgpy's worst case
is about 20 ms (`bench/openpgp_register.py`).

Pure and dependency-free: the mailbox server checks published keys with it
too, so that both ends refuse the same keys.
"""

from __future__ import annotations

from collections.abc import Iterator

from mailbox_mcp.errors import BridgeError

__all__ = [
    "MAX_KEY_PACKETS",
    "MAX_SUBKEYS",
    "MAX_SUBPACKETS",
    "MAX_USER_IDS",
    "KeyShapeError",
    "check_public_key",
]

# Generous for a key a person or an agent really uses (ours has 5 packets, a self-signature
# about 10 subpackets), small enough that pgpy's worst case within them stays near 20 ms.
MAX_KEY_PACKETS = 32
MAX_USER_IDS = 8  # user ids and user attributes
MAX_SUBKEYS = 8
MAX_SUBPACKETS = 32  # in one signature (both areas) or one user attribute

_SIGNATURE, _SECRET_KEY, _PUBLIC_KEY, _TRUST, _USER_ID = 2, 5, 6, 12, 13
_PUBLIC_SUBKEY, _SECRET_SUBKEY, _USER_ATTRIBUTE = 14, 7, 17
_PRIMARY = frozenset({_PUBLIC_KEY, _SECRET_KEY})
_SUBKEYS = frozenset({_PUBLIC_SUBKEY, _SECRET_SUBKEY})
_USER_IDS = frozenset({_USER_ID, _USER_ATTRIBUTE})
# What a transferable key holds (section 10.1); 12 is GnuPG's trust packet.
_KEY_PACKETS = _PRIMARY | _SUBKEYS | _USER_IDS | {_SIGNATURE, _TRUST}


class KeyShapeError(BridgeError):
    """Not shaped like one OpenPGP key, or more packets than a key has; says which."""


def check_public_key(data: bytes) -> None:
    """Check the packet structure of one binary (unarmored) OpenPGP key.

    Raises KeyShapeError for framing that does not add up, a packet that does
    not belong in a key, a second primary key, or more packets, user ids,
    subkeys or subpackets than the limits above.
    """
    packets = user_ids = subkeys = 0
    for tag, body in _packets(data):
        packets += 1
        if packets > MAX_KEY_PACKETS:
            raise KeyShapeError(f"more than {MAX_KEY_PACKETS} packets: a key has a handful")
        if tag not in _KEY_PACKETS:
            raise KeyShapeError(f"a packet of type {tag}, which does not belong in a key")
        if (packets == 1) != (tag in _PRIMARY):
            raise KeyShapeError(
                "it does not start with a primary key"
                if packets == 1
                else "more than one key: publish exactly one"
            )
        if tag in _USER_IDS:
            user_ids += 1
            if user_ids > MAX_USER_IDS:
                raise KeyShapeError(f"more than {MAX_USER_IDS} user ids")
        elif tag in _SUBKEYS:
            subkeys += 1
            if subkeys > MAX_SUBKEYS:
                raise KeyShapeError(f"more than {MAX_SUBKEYS} subkeys")
        if tag == _SIGNATURE:
            _check_signature(body)
        elif tag == _USER_ATTRIBUTE:
            _count_subpackets(body, 0, len(body), 0, "user attribute")
    if packets == 0:
        raise KeyShapeError("no packets at all")


def _packets(data: bytes) -> Iterator[tuple[int, memoryview]]:
    """(tag, body) of each packet; KeyShapeError on framing that runs past the data."""
    view, at = memoryview(data), 0
    while at < len(view):
        first = view[at]
        if not first & 0x80:
            raise KeyShapeError(f"byte {at} does not start a packet")
        if first & 0x40:  # OpenPGP format
            tag = first & 0x3F
            length, at = _new_length(view, at + 1)
        else:  # legacy format
            tag = (first >> 2) & 0x0F
            length_type = first & 0x03
            if length_type == 3:  # indeterminate: the rest of the data
                length, at = len(view) - at - 1, at + 1
            else:
                size = 1 << length_type
                length, at = int.from_bytes(_take(view, at + 1, size)), at + 1 + size
        yield tag, _take(view, at, length)
        at += length


def _take(data: memoryview, at: int, size: int) -> memoryview:
    if at + size > len(data):
        raise KeyShapeError("a packet runs past the end of the data")
    return data[at : at + size]


def _new_length(data: memoryview, at: int) -> tuple[int, int]:
    """A packet's length and where its body starts (section 4.2.1)."""
    first = _take(data, at, 1)[0]
    if first < 192:
        return first, at + 1
    if first < 224:
        return ((first - 192) << 8) + _take(data, at + 1, 1)[0] + 192, at + 2
    if first == 255:
        return int.from_bytes(_take(data, at + 1, 4)), at + 5
    # Partial lengths are for streamed data (literal, compressed, encrypted), never keys.
    raise KeyShapeError("a packet with a partial length, which no key packet has")


def _check_signature(body: memoryview) -> None:
    # Only version 4 has subpackets that pgpy 0.6 parses: version, type, public-key
    # and hash algorithm, then the hashed and the unhashed area, 2-octet lengths.
    if len(body) < 1 or body[0] != 4:
        return
    hashed = int.from_bytes(_take(body, 4, 2))
    count = _count_subpackets(body, 6, hashed, 0, "signature")
    unhashed_at = 6 + hashed
    unhashed = int.from_bytes(_take(body, unhashed_at, 2))
    _count_subpackets(body, unhashed_at + 2, unhashed, count, "signature")


def _count_subpackets(body: memoryview, at: int, size: int, count: int, where: str) -> int:
    """`count` plus the subpackets in body[at:at + size] (section 5.2.3.7 framing)."""
    end = at + len(_take(body, at, size))
    while at < end:
        count += 1
        if count > MAX_SUBPACKETS:
            raise KeyShapeError(f"a {where} with more than {MAX_SUBPACKETS} subpackets")
        first = body[at]
        if first < 192:
            length, at = first, at + 1
        elif first < 255:
            length, at = ((first - 192) << 8) + _take(body, at + 1, 1)[0] + 192, at + 2
        else:
            length, at = int.from_bytes(_take(body, at + 1, 4)), at + 5
        if length == 0 or at + length > end:  # a subpacket holds at least its type
            raise KeyShapeError(f"a {where} subpacket runs past its area")
        at += length
    return count
