"""Limits on connection requests beyond the requester's outgoing ones (issue 13).

- A cool-down after a rejection: a requester whose request a target rejected
  may ask that target again only after MAILBOX_REREQUEST_COOLDOWN_SECONDS,
  doubled for every further rejection by that target within 30 days, at most
  MAILBOX_REREQUEST_COOLDOWN_MAX_SECONDS. Before, a rejected requester could ask
  again at once, without end.
- A cap on what waits for a target: at most MAILBOX_MAX_INCOMING_PENDING
  pending requests (from agents it has not blocked).

Both are read from `connection_requests` inside the request's transaction, with
the requester's and the target's rows locked, so they hold across concurrent
requests and across server processes alike.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..clock import as_utc
from ..errors import RateLimited
from ..models import connection_requests
from ..settings import Settings
from .blocks import blocked_by

# Rejections older than this are forgotten: the cool-down starts small again.
REJECTION_MEMORY = timedelta(days=30)


def cooldown_after(rejections: int, settings: Settings) -> timedelta:
    """How long a requester waits after its `rejections`-th recent rejection by a target."""
    if rejections <= 0 or settings.rerequest_cooldown_seconds == 0:
        return timedelta(0)
    # Doubling past ~40 steps only overflows; the maximum is reached long before.
    seconds = settings.rerequest_cooldown_seconds * 2 ** min(rejections - 1, 40)
    return timedelta(seconds=min(seconds, settings.rerequest_cooldown_max_seconds))


async def check_cooldown(
    conn: AsyncConnection, requester_id: str, target_id: str, now: datetime, settings: Settings
) -> None:
    """Refuse with 429 `rate_limited` while the requester cools down after a rejection."""
    count, last = (
        await conn.execute(
            select(func.count(), func.max(connection_requests.c.resolved_at)).where(
                connection_requests.c.requester_id == requester_id,
                connection_requests.c.target_id == target_id,
                connection_requests.c.status == "rejected",
                connection_requests.c.resolved_at > now - REJECTION_MEMORY,
            )
        )
    ).one()
    if not count:
        return
    free_at = as_utc(last) + cooldown_after(count, settings)
    if free_at > now:
        raise RateLimited(
            "that agent rejected your last request; you may ask again later "
            "(each further rejection doubles the wait)",
            retry_after=(free_at - now).total_seconds(),
        )


async def check_incoming_room(
    conn: AsyncConnection, target_id: str, now: datetime, settings: Settings
) -> None:
    """Refuse with 429 `pending_limit_reached` when the target has too many waiting."""
    waiting = (
        await conn.execute(
            select(func.count(), func.min(connection_requests.c.expires_at)).where(
                connection_requests.c.target_id == target_id,
                connection_requests.c.status == "pending",
                connection_requests.c.expires_at > now,
                ~blocked_by(target_id, connection_requests.c.requester_id),
            )
        )
    ).one()
    count, soonest = waiting
    if count >= settings.max_incoming_pending:
        raise RateLimited(
            "that agent has too many connection requests waiting; try again later",
            code="pending_limit_reached",
            retry_after=(as_utc(soonest) - now).total_seconds(),
        )
