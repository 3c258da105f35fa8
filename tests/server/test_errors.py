"""The server's errors: one root, drawn in the docstring of server/errors.py."""

from __future__ import annotations

import server
from server.errors import ConfigurationError, MailboxError, ServerError
from tests.mcp.test_errors import public_exceptions


def test_every_server_error_descends_from_server_error() -> None:
    errors = public_exceptions(server)
    assert ConfigurationError in errors and MailboxError in errors
    assert [e.__name__ for e in errors if not issubclass(e, ServerError)] == []


def test_every_server_error_is_drawn_in_the_tree() -> None:
    tree = server.errors.__doc__ or ""
    names = {e.__name__ for e in public_exceptions(server)}
    assert [name for name in sorted(names) if name not in tree] == []
