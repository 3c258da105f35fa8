"""One error root for the bridge, and the retry decision each error carries."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

import mailbox_mcp
from mailbox_mcp.errors import BridgeError, MailboxAPIError, ServerUnreachable
from mailbox_mcp.openclaw.gateway_errors import (
    GatewayAuthError,
    GatewayRejected,
    GatewayToolNotAllowed,
    GatewayUnreachable,
)
from mailbox_mcp.server_link.retry import RETRY_AFTER_CAP, Backoff


def public_exceptions(package: ModuleType) -> list[type[BaseException]]:
    """Every exception class a module of `package` defines under a public name."""
    found = []
    for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
        if ".migrations" in info.name or info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == module.__name__
                and not name.startswith("_")
            ):
                found.append(value)
    return found


def test_every_bridge_error_descends_from_bridge_error() -> None:
    errors = public_exceptions(mailbox_mcp)
    assert GatewayRejected in errors and len(errors) > 10
    assert [e.__name__ for e in errors if not issubclass(e, BridgeError)] == []


def test_every_bridge_error_is_drawn_in_the_tree() -> None:
    tree = mailbox_mcp.errors.__doc__ or ""
    names = {e.__name__ for e in public_exceptions(mailbox_mcp)}
    assert [name for name in sorted(names) if name not in tree] == []


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (GatewayUnreachable("down"), True),
        (GatewayRejected("queue is full", status="error"), True),
        (GatewayAuthError("refused"), False),
        (GatewayToolNotAllowed("not allowed"), False),
        (GatewayRejected("too large", status=413, retryable=False), False),
        (ServerUnreachable("http://x", "ConnectError"), True),
        (MailboxAPIError(429, "rate_limited", "slow down", 3), True),
        (MailboxAPIError(503, "overloaded", "busy"), True),
        (MailboxAPIError(404, "agent_not_found", "no such agent"), False),
    ],
)
def test_each_error_says_whether_trying_again_can_help(error: BridgeError, retryable: bool) -> None:
    assert error.retryable is retryable


def test_a_retryable_error_backs_off_exponentially_with_jitter() -> None:
    backoff = Backoff(initial=1.0, maximum=8.0)
    delays = [backoff.delay_after(GatewayUnreachable("down")) for _ in range(6)]
    for delay, ceiling in zip(delays, [1, 2, 4, 8, 8, 8], strict=True):
        assert ceiling / 2 <= delay <= ceiling
    backoff.reset()
    assert backoff.delay_after(OSError("reset")) <= 1.0


def test_the_wait_the_other_side_asked_for_is_honoured_within_a_cap() -> None:
    backoff = Backoff(initial=0.1, maximum=1.0)
    assert backoff.delay_after(GatewayUnreachable("busy", retry_after=7)) == 7
    assert backoff.delay_after(MailboxAPIError(429, "rate_limited", "x", 10**6)) == RETRY_AFTER_CAP
    assert backoff.delay_after(GatewayUnreachable("busy", retry_after=0.01)) <= 0.4


def test_an_error_only_the_owner_can_fix_is_tried_again_only_at_the_slowest_pace() -> None:
    backoff = Backoff(initial=0.1, maximum=30.0)
    assert backoff.delay_after(GatewayAuthError("refused")) == 30.0
    assert backoff.delay_after(GatewayToolNotAllowed("not allowed")) == 30.0
