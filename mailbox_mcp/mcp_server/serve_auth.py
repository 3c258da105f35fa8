"""The bearer token that guards `mailbox-mcp serve`, and where it is kept.

Kept apart from `serve.py` so that `mailbox-mcp config openclaw --serve` can read
the token without importing the MCP SDK and uvicorn.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send

from mailbox_mcp.errors import ConfigError
from mailbox_mcp.settings import BridgeSettings


class BearerToken:
    """Refuses every HTTP request without `Authorization: Bearer <token>` (401)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        if not token.strip():  # "Bearer " alone would then be the password
            raise ValueError("the serve token is empty")
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = dict(scope.get("headers", ())).get(b"authorization", b"")
            if not hmac.compare_digest(given, self._expected):
                body = json.dumps(
                    {"error": "unauthorized", "message": "send Authorization: Bearer <token>"}
                ).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"www-authenticate", b"Bearer"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def serve_token(settings: BridgeSettings) -> str:
    """MAILBOX_SERVE_TOKEN, else one made once and kept 0600 in the state dir.

    Raises ConfigError for a kept token file that is empty (or only whitespace):
    an empty token would let any request in, and a token made anew silently
    would lock out every client configured with the old one, so the person
    decides. A file this function makes is never seen empty: it is written in
    full under a temporary name and then linked into place.
    """
    if settings.serve_token is not None and settings.serve_token.get_secret_value().strip():
        return settings.serve_token.get_secret_value().strip()
    path: Path = settings.state_dir / "serve_token"
    try:
        return _read_token(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    token = secrets.token_urlsafe(32)
    temporary = path.with_name(f".serve_token.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(token + "\n")
        os.link(temporary, path)  # fails if another process made one meanwhile: use theirs
    except FileExistsError:
        return _read_token(path)
    finally:
        temporary.unlink(missing_ok=True)
    return token


def _read_token(path: Path) -> str:
    token = path.read_text().strip()
    if not token:
        raise ConfigError(
            f"the serve token file {path} is empty, and an empty token would let anyone in: "
            "delete the file to have a new token made (then give it to every MCP client "
            "again, e.g. `mailbox-mcp config openclaw --serve URL --include-key`), or set "
            "MAILBOX_SERVE_TOKEN"
        )
    return token
