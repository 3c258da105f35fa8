"""A typed async client of the mailbox server's REST API (contract section 3).

It returns the shared wire models (`mailbox_wire`), validated from the
server's answer, and raises `MailboxAPIError` with the server's stable error
code, so callers can say exactly what went wrong. Answers are read leniently
(unknown fields ignored), so a newer server that adds a field does not break
an older bridge.
"""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

import mailbox_wire as wire
from mailbox_mcp.errors import MailboxAPIError, ServerUnreachable

Answer = TypeVar("Answer", bound=BaseModel)

USER_AGENT = "agent-mailbox-mcp/0.1"


class MailboxAPI:
    def __init__(self, base_url: str, api_key: str | None, timeout: float = 15.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        headers = {"User-Agent": USER_AGENT}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=timeout)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> MailboxAPI:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("https://", "wss://", 1).replace("http://", "ws://", 1) + "/ws"

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json: object = None,
        params: dict[str, str | int] | None = None,
    ) -> object:
        """The answer's parsed JSON (None for an empty body); an error status raises."""
        try:
            response = await self._http.request(method, path, json=json, params=params)
        except httpx.HTTPError as exc:
            raise ServerUnreachable(self.base_url, type(exc).__name__) from None
        if response.status_code >= 400:
            try:
                body = response.json()
                code, message = str(body["error"]), str(body["message"])
            except (ValueError, KeyError, TypeError):
                code = "http_error"
                message = f"HTTP {response.status_code} from the mailbox server"
            retry_after = response.headers.get("Retry-After")
            raise MailboxAPIError(
                response.status_code,
                code,
                message,
                float(retry_after) if retry_after and retry_after.isdigit() else None,
            )
        return response.json() if response.content else None

    async def _read(
        self,
        model: type[Answer],
        method: str,
        path: str,
        *,
        json: object = None,
        params: dict[str, str | int] | None = None,
    ) -> Answer:
        """The answer as `model`; one of another shape is the server's fault, said as such."""
        body = await self._call(method, path, json=json, params=params)
        try:
            return model.model_validate(body, extra="ignore")
        except ValidationError as exc:
            raise MailboxAPIError(
                502,
                "bad_answer",
                f"the mailbox server's answer to {method} {path} is not a {model.__name__} "
                f"({exc.error_count()} problems)",
            ) from None

    # --- agents ---------------------------------------------------------------------
    async def health(self) -> wire.Health:
        return await self._read(wire.Health, "GET", "/health")

    async def register(self, name: str, description: str | None = None) -> wire.RegisterResponse:
        body: dict[str, object] = {"name": name}
        if description:
            body["description"] = description
        return await self._read(wire.RegisterResponse, "POST", "/agents/register", json=body)

    async def me(self) -> wire.AgentMe:
        return await self._read(wire.AgentMe, "GET", "/agents/me")

    # --- connections ----------------------------------------------------------------
    async def request_connection(
        self, peer: str, message: str | None = None
    ) -> wire.ConnectionRequestCreated:
        body: dict[str, object] = {"target_agent_name": peer}
        if message:
            body["message"] = message
        return await self._read(
            wire.ConnectionRequestCreated, "POST", "/connections/request", json=body
        )

    async def pending(self) -> wire.PendingConnections:
        return await self._read(wire.PendingConnections, "GET", "/connections/pending")

    async def approve(self, code: str) -> wire.ApproveResponse:
        return await self._read(
            wire.ApproveResponse,
            "POST",
            "/connections/approve",
            json={"verification_code": code},
        )

    async def reject(self, request_id: str) -> wire.RejectResponse:
        return await self._read(
            wire.RejectResponse, "POST", "/connections/reject", json={"request_id": request_id}
        )

    async def connections(self) -> list[wire.Connection]:
        return (await self._read(wire.ConnectionList, "GET", "/connections")).connections

    async def revoke(self, peer: str) -> wire.RevokeResponse:
        return await self._read(wire.RevokeResponse, "DELETE", f"/connections/{peer}")

    async def block(self, agent_name: str) -> wire.Block:
        return await self._read(
            wire.Block, "POST", "/connections/blocks", json={"agent_name": agent_name}
        )

    async def unblock(self, agent_name: str) -> wire.UnblockResponse:
        return await self._read(wire.UnblockResponse, "DELETE", f"/connections/blocks/{agent_name}")

    async def blocks(self) -> list[wire.Block]:
        return (await self._read(wire.BlockList, "GET", "/connections/blocks")).blocks

    # --- messages -------------------------------------------------------------------
    async def send(
        self,
        to: str,
        content: str,
        *,
        subject: str | None = None,
        session_id: str | None = None,
        correlation_id: str | None = None,
        idempotency_key: str | None = None,
        encrypted: bool = False,
    ) -> wire.SendResponse:
        body: dict[str, object] = {"to": to, "content": content}
        optional = {
            "subject": subject,
            "session_id": session_id,
            "correlation_id": correlation_id,
            "idempotency_key": idempotency_key,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        if encrypted:
            body["encrypted"] = True
            body["encryption"] = {"algorithm": "openpgp", "format": "armored"}
        return await self._read(wire.SendResponse, "POST", "/messages/send", json=body)

    async def send_once(
        self,
        to: str,
        content: str,
        *,
        idempotency_key: str | None = None,
        **fields: Any,
    ) -> wire.SendResponse:
        """`send`, tried again once if the server could not be reached, under one
        idempotency key: a retry after a lost answer cannot send twice."""
        key = idempotency_key or uuid.uuid4().hex
        try:
            return await self.send(to, content, idempotency_key=key, **fields)
        except ServerUnreachable:
            return await self.send(to, content, idempotency_key=key, **fields)

    async def message(self, message_id: str) -> wire.Message:
        return await self._read(wire.Message, "GET", f"/messages/{message_id}")

    async def inbox(self, since: int | None = None, limit: int = 50) -> wire.Inbox:
        params: dict[str, str | int] = {"limit": limit}
        if since is not None:
            params["since"] = since
        return await self._read(wire.Inbox, "GET", "/inbox", params=params)

    async def ack(self, up_to_seq: int) -> wire.AckResponse:
        return await self._read(
            wire.AckResponse, "POST", "/inbox/ack", json={"up_to_seq": up_to_seq}
        )

    async def ack_ids(self, message_ids: list[str]) -> wire.AckResponse:
        return await self._read(
            wire.AckResponse, "POST", "/inbox/ack", json={"message_ids": message_ids}
        )

    async def sessions(self, limit: int = 50) -> list[wire.SessionSummary]:
        answer = await self._read(wire.SessionList, "GET", "/sessions", params={"limit": limit})
        return answer.sessions

    async def history(
        self, session_id: str, limit: int = 20, before: str | None = None
    ) -> wire.SessionHistory:
        params: dict[str, str | int] = {"limit": limit}
        if before:
            params["before"] = before
        return await self._read(
            wire.SessionHistory, "GET", f"/sessions/{session_id}/history", params=params
        )

    # --- directory ------------------------------------------------------------------
    async def publish_keys(
        self, public_key: str, algorithm: str, key_version: int, openpgp_public_key: str
    ) -> wire.DirectoryEntry:
        return await self._read(
            wire.DirectoryEntry,
            "POST",
            "/directory/register",
            json={
                "public_key": public_key,
                "algorithm": algorithm,
                "key_version": key_version,
                "openpgp_public_key": openpgp_public_key,
            },
        )

    async def public_agent(self, name: str) -> wire.DirectoryEntry:
        return await self._read(wire.DirectoryEntry, "GET", f"/public/agents/{name}")
