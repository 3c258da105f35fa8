"""The parts of OpenClaw's ``openclaw.json`` the bridge reads, as one pydantic model.

OpenClaw writes and reads its config as JSON5 (comments, unquoted keys,
trailing commas), so it is read with ``json5`` here, the one place it is
parsed. The model names only what the bridge looks at: the agents' workspaces
and tool allow lists (``home.py``, ``policy.py``, ``doctor``) and the
``mcp.servers`` entry that starts the bridge. Every other key is ignored, so a
newer OpenClaw's additions never break it; a part we read that has the wrong
shape (``"agents": []``) is an ``OpenClawConfigError`` that says where, never a
crash and never a guess.

Only read, never written: ``mailbox-mcp config openclaw`` prints a patch that
the owner applies.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Self

import json5
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mailbox_mcp.errors import BridgeError

__all__ = [
    "AgentEntry",
    "Agents",
    "McpServer",
    "OpenClawConfig",
    "OpenClawConfigError",
    "ToolPolicy",
    "load_config",
]


class OpenClawConfigError(BridgeError):
    """``openclaw.json`` is not JSON5, or a part the bridge reads is not shaped as OpenClaw's."""

    def __init__(self, message: str, *, fix: str) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix


class _Lenient(BaseModel):
    # OpenClaw's config has many more keys, and gains some in each release.
    model_config = ConfigDict(extra="ignore", frozen=True)


class ToolPolicy(_Lenient):
    allow: tuple[str, ...] = ()

    @field_validator("allow", mode="before")
    @classmethod
    def _entries(cls, value: object) -> object:
        # A string is one entry, never a list of characters; anything but a string in a
        # list matches no tool, as in OpenClaw.
        if isinstance(value, str):
            return (value,)
        if isinstance(value, list | tuple):
            return tuple(item for item in value if isinstance(item, str))
        return value


class AgentEntry(_Lenient):
    workspace: str | None = None
    tools: ToolPolicy = ToolPolicy()

    @property
    def workspace_path(self) -> str | None:
        """The workspace as written, or None when there is none worth the name."""
        return _text(self.workspace)


class AgentDefaults(_Lenient):
    workspace: str | None = None


class Agents(_Lenient):
    defaults: AgentDefaults = AgentDefaults()
    entries: dict[str, AgentEntry] = Field(default_factory=dict)


class McpServer(BaseModel):
    # Kept whole: which entry is our bridge is told by what it runs (policy.py).
    model_config = ConfigDict(extra="allow", frozen=True)

    env: dict[str, str] = Field(default_factory=dict)

    @field_validator("env", mode="before")
    @classmethod
    def _strings(cls, value: object) -> object:
        # Only strings reach a process's environment.
        if isinstance(value, Mapping):
            return {k: v for k, v in value.items() if isinstance(v, str)}
        return value


class Mcp(_Lenient):
    servers: dict[str, McpServer] = Field(default_factory=dict)


class OpenClawConfig(_Lenient):
    agents: Agents = Agents()
    mcp: Mcp = Mcp()

    @classmethod
    def of(cls, data: OpenClawConfig | Mapping[str, object], *, source: str = "the config") -> Self:
        """``data`` as the model (as it is if it is one already). Raises OpenClawConfigError."""
        if isinstance(data, cls):
            return data
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise OpenClawConfigError(
                f"{source} is not shaped as OpenClaw's config: {_where(exc)}",
                fix=f"in {source}, {_where(exc, limit=1)} (OpenClaw refuses such a config too)",
            ) from None

    def agent(self, agent_id: str) -> AgentEntry:
        """The agent's entry; an empty one when ``agents.entries`` does not list it."""
        return self.agents.entries.get(agent_id) or AgentEntry()


def load_config(path: Path) -> OpenClawConfig:
    """Read ``openclaw.json`` (JSON5). Raises OSError (FileNotFoundError when there is none)
    or OpenClawConfigError."""
    text = path.read_text(encoding="utf-8")
    try:
        data = json5.loads(text)
    except ValueError as exc:
        raise OpenClawConfigError(
            f"{path} is not valid JSON5 ({exc})",
            fix=f"correct the syntax of {path} (OpenClaw reads it as JSON5)",
        ) from None
    if not isinstance(data, dict):
        raise OpenClawConfigError(
            f"{path} does not hold an object", fix=f"make {path} one JSON5 object: {{...}}"
        )
    return OpenClawConfig.of(data, source=str(path))


def _where(exc: ValidationError, *, limit: int = 3) -> str:
    """``agents.entries.x must be an object``, for each place (at most ``limit``)."""
    places = []
    for error in exc.errors()[:limit]:
        place = ".".join(str(part) for part in error["loc"])
        places.append(f"{place} {_SHOULD.get(error['type'], 'is invalid: ' + error['msg'])}")
    return "; ".join(places)


_SHOULD = {
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "dict_type": "must be an object",
    "string_type": "must be a string",
}


def _text(value: str | None) -> str | None:
    return value.strip() if value and value.strip() else None
