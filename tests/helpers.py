"""Small clients for tests: register agents, connect them, send, read WebSocket frames."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect


def unique_name(prefix: str = "agent") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass
class Agent:
    name: str
    agent_id: str
    api_key: str
    http: httpx.Client

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.get(path, headers=self.auth, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        return self.http.post(path, json=body, headers=self.auth, **kwargs)

    def delete(self, path: str) -> httpx.Response:
        return self.http.delete(path, headers=self.auth)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def send(self, to: Agent, content: str, **fields: Any) -> dict[str, Any]:
        body = {"to": to.name, "content": content, **fields}
        if "session_id" not in fields:
            body.setdefault("subject", "test")
        response = self.post("/messages/send", body)
        assert response.status_code == 201, response.text
        return response.json()


_open_clients: list[httpx.Client] = []


def close_clients() -> None:
    """Close every client `register` opened (called after each test by conftest)."""
    while _open_clients:
        _open_clients.pop().close()


def register(base_url: str, prefix: str = "agent") -> Agent:
    http = httpx.Client(base_url=base_url, timeout=10)
    _open_clients.append(http)
    name = unique_name(prefix)
    response = http.post("/agents/register", json={"name": name})
    assert response.status_code == 201, response.text
    data = response.json()
    return Agent(name=name, agent_id=data["agent_id"], api_key=data["api_key"], http=http)


def connect_agents(a: Agent, b: Agent) -> None:
    request = a.post("/connections/request", {"target_agent_name": b.name})
    assert request.status_code == 201, request.text
    approve = b.post(
        "/connections/approve", {"verification_code": request.json()["verification_code"]}
    )
    assert approve.status_code == 200, approve.text


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code, body
    assert isinstance(body["message"], str) and body["message"]


class Socket:
    """A real WebSocket client that reads JSON frames with a deadline."""

    def __init__(self, ws_url: str) -> None:
        self._stack = contextlib.ExitStack()
        self.conn: ClientConnection = self._stack.enter_context(connect(ws_url, open_timeout=5))

    def send(self, frame: dict[str, Any]) -> None:
        self.conn.send(json.dumps(frame))

    def recv(self, timeout: float = 5) -> dict[str, Any]:
        return json.loads(self.conn.recv(timeout=timeout))

    def recv_type(self, kind: str, timeout: float = 5) -> dict[str, Any]:
        """The next frame of a type, skipping others, within the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            frame = self.recv(max(0.01, deadline - time.monotonic()))
            if frame.get("type") == kind:
                return frame

    def auth(self, api_key: str, since: int | None = None) -> dict[str, Any]:
        frame: dict[str, Any] = {"type": "auth", "api_key": api_key}
        if since is not None:
            frame["since"] = since
        self.send(frame)
        return self.recv()

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> Socket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
