"""Waiting in tests: until a condition holds, or while it must keep holding, within a deadline.

The one place where a test waits on time. A test never sleeps blind: it waits for a
condition (``wait_until``), or watches that something does not happen for a window
(``assert_stays``), and fails at once, saying what it waited for and what it saw last.
Where there is an event to wait on (a condition variable, a long poll, a socket read)
the test waits on that instead; these helpers are for the rest, the state of another
process or thread that offers no event: a port opening, a config watcher, a gateway's
history, the bridge's ``mailbox_status``.

Usage::

    pids = wait_until(lambda: bridge_pids(state), within=90, what="the first bridge")
    status = await wait_until_async(
        lambda: client.call_tool("mailbox_status", {}), lambda r: ..., within=10, what="..."
    )
    assert_stays(lambda: count(line) <= 1, for_seconds=QUIET, what="no duplicate of line")

Exceptions::

    NotInTime   (AssertionError and TimeoutError) the condition did not hold in time
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

import anyio

__all__ = [
    "NotInTime",
    "assert_stays",
    "assert_stays_async",
    "wait_until",
    "wait_until_async",
]

T = TypeVar("T")

# How often a condition is asked again: often enough that a wait ends soon after the
# condition holds, seldom enough not to load a machine of two cores.
EVERY = 0.05
# A value shown in a failure is cut to its start and end, this long each (a gateway's
# history can be long; its latest entries are at the end).
_SHOWN_CHARS = 1000


class NotInTime(AssertionError, TimeoutError):
    """The awaited condition did not hold within the deadline.

    An ``AssertionError`` (in a test it reads as a failed check) and a ``TimeoutError``
    (what harness code that retries or cleans up catches). ``last`` is the last value
    the check returned.
    """

    def __init__(self, message: str, last: object = None) -> None:
        super().__init__(message)
        self.last = last


def _shown(value: object) -> str:
    text = repr(value)
    if len(text) <= 2 * _SHOWN_CHARS:
        return text
    return f"{text[:_SHOWN_CHARS]} … {text[-_SHOWN_CHARS:]}"


def _late(what: str, within: float, last: object) -> NotInTime:
    return NotInTime(f"waited {within:g} s for {what}; last seen: {_shown(last)}", last)


def wait_until(
    check: Callable[[], T],
    done: Callable[[T], object] = bool,
    *,
    within: float,
    what: str,
    every: float = EVERY,
    backoff: float = 1.0,
) -> T:
    """Call ``check`` until ``done`` holds for its value (by default: the value is truthy);
    return that value. Raises ``NotInTime`` once ``within`` seconds passed without it.

    ``check`` is called at least once, and once more at the deadline; ``every`` is the
    pause between calls (0: ask again at once, for a check that blocks by itself), which
    grows by the factor ``backoff`` after each call (for a retry that must not press)."""
    deadline = time.monotonic() + within
    pause = every
    while True:
        value = check()
        if done(value):
            return value
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _late(what, within, value)
        # the one blind pause of the tests: the state asked about offers no event
        time.sleep(min(pause, remaining))
        pause *= backoff


@overload
async def wait_until_async(  # an awaitable check is awaited
    check: Callable[[], Awaitable[T]],
    done: Callable[[T], object] = ...,
    *,
    within: float,
    what: str,
    every: float = ...,
) -> T: ...


@overload
async def wait_until_async(
    check: Callable[[], T],
    done: Callable[[T], object] = ...,
    *,
    within: float,
    what: str,
    every: float = ...,
) -> T: ...


async def wait_until_async(
    check: Callable[[], Any],
    done: Callable[[Any], object] = bool,
    *,
    within: float,
    what: str,
    every: float = EVERY,
) -> Any:
    """``wait_until`` for async tests: the pauses let the event loop run. ``check`` may
    be a coroutine function (awaited each time) or a plain, quick function."""
    deadline = time.monotonic() + within
    while True:
        value = await _value_of(check)
        if done(value):
            return value
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _late(what, within, value)
        await anyio.sleep(min(every, remaining))  # as in wait_until: no event to wait on


def assert_stays(
    check: Callable[[], object], *, for_seconds: float, what: str, every: float = EVERY
) -> None:
    """Watch ``check`` for ``for_seconds``: fail (``AssertionError`` naming ``what``) as
    soon as it is false; return once it held for the whole window (checked at its end
    too). For "this does not happen" in a window a test relies on."""
    end = time.monotonic() + for_seconds
    while True:
        assert check(), f"{what}: broken within the {for_seconds:g} s watched"
        remaining = end - time.monotonic()
        if remaining <= 0:
            return
        time.sleep(min(every, remaining))  # as in wait_until: no event to wait on


async def assert_stays_async(
    check: Callable[[], object],
    *,
    for_seconds: float,
    what: str,
    every: float = EVERY,
) -> None:
    """``assert_stays`` for async tests: the pauses let the event loop run."""
    end = time.monotonic() + for_seconds
    while True:
        assert await _value_of(check), f"{what}: broken within the {for_seconds:g} s watched"
        remaining = end - time.monotonic()
        if remaining <= 0:
            return
        await anyio.sleep(min(every, remaining))  # as in wait_until: no event to wait on


async def _value_of(check: Callable[[], object]) -> object:
    value = check()
    if inspect.isawaitable(value):
        return await value
    return value
