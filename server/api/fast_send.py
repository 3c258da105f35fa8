"""`POST /messages/send` served without the framework's per-request machinery.

Sending is the hot path: FastAPI's routing, dependency solving and response
validation cost several times the send itself. This ASGI middleware serves
exactly that route with the same pieces the framework would call (the
request model, authentication, the rate limit, the service, the error
envelope); every other request goes on to FastAPI. The FastAPI route in
`messages.py` stays: it documents the endpoint in OpenAPI and serves it
when the fast path is switched off (`MAILBOX_FAST_SEND=0`). It sits outside
the FastAPI app (see `server.app.create_app`), behind only the body limit.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy.exc import DataError
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

import mailbox_wire as wire

from ..errors import MailboxError, RateLimited
from ..services import agents as agent_service
from ..services import messages as message_service
from .errors import DATABASE_REFUSED, describe_errors

PATH = "/messages/send"

log = logging.getLogger(__name__)


class FastSend:
    def __init__(self, app: ASGIApp, mailbox: FastAPI) -> None:
        self.app = app
        self.mailbox = mailbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        status, payload, headers = await self._handle(scope, receive)
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        raw_headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *((k.encode(), v.encode()) for k, v in headers.items()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": body})

    async def _handle(
        self, scope: Scope, receive: Receive
    ) -> tuple[int, bytes | dict[str, Any], dict[str, str]]:
        svc = self.mailbox.state.services
        headers = Headers(scope=scope)
        try:
            agent = await agent_service.authenticate(svc, _api_key(headers))
            wait = svc.request_rate.take(agent.id)
            if wait > 0:
                raise RateLimited("too many requests for this API key; slow down", retry_after=wait)
            content_type = headers.get("content-type", "application/json")
            if "json" not in content_type:
                return 422, _error("validation_error", "send a JSON body (application/json)"), {}
            try:
                request = wire.SendRequest.model_validate_json(await _read(receive))
            except ValidationError as exc:
                return 422, _error("validation_error", describe_errors(exc.errors())), {}
            sent = await message_service.send(svc, self.mailbox.state.send_gate, agent, request)
        except MailboxError as exc:
            extra = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else {}
            return exc.status_code, _error(exc.code, exc.message), extra
        except DataError as exc:
            # As the FastAPI route answers (see api/errors.py): the caller's value, not a fault.
            log.warning("the database refused a value: %s", exc)
            return 422, _error("validation_error", DATABASE_REFUSED), {}
        except Exception:
            # Outside FastAPI's error middleware: a bug still answers with the envelope.
            log.exception("unhandled error in the send fast path (a bug)")
            return 500, _error("internal_error", "the server failed; this is a bug"), {}
        return 201, sent.model_dump_json().encode(), {}


def _api_key(headers: Headers) -> str | None:
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "bearer":
            return credentials.strip()
    return headers.get("x-api-key")


async def _read(receive: Receive) -> bytes:
    # BodyLimit (outside this middleware) has already bounded and buffered the body.
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _error(code: str, message: str) -> dict[str, str]:
    return {"error": code, "message": message}
