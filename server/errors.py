"""The server's own errors: one root, two branches, named for what went wrong.

Services raise ``MailboxError``s and one handler (``server/api/errors.py``)
turns each into ``{"error", "message"}`` with its status; a
``ConfigurationError`` stops the server before it answers anything.

ServerError                           the root of every error the server raises on purpose
├── ConfigurationError                the server cannot start as configured (never an HTTP
│                                     answer; the CLI prints it as one line)
└── MailboxError                      an HTTP answer: status, stable code, message
    ├── Unauthorized                  401 unauthorized
    ├── NotFound                      404 not_found, agent_not_found, session_not_found,
    │                                     invalid_code
    ├── Conflict                      409 name_taken, already_connected, ...
    ├── Forbidden                     403 not_connected
    ├── Gone                          410 code_expired
    ├── InvalidInput                  400/422 cannot_connect_to_self, subject_required, ...
    ├── PayloadTooLarge               413 payload_too_large
    ├── RateLimited                   429/503 rate_limited, pending_limit_reached, overloaded
    └── StoredDataUnreadable          503 stored_data_unreadable (a key is missing)
"""

from __future__ import annotations


class ServerError(Exception):
    """Root of the server's own errors."""


class ConfigurationError(ServerError):
    """The server cannot start as configured; the message says what to change."""


class MailboxError(ServerError):
    """An error the client gets as `{"error", "message"}` with `status_code`."""

    status_code: int = 400
    code: str = "bad_request"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class Unauthorized(MailboxError):
    status_code = 401
    code = "unauthorized"


class Forbidden(MailboxError):
    status_code = 403
    code = "forbidden"


class NotFound(MailboxError):
    status_code = 404
    code = "not_found"


class Conflict(MailboxError):
    status_code = 409
    code = "conflict"


class Gone(MailboxError):
    status_code = 410
    code = "gone"


class InvalidInput(MailboxError):
    status_code = 422
    code = "validation_error"

    def __init__(self, message: str, *, code: str | None = None, status_code: int = 422) -> None:
        super().__init__(message, code=code)
        self.status_code = status_code


class PayloadTooLarge(MailboxError):
    status_code = 413
    code = "payload_too_large"


class RateLimited(MailboxError):
    status_code = 429
    code = "rate_limited"

    def __init__(
        self,
        message: str,
        *,
        retry_after: float,
        code: str | None = None,
        status_code: int = 429,
    ) -> None:
        super().__init__(message, code=code)
        self.retry_after = max(1, int(retry_after + 0.999))
        self.status_code = status_code


class StoredDataUnreadable(MailboxError):
    """A stored value none of the configured keys decrypts.

    The server refuses to start while the database may hold such values (see
    `server.key_registry`), so this answers only for a row written behind its
    back: a server that kept encrypting with a retired key, or a damaged row.
    503, not 500: nothing is wrong with the code or the request, and the same
    request succeeds once the operator puts the key back.
    """

    status_code = 503
    code = "stored_data_unreadable"
