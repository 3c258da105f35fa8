"""OpenPGP ASCII armor (RFC 9580, section 6), done here because pgpy's is the slow part.

pgpy 0.6 computes the armor checksum bit by bit in Python (about 1.5 ms for a
2 KiB message) and serialises the packets twice to armor them once; that was
half of the encrypt-and-sign budget. This table-driven version costs a fifth
of that, and reading skips the checksum altogether, as RFC 9580 asks of
receivers: integrity comes from the encryption's MDC and the signature, never
from a CRC.
"""

from __future__ import annotations

import base64
import binascii
import re

from mailbox_mcp.errors import BridgeError

__all__ = ["ArmorError", "armor", "crc24", "unarmor"]

_CRC24_INIT = 0xB704CE
_CRC24_POLY = 0x1864CFB
_LINE = 64


class ArmorError(BridgeError):
    """Not an ASCII-armored OpenPGP block of the expected kind."""


def _crc24_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= _CRC24_POLY
        table.append(crc & 0xFFFFFF)
    return tuple(table)


_TABLE = _crc24_table()


def crc24(data: bytes) -> int:
    crc = _CRC24_INIT
    table = _TABLE
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFF) ^ table[(crc >> 16) ^ byte]
    return crc


def armor(data: bytes, kind: str = "MESSAGE") -> str:
    """`data` as an armored block (`-----BEGIN PGP {kind}-----`), checksum included.

    RFC 9580 lets a writer drop the checksum, but GnuPG 2.2 and pgpy itself
    still expect it, so it stays.
    """
    body = base64.b64encode(data).decode("ascii")
    lines = [body[i : i + _LINE] for i in range(0, len(body), _LINE)]
    checksum = base64.b64encode(crc24(data).to_bytes(3, "big")).decode("ascii")
    return "\n".join(
        [f"-----BEGIN PGP {kind}-----", "", *lines, f"={checksum}", f"-----END PGP {kind}-----", ""]
    )


_HEADER = re.compile(r"^[^:\s]+: ")
_CHECKSUM = re.compile(r"^=[A-Za-z0-9+/]{4}$")


def unarmor(text: str, kind: str = "MESSAGE") -> bytes:
    """The bytes inside the first armored block of `kind` in `text`; ArmorError if none.

    Linear in the text: a directory key is up to 64 KiB of it, read on the server's
    event loop, so no backtracking regex over the body and no `pop(0)` per header.
    """
    lines = _inner(text, kind).splitlines()
    first = 0
    while first < len(lines) and _HEADER.match(lines[first]):  # Version:, Comment:, ...
        first += 1
    lines = [line.strip() for line in lines[first:] if line.strip()]
    if lines and _CHECKSUM.match(lines[-1]):
        lines.pop()  # not checked: see the module docstring
    body = "".join(lines)
    try:
        data = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise ArmorError("the armored block is not valid base64") from None
    if not data:
        raise ArmorError("the armored block is empty")
    return data


def _inner(text: str, kind: str) -> str:
    """What lies between the first BEGIN line of `kind` and the END line after it."""
    begin, end = f"-----BEGIN PGP {kind}-----", f"-----END PGP {kind}-----"
    at = text.find(begin)
    while at >= 0:
        start = at + len(begin)
        newline = 2 if text.startswith("\r\n", start) else 1 if text.startswith("\n", start) else 0
        if newline:
            stop = text.find(end, start + newline)
            if stop >= 0:
                return text[start + newline : stop]
            break  # no END after this BEGIN: none after a later one either
        at = text.find(begin, start)
    raise ArmorError(f"no '-----BEGIN PGP {kind}-----' block")
