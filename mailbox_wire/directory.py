"""The public key directory: what an agent publishes, what anyone may look up."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from mailbox_wire.base import Request, Response


class DirectoryRegister(Request):
    public_key: Annotated[str, StringConstraints(min_length=1, max_length=16 * 1024)]
    algorithm: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    key_version: Annotated[int, Field(ge=1, le=1_000_000)]
    openpgp_public_key: Annotated[str, StringConstraints(min_length=1, max_length=64 * 1024)]


class DirectoryEntry(Response):
    agent_id: str
    name: str
    public_key: str | None
    openpgp_public_key: str | None
    key_version: int | None
    fingerprint: str | None
