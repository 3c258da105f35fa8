"""Verification codes removed from connection-request notes before they are stored.

The code is the owners' proof of consent: the requester's owner hands it to the
target's owner out of band. A requesting agent that wrote its own code into the
note could let the target's agent approve without any human, so anything in a
note that approve would take as a code — or that a model might retype as one —
becomes `[code removed]` before it is stored, pushed or listed.

Approve takes `code.strip().upper().replace(" ", "")` and then requires
`^[A-Z]{2}-[0-9]{3}$` (see `connections.normalise_code`). This matches a superset:
each character is folded (NFKC, then upper case, which also turns `ß`, `ſ` and
ligatures such as `ﬀ` into ASCII letters as approve's `upper()` does), dash
look-alikes count as `-`, any Unicode decimal digit as a digit, Cyrillic and
Greek letters that look Latin as letters, and any whitespace, control, format
(zero-width) or combining character between two characters is skipped.
"""

from __future__ import annotations

import functools
import re
import unicodedata

CODE_REMOVED = "[code removed]"

# Two letters, a dash, three digits, with anything skippable (folded to " ") between.
_CORE = re.compile(r"[A-Z] *[A-Z] *- *[0-9] *[0-9] *[0-9]")
_ALNUM = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")

# Dashes a model would retype as "-" that are not Unicode "Pd" (dash punctuation):
# minus signs, the hyphen bullet, the modifier letter minus.
_EXTRA_DASHES = frozenset("\u2212\u2043\u02d7\u2796\u207b\u208b")
_SKIPPED_CATEGORIES = frozenset({"Cc", "Cf", "Mn", "Me", "Zs", "Zl", "Zp"})

# Upper-case Cyrillic and Greek letters drawn like Latin ones (after upper()).
_LOOKALIKES = str.maketrans(
    "АВСЕНІЈКМОРЅТХУҮԚԜ" + "ΑΒΕΖΗΙΚΜΝΟΡΤΥΧ",
    "ABCEHIJKMOPSTXYYQW" + "ABEZHIKMNOPTYX",
)


@functools.lru_cache(maxsize=4096)
def _fold(char: str) -> str:
    """What one character may read as in a code: letters, digits, "-", " " (skipped)
    or anything else (which breaks a code). May be longer than one ("ß" -> "SS")."""
    folded = []
    for c in unicodedata.normalize("NFKC", char).upper().translate(_LOOKALIKES):
        if c in _ALNUM:
            folded.append(c)
        elif c in _EXTRA_DASHES or unicodedata.category(c) == "Pd":
            folded.append("-")
        elif c.isspace() or unicodedata.category(c) in _SKIPPED_CATEGORIES:
            folded.append(" ")
        elif (digit := unicodedata.decimal(c, None)) is not None:
            folded.append(str(digit))
        else:
            folded.append(c)
    return "".join(folded)


def scrub_codes(text: str) -> str:
    """`text` with every code-shaped run replaced by `[code removed]`; the rest as it was."""
    folded: list[str] = []
    origin: list[int] = []  # origin[i]: the index in `text` that folded[i] came from
    for index, char in enumerate(text):
        for c in _fold(char):
            folded.append(c)
            origin.append(index)
    view = "".join(folded)

    pieces = []
    copied = 0  # text[:copied] is already in `pieces`
    searched = 0  # where in `view` the next search starts
    while (match := _CORE.search(view, searched)) is not None:
        start, end = match.span()
        # A code inside a longer run of letters and digits ("ABC-1234", of which approve
        # would take "BC-123") goes as a whole: removing the run is the safe choice, and
        # leaving "A…4" around the marker would only keep a fragment of it.
        while start > searched and view[start - 1] in _ALNUM:
            start -= 1
        while end < len(view) and view[end] in _ALNUM:
            end += 1
        first, last = origin[start], origin[end - 1]
        pieces.append(text[copied:first])
        pieces.append(CODE_REMOVED)
        copied = last + 1
        searched = end
        # Do not start the next search inside a character the replacement already took.
        while searched < len(view) and origin[searched] < copied:
            searched += 1
    if not pieces:
        return text
    pieces.append(text[copied:])
    return "".join(pieces)
