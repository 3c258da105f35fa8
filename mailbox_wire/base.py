"""The building blocks of every wire model: names, ids, and the two base classes.

Request models forbid unknown fields and bound every string, so bad input is a
422 before it reaches a service. Response models forbid unknown fields too,
which documents them as closed in the OpenAPI schema; a client that must stay
compatible with a newer server reads them with `model_validate(..., extra="ignore")`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    field_validator,
)

AGENT_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{1,30}[a-z0-9]$"

AgentName = Annotated[str, StringConstraints(pattern=AGENT_NAME_PATTERN)]
# Ids are UUIDs we issued; the pattern also keeps NUL and odd bytes away from the database.
OBJECT_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
ObjectId = Annotated[str, StringConstraints(pattern=OBJECT_ID_PATTERN)]
MAX_SEQ = 2**62
Seq = Annotated[int, Field(ge=0, le=MAX_SEQ)]


def _refuse_nul(value: object) -> object:
    # NUL is valid JSON but no text column can hold it (PostgreSQL refuses it, SQLite
    # truncates at it in places): refuse it everywhere, the same on every backend.
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("text must not contain NUL (\\u0000) characters")
    if isinstance(value, list):
        for item in value:
            _refuse_nul(item)
    return value


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        return _refuse_nul(value)


class Response(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(Response):
    error: str = Field(description="Stable snake_case error code")
    message: str = Field(description="What went wrong, for humans")


class OkBody(Response):
    status: Literal["ok"] = "ok"


class Health(Response):
    status: Literal["ok", "unavailable"]
    database: Literal["ok", "unreachable"]


_TIME = TypeAdapter(datetime)


def wire_time(value: datetime) -> str:
    """A time as the server writes it in JSON (`2026-01-02T03:04:05.120000Z`): a client
    that shows a validated model's time shows the very text it received."""
    return _TIME.dump_python(value, mode="json")  # type: ignore[no-any-return]
