"""Every error leaves as `{"error", "message"}`: handlers and the request-size guard."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import MailboxError, RateLimited

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


def describe_errors(errors: Any) -> str:
    """One line for people from pydantic's error list."""
    parts = []
    for error in list(errors)[:5]:
        location = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        parts.append(f"{location}: {error.get('msg')}" if location else str(error.get("msg")))
    return "; ".join(parts) or "invalid request"


async def _mailbox_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, MailboxError)
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
    return error_response(exc.status_code, exc.code, exc.message, headers)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(422, "validation_error", describe_errors(exc.errors()))


UNPARSEABLE_BODY = "the body is not valid JSON (UTF-8)"


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and exc.__cause__ is not None:
        # FastAPI answers 400 for a body it could not decode (bytes that are not UTF-8)
        # but 422 for one that is not JSON; the send fast path answers both with 422.
        # The contract's table has `validation_error` 422 for a bad body and no 400
        # for it, so every route says the same.
        return error_response(422, "validation_error", UNPARSEABLE_BODY)
    code = _HTTP_CODES.get(exc.status_code, "error")
    message = exc.detail if isinstance(exc.detail, str) else code
    if exc.status_code == 404 and message == "Not Found":
        message = "no such endpoint"
    return error_response(exc.status_code, code, message, dict(exc.headers or {}) or None)


DATABASE_REFUSED = "a value in the request cannot be stored"


async def _database_refused(_request: Request, exc: Exception) -> JSONResponse:
    # A value the validators let through but the database cannot hold: the
    # caller's input, not a server fault.
    log.warning("the database refused a value: %s", exc)
    return error_response(422, "validation_error", DATABASE_REFUSED)


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error (a bug)", exc_info=exc)
    return error_response(500, "internal_error", "the server failed; this is a bug")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(MailboxError, _mailbox_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DataError, _database_refused)
    app.add_exception_handler(Exception, _unexpected)


class BodyLimit:
    """Refuses request bodies over `limit` bytes with 413 before any handler reads them."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            await self._refuse(send)
            return
        # Read the (bounded) body here, then replay it, so an oversized chunked
        # body is refused cleanly instead of failing half-way through a handler.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message]), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._refuse(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        await self.app(scope, _replay([{"type": "http.request", "body": body}], receive), send)

    async def _refuse(self, send: Send) -> None:
        payload = json.dumps(
            {
                "error": "payload_too_large",
                "message": f"request bodies are limited to {self.limit} bytes",
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
            }
        )
        await send({"type": "http.response.body", "body": payload})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _replay(messages: list[Message], then: Receive | None = None) -> Receive:
    queue: list[Message] = list(messages)

    async def receive() -> Message:
        if queue:
            return queue.pop(0)
        if then is not None:
            return await then()
        return {"type": "http.disconnect"}

    return receive
