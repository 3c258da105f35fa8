"""The hot statements' connection pool, against a real PostgreSQL."""

from __future__ import annotations

import asyncio

import anyio
import asyncpg
import pytest

from server.hot_pool import HotPool
from tests.servers import POSTGRES_ADMIN_URL

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("postgres_available")]


async def test_a_connection_goes_back_and_is_reused() -> None:
    pool = HotPool(POSTGRES_ADMIN_URL, 2)
    try:
        async with pool.connection() as first:
            assert await first.fetchval("SELECT 1") == 1
        async with pool.connection() as second:
            assert second is first
    finally:
        await pool.close()


async def test_a_postgres_error_keeps_the_connection_anything_else_closes_it() -> None:
    pool = HotPool(POSTGRES_ADMIN_URL, 1)
    try:
        with pytest.raises(asyncpg.PostgresError):
            async with pool.connection() as conn:
                await conn.execute("SELECT 1/0")
        async with pool.connection() as again:
            assert again is conn
        with pytest.raises(TimeoutError):
            async with pool.connection() as conn:
                with anyio.fail_after(0.05):
                    await conn.execute("SELECT pg_sleep(5)")
        assert conn.is_closed()
        async with pool.connection() as fresh:  # the slot is free again
            assert fresh is not conn and await fresh.fetchval("SELECT 2") == 2
    finally:
        await pool.close()


async def test_callers_beyond_the_size_wait_and_no_more_connections_open() -> None:
    pool = HotPool(POSTGRES_ADMIN_URL, 2)
    seen: set[int] = set()
    busy = 0
    most = 0

    async def use() -> None:
        nonlocal busy, most
        async with pool.connection() as conn:
            busy += 1
            most = max(most, busy)
            seen.add(id(conn))
            await conn.execute("SELECT pg_sleep(0.01)")
            busy -= 1

    try:
        with anyio.fail_after(10):
            await asyncio.gather(*(use() for _ in range(12)))
        assert most == 2 and len(seen) == 2
    finally:
        await pool.close()


async def test_a_cancelled_waiter_leaks_no_connection() -> None:
    pool = HotPool(POSTGRES_ADMIN_URL, 1)
    try:
        async with pool.connection() as held:
            waiter = asyncio.create_task(pool.acquire())
            await asyncio.sleep(0)  # queued behind `held`
            waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        with anyio.fail_after(5):
            async with pool.connection() as conn:
                assert conn is held
    finally:
        await pool.close()
