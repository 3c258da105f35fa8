"""Pages of messages bounded by bytes as well as by count (MAILBOX_MAX_PAGE_BYTES).

`GET /inbox?limit=500` once answered 129 MB in one page, and a few such reads
at once starved every other request (issue 13). A page now ends at `limit`
messages or at the byte budget, whichever comes first, in two steps:

- before anything is read in full, the rows are chosen by their stored size
  (the encrypted content, larger than its plaintext), so the database sends and
  the server decrypts about one budget's worth, not `limit` messages;
- after decryption the page is cut again by each message's size as JSON, which
  escaping can make larger than the stored size.

A page always holds at least one message (one message is bounded by
MAILBOX_MAX_MESSAGE_BYTES), so paging always moves on. The client pages exactly
as before: a shorter page than `limit` does not mean the end; the end is an
empty page (`since=next_since` for the inbox, `before=<oldest id>` for history).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeVar

from sqlalchemy import func

import mailbox_wire as wire

from ..models import messages

T = TypeVar("T")

# What a message object adds to its content as JSON: the subject (at most 200
# characters), ids, names, times and keys. Over the real figure, to err on the safe side.
MESSAGE_OVERHEAD_BYTES = 1024


# A message's size as stored, for the first cut (the subject is counted in the overhead).
STORED_SIZE = (func.length(messages.c.content_encrypted) + MESSAGE_OVERHEAD_BYTES).label(
    "stored_size"
)


def fitting(items: Sequence[T], sizes: Iterable[int], budget: int) -> list[T]:
    """The leading items whose sizes add up to at most `budget` (at least the first)."""
    total = 0
    for count, size in enumerate(sizes):
        total += size
        if total > budget and count > 0:
            return list(items[:count])
    return list(items)


def json_size(message: wire.Message) -> int:
    return len(message.model_dump_json())


def trim_messages(messages: Sequence[wire.Message], budget: int) -> list[wire.Message]:
    """The leading messages that fit in `budget` bytes of JSON (at least the first)."""
    return fitting(messages, (json_size(m) for m in messages), budget)
