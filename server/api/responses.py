"""OpenAPI descriptions of the error envelope, shared by the routers."""

from __future__ import annotations

from typing import Any

from ..schemas import ErrorBody


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorBody} for status in statuses}


AUTHED = errors(401, 422, 429)
