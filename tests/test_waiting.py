"""The waiting helpers fail when they should: a test that waits with them can fail."""

from __future__ import annotations

import itertools

import pytest

from tests.waiting import (
    NotInTime,
    assert_stays,
    assert_stays_async,
    wait_until,
    wait_until_async,
)


def test_wait_until_returns_the_first_value_that_is_done() -> None:
    counter = itertools.count()
    assert wait_until(lambda: next(counter), lambda n: n >= 3, within=5, what="3", every=0) == 3


def test_wait_until_names_what_it_awaited_and_what_it_saw_last() -> None:
    with pytest.raises(NotInTime, match=r"waited 0\.1 s for the answer; last seen: 41") as late:
        wait_until(lambda: 41, lambda n: n == 42, within=0.1, what="the answer")
    assert late.value.last == 41
    assert isinstance(late.value, AssertionError) and isinstance(late.value, TimeoutError)


def test_assert_stays_fails_as_soon_as_the_condition_breaks() -> None:
    counter = itertools.count()
    with pytest.raises(AssertionError, match="no second look"):
        assert_stays(lambda: next(counter) < 1, for_seconds=30, what="no second look", every=0)


def test_assert_stays_watches_the_whole_window() -> None:
    looks: list[float] = []

    def look() -> bool:
        looks.append(1)
        return True

    assert_stays(look, for_seconds=0.2, what="x", every=0.05)
    assert len(looks) >= 3


@pytest.mark.anyio
async def test_the_async_helpers_await_a_coroutine_check_and_fail_alike() -> None:
    async def answer() -> int:
        return 41

    assert await wait_until_async(answer, within=1, what="a truthy answer") == 41
    with pytest.raises(NotInTime, match="the answer"):
        await wait_until_async(answer, lambda n: n == 42, within=0.1, what="the answer")

    async def is_42() -> bool:
        return await answer() == 42

    with pytest.raises(AssertionError, match="stays 42"):
        await assert_stays_async(is_42, for_seconds=30, what="stays 42")
