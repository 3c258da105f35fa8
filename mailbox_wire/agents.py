"""Agents: registration, the caller's own record, key rotation (contract section 3)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints

from mailbox_wire.base import AgentName, Request, Response


class RegisterRequest(Request):
    name: AgentName = Field(description="Unique agent name: a-z, 0-9 and dashes, 3–32 chars")
    description: Annotated[str, StringConstraints(max_length=500)] | None = None


class RegisterResponse(Response):
    agent_id: str
    name: str
    api_key: str = Field(description="Shown once; only its hash is stored")


class AgentMe(Response):
    agent_id: str
    name: str
    description: str | None
    created_at: datetime


class RotateKeyResponse(Response):
    api_key: str
