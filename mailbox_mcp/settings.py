"""Bridge settings, from the environment, validated once at start with errors a person can fix."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mailbox_mcp.openclaw.session_keys import SessionKey, names_main

DEFAULT_SESSION_KEY_TEMPLATE = "agent:{agent_id}:dm:mailbox-{peer}"
_AGENT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "agent-mailbox"


class BridgeSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    server_url: str = Field(default="http://127.0.0.1:8000", alias="MAILBOX_SERVER_URL")
    api_key: SecretStr | None = Field(default=None, alias="MAILBOX_API_KEY")
    gateway_url: str | None = Field(default=None, alias="OPENCLAW_GATEWAY_URL")
    gateway_token: SecretStr | None = Field(default=None, alias="OPENCLAW_GATEWAY_TOKEN")
    agent_id: str = Field(default="main", alias="OPENCLAW_AGENT_ID")
    session_key_template: str = Field(
        default=DEFAULT_SESSION_KEY_TEMPLATE, alias="MAILBOX_SESSION_KEY_TEMPLATE"
    )
    state_dir: Path = Field(default_factory=default_state_dir, alias="MAILBOX_STATE_DIR")
    pgp_private_key_file: Path | None = Field(default=None, alias="MAILBOX_PGP_PRIVATE_KEY_FILE")
    pgp_passphrase: SecretStr | None = Field(default=None, alias="MAILBOX_PGP_PASSPHRASE")
    require_encryption: bool = Field(default=False, alias="MAILBOX_REQUIRE_ENCRYPTION")
    # How messages enter OpenClaw: HTTP sessions_send, or the gateway WebSocket method
    # `agent` (for a dedicated peer agent whose policy denies session tools); auto
    # picks `agent` whenever the per-peer sessions belong to an agent other than main.
    injection: Literal["auto", "sessions_send", "agent"] = Field(
        default="auto", alias="MAILBOX_INJECTION"
    )
    # Reconnect and re-inject backoff: from this, doubling, up to the maximum.
    retry_initial_seconds: float = Field(default=1.0, gt=0, alias="MAILBOX_RETRY_INITIAL_SECONDS")
    retry_max_seconds: float = Field(default=30.0, gt=0, alias="MAILBOX_RETRY_MAX_SECONDS")
    # The bearer token `mailbox-mcp serve` requires (else one is kept in the state dir).
    serve_token: SecretStr | None = Field(default=None, alias="MAILBOX_SERVE_TOKEN")
    # Peers the owner vouches for, shown in the envelope's trust line: "alice,bob".
    trusted_peers: str = Field(default="", alias="MAILBOX_TRUSTED_PEERS")
    # Which tools this MCP server offers: the owner's set, the peer-session set
    # (`mailbox_reply` alone), or both (OpenClaw's per-agent allow lists pick).
    tools: Literal["all", "owner", "peer"] = Field(default="all", alias="MAILBOX_TOOLS")
    # Optional inbound screening (contract, section 9): an OpenAI-compatible endpoint and a
    # pinned model classify each incoming message before injection; fail closed.
    guard_url: str | None = Field(default=None, alias="MAILBOX_GUARD_URL")
    guard_model: str | None = Field(default=None, alias="MAILBOX_GUARD_MODEL")
    guard_api_key: SecretStr | None = Field(default=None, alias="MAILBOX_GUARD_API_KEY")
    guard_timeout: float = Field(default=10.0, gt=0, le=300, alias="MAILBOX_GUARD_TIMEOUT")

    @field_validator("server_url", "gateway_url", "guard_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip().rstrip("/")
        if "://" not in value:
            # A bare host means the public service: TLS is assumed.
            value = f"https://{value}"
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} must start with http:// or https://")
        try:
            _ = urlsplit(value).port  # raises for a port that is not a number in 0-65535
        except ValueError:
            raise ValueError(f"{value!r} has an invalid port") from None
        return value

    @field_validator("agent_id")
    @classmethod
    def _agent_id(cls, value: str) -> str:
        if not _AGENT_ID.match(value):
            raise ValueError("OPENCLAW_AGENT_ID must be an OpenClaw agent id such as 'main'")
        return value

    @model_validator(mode="after")
    def _template(self) -> BridgeSettings:
        template = self.session_key_template
        if "{peer}" not in template or SessionKey.parse(self.session_key("probe-peer")) is None:
            raise ValueError(
                "MAILBOX_SESSION_KEY_TEMPLATE must start with 'agent:' and contain {peer}, "
                f"e.g. {DEFAULT_SESSION_KEY_TEMPLATE!r}"
            )
        if self.guard_url and not (self.guard_model or "").strip():
            raise ValueError(
                "MAILBOX_GUARD_URL needs MAILBOX_GUARD_MODEL: a pinned model id, so the "
                "verdicts do not change under you"
            )
        if names_main(self.session_key("probe-peer")):
            raise ValueError("MAILBOX_SESSION_KEY_TEMPLATE must never name the main session")
        return self

    def session_key(self, peer: str) -> str:
        """The per-peer OpenClaw session for `peer` (never the owner's main session)."""
        return self.session_key_template.format(agent_id=self.agent_id, peer=peer)

    @property
    def session_agent_id(self) -> str:
        """The agent id inside the session key (`agent:<id>:...`)."""
        parsed = SessionKey.parse(self.session_key("x"))
        return parsed.agent_id if parsed else self.agent_id

    @property
    def injection_path(self) -> str:
        if self.injection != "auto":
            return self.injection
        return "sessions_send" if self.session_agent_id == "main" else "agent"

    @property
    def push_mode(self) -> bool:
        return self.gateway_url is not None

    @property
    def api_key_file(self) -> Path:
        return self.state_dir / "api_key"

    @property
    def pgp_key_path(self) -> Path:
        """MAILBOX_PGP_PRIVATE_KEY_FILE, else `openpgp-private-key.asc` in the state dir."""
        return self.pgp_private_key_file or self.state_dir / "openpgp-private-key.asc"

    def resolved_api_key(self) -> str | None:
        """MAILBOX_API_KEY, else the key `mailbox-mcp register` saved in the state dir."""
        if self.api_key is not None and self.api_key.get_secret_value().strip():
            return self.api_key.get_secret_value().strip()
        try:
            return self.api_key_file.read_text().strip() or None
        except OSError:
            return None

    def trust_level(self, peer: str) -> str:
        trusted = {p.strip() for p in self.trusted_peers.split(",") if p.strip()}
        return "TRUSTED" if peer in trusted else "UNKNOWN"
