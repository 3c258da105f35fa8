"""Time in one place: aware UTC datetimes, also for what SQLite hands back naive."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    # SQLite stores DateTime(timezone=True) without the zone; everything we
    # write is UTC, so a naive value read back is UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
