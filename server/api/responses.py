"""Response helpers shared by the routers: the error envelope in OpenAPI, fast JSON."""

from __future__ import annotations

from typing import Any

from fastapi import Response
from pydantic import BaseModel

from mailbox_wire import ErrorBody


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorBody} for status in statuses}


AUTHED = errors(401, 422, 429)


def json_response(model: BaseModel, status_code: int = 200) -> Response:
    """Serialise a response model directly (hot paths): the model was built by our own
    code from validated data, so FastAPI's second validation pass buys nothing."""
    return Response(model.model_dump_json(), status_code=status_code, media_type="application/json")
