"""Server settings: one object, read from the environment (and `.env`) at the edge.

Built once by the CLI or the test harness and passed down to `create_app`;
nothing in the server reads the environment on its own.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./mailbox.db"

# Secrets copied from an example file unchanged: refused, since a server started with
# one is open to anyone who read the same example.
PLACEHOLDER_SECRETS = frozenset(
    {
        "changeme",
        "change-me",
        "change_me",
        "password",
        "secret",
        "example",
        "placeholder",
        "xxx",
        "todo",
        "replace-me",
        "replaceme",
    }
)


def is_placeholder(secret: str) -> bool:
    text = secret.strip().lower()
    return text in PLACEHOLDER_SECRETS or (text.startswith("<") and text.endswith(">"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    database_url: str = Field(default=DEFAULT_DATABASE_URL, alias="DATABASE_URL")
    # One or more Fernet keys, comma separated: the first encrypts, all decrypt.
    encryption_key: SecretStr | None = Field(default=None, alias="MAILBOX_ENCRYPTION_KEY")

    host: str = Field(default="127.0.0.1", alias="MAILBOX_HOST")
    port: int = Field(default=8000, ge=0, le=65535, alias="MAILBOX_PORT")
    # Server processes sharing the port (uvicorn workers); more than one needs PostgreSQL.
    workers: int = Field(default=1, ge=1, le=64, alias="MAILBOX_WORKERS")

    # Limits. Every one is configurable; the defaults suit a team of agents.
    max_message_bytes: int = Field(default=64 * 1024, ge=1, alias="MAILBOX_MAX_MESSAGE_BYTES")
    max_request_bytes: int = Field(default=256 * 1024, ge=1024, alias="MAILBOX_MAX_REQUEST_BYTES")
    # A page of messages (GET /inbox, GET /sessions/{id}/history) ends at its `limit`
    # or at about this many bytes of JSON, whichever comes first (at least one message).
    max_page_bytes: int = Field(default=1024 * 1024, ge=1024, alias="MAILBOX_MAX_PAGE_BYTES")
    max_ws_frame_bytes: int = Field(default=64 * 1024, ge=1024, alias="MAILBOX_MAX_WS_FRAME_BYTES")
    registrations_per_hour: int = Field(
        default=20, ge=1, alias="MAILBOX_REGISTRATIONS_PER_HOUR_PER_CLIENT"
    )
    approve_failures_per_hour: int = Field(
        default=10, ge=1, alias="MAILBOX_APPROVE_FAILURES_PER_HOUR"
    )
    requests_per_second: float = Field(default=50.0, gt=0, alias="MAILBOX_REQUESTS_PER_SECOND")
    request_burst: int = Field(default=200, ge=1, alias="MAILBOX_REQUEST_BURST")
    # Past this many sends in flight the server sheds load with 503 + Retry-After
    # instead of queueing without bound.
    max_inflight_sends: int = Field(default=256, ge=1, alias="MAILBOX_MAX_INFLIGHT_SENDS")
    # A backstop against two agents running away with each other, whatever their
    # bridges do: messages per sender per recipient in any sliding hour (0: off).
    pair_messages_per_hour: int = Field(default=120, ge=0, alias="MAILBOX_PAIR_MESSAGES_PER_HOUR")
    max_outgoing_pending: int = Field(default=3, ge=1, alias="MAILBOX_MAX_OUTGOING_PENDING")
    # Pending requests an agent can have waiting for it; past that, new ones are refused
    # (requests from agents it blocked are not counted, nor shown).
    max_incoming_pending: int = Field(default=50, ge=1, alias="MAILBOX_MAX_INCOMING_PENDING")
    # After a target rejects a request, the same requester may ask that target again
    # only after this long, doubled for each further rejection in 30 days, at most
    # the maximum (0: no cool-down).
    rerequest_cooldown_seconds: int = Field(
        default=3600, ge=0, alias="MAILBOX_REREQUEST_COOLDOWN_SECONDS"
    )
    rerequest_cooldown_max_seconds: int = Field(
        default=7 * 24 * 3600, ge=0, alias="MAILBOX_REREQUEST_COOLDOWN_MAX_SECONDS"
    )
    connection_code_ttl_seconds: int = Field(default=3600, ge=60, alias="MAILBOX_CODE_TTL_SECONDS")
    idempotency_ttl_seconds: int = Field(
        default=24 * 3600, ge=24 * 3600, alias="MAILBOX_IDEMPOTENCY_TTL_SECONDS"
    )
    ws_auth_timeout_seconds: float = Field(default=5.0, gt=0, alias="MAILBOX_WS_AUTH_TIMEOUT")
    ws_ping_interval_seconds: float = Field(default=20.0, gt=0, alias="MAILBOX_WS_PING_INTERVAL")
    ws_send_queue: int = Field(default=1024, ge=16, alias="MAILBOX_WS_SEND_QUEUE")
    # What one socket may hold in memory for a client that does not read: the live
    # frames waiting for it, and one page of its backlog (stored bytes; at least one
    # message per page, so the ceiling per page is this or one message, whichever is more).
    ws_send_queue_bytes: int = Field(
        default=1024 * 1024, ge=64 * 1024, alias="MAILBOX_WS_SEND_QUEUE_BYTES"
    )
    ws_backlog_page_bytes: int = Field(
        default=256 * 1024, ge=64 * 1024, alias="MAILBOX_WS_BACKLOG_PAGE_BYTES"
    )
    # A send that cannot start for this long (the client stopped reading and the buffers
    # are full) closes the socket with 1013; the client reconnects and is replayed.
    ws_send_timeout_seconds: float = Field(default=30.0, gt=0, alias="MAILBOX_WS_SEND_TIMEOUT")
    # Open sockets at once, per agent and per client address (authenticated or not);
    # past either the newest is closed with 4029. A newer socket of an agent still
    # replaces the older (4000), which closes at once: so at least 2 per agent, and the
    # cap only bites when sockets are opened faster than the replaced ones close.
    ws_max_sockets_per_key: int = Field(default=4, ge=2, alias="MAILBOX_WS_MAX_SOCKETS_PER_KEY")
    ws_max_sockets_per_client: int = Field(
        default=256, ge=1, alias="MAILBOX_WS_MAX_SOCKETS_PER_CLIENT"
    )
    # Frames a client may send per second on its socket (acks, pings), with a burst; past
    # it the server reads its frames no faster (TCP pushes back), it does not drop them.
    ws_frames_per_second: float = Field(default=1000.0, gt=0, alias="MAILBOX_WS_FRAMES_PER_SECOND")
    ws_frame_burst: int = Field(default=2000, ge=1, alias="MAILBOX_WS_FRAME_BURST")
    # WebSocket acks are written together this often (and on close, ping, shutdown):
    # a crash replays at most this long's acknowledged messages, never loses one.
    ack_flush_seconds: float = Field(default=0.05, ge=0, le=60, alias="MAILBOX_ACK_FLUSH_SECONDS")

    # Serve POST /messages/send outside the framework (see server/api/fast_send.py).
    fast_send: bool = Field(default=True, alias="MAILBOX_FAST_SEND")
    # Behind a reverse proxy: the proxies' addresses or networks, comma separated. Only
    # a connection from one of them has X-Forwarded-For read, and only the entries
    # those proxies appended count: the client address is the rightmost entry that is
    # not a listed proxy (uvicorn's ProxyHeadersMiddleware). Empty: the header is ignored.
    trusted_proxies: str = Field(default="", alias="MAILBOX_TRUSTED_PROXIES")
    # Replaced by MAILBOX_TRUSTED_PROXIES: it trusted the leftmost entry, which any
    # client can write. Set, it refuses the start and names the new setting.
    trust_forwarded_for: bool = Field(default=False, alias="MAILBOX_TRUST_FORWARDED_FOR")
    log_level: str = Field(default="info", alias="MAILBOX_LOG_LEVEL")

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, url: str) -> str:
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            # People paste libpq URLs; say exactly what to write instead.
            raise ValueError(
                "DATABASE_URL must name the async driver: "
                "postgresql+asyncpg://user:password@host:5432/dbname"
            )
        if not (url.startswith("sqlite+aiosqlite://") or url.startswith("postgresql+asyncpg://")):
            raise ValueError(
                "DATABASE_URL must start with sqlite+aiosqlite:// or postgresql+asyncpg://"
            )
        if url.startswith("sqlite") and (":memory:" in url or url.rstrip("/").endswith(":")):
            # Every connection would see its own empty database: messages would vanish.
            raise ValueError(
                "DATABASE_URL must name a SQLite file, e.g. sqlite+aiosqlite:///./mailbox.db"
            )
        return url

    @field_validator("database_url")
    @classmethod
    def _no_placeholder_password(cls, url: str) -> str:
        password = make_url(url).password if url.startswith("postgresql") else None
        if password is not None and is_placeholder(password):
            raise ValueError(
                f"the database password is a placeholder ({password!r}): set a real secret, "
                "e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return url

    @field_validator("encryption_key")
    @classmethod
    def _no_placeholder_key(cls, key: SecretStr | None) -> SecretStr | None:
        if key is not None and any(is_placeholder(k) for k in key.get_secret_value().split(",")):
            raise ValueError(
                "MAILBOX_ENCRYPTION_KEY is a placeholder: make a key with python3 -c "
                "'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
            )
        return key

    @field_validator("trust_forwarded_for")
    @classmethod
    def _replaced_by_trusted_proxies(cls, trust: bool) -> bool:
        if trust:
            # Mapping it to "trust everyone" would keep the hole; guessing the proxy's
            # address could lock every client into one limit. The operator knows it.
            raise ValueError(
                "MAILBOX_TRUST_FORWARDED_FOR is replaced by MAILBOX_TRUSTED_PROXIES: "
                "list your reverse proxy's addresses or networks (e.g. "
                "MAILBOX_TRUSTED_PROXIES=127.0.0.1 or 10.0.0.0/8) and unset the old variable"
            )
        return trust

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_addresses(cls, value: str) -> str:
        for entry in (e.strip() for e in value.split(",") if e.strip()):
            if entry == "*":
                raise ValueError(
                    "MAILBOX_TRUSTED_PROXIES=* would let any client choose its own address; "
                    "list the proxy's addresses or networks"
                )
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                # uvicorn would take it as a literal that never matches: say so now.
                raise ValueError(
                    f"MAILBOX_TRUSTED_PROXIES: {entry!r} is not an IP address or network"
                ) from None
        return value

    @property
    def proxy_addresses(self) -> list[str]:
        """The trusted proxies as a list (empty: X-Forwarded-For is ignored)."""
        return [e.strip() for e in self.trusted_proxies.split(",") if e.strip()]

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite database file, or None for PostgreSQL and in-memory SQLite."""
        if not self.is_sqlite:
            return None
        path = self.database_url.split(":///", 1)[1] if ":///" in self.database_url else ""
        if not path or path.startswith(":memory:"):
            return None
        return Path(path.split("?", 1)[0])
