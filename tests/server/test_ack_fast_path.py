"""Acks taken where they arrive (server/ws_protocol.py): an `ack` frame goes straight
to the ack buffer instead of queueing behind the frames before it for the app.

Seen from outside: a ping and an ack read together. The app answers the ping after
writing every ack it holds; an ack queued behind the ping would not be among them
(the timer that writes acks otherwise is set to a minute here), one taken at once is.
"""

from __future__ import annotations

import asyncio
import json
import time

from server.db import Database
from server.services import ack_store
from server.settings import Settings
from tests.helpers import connect_agents, register
from tests.server.raw_ws import TEXT, RawSocket
from tests.servers import ServerThread, server_settings


def test_an_ack_read_with_a_ping_is_written_before_the_pong(fresh_database_url: str) -> None:
    settings = server_settings(fresh_database_url, MAILBOX_ACK_FLUSH_SECONDS=60)
    with ServerThread(settings) as server:
        a, b = register(server.url, "alice"), register(server.url, "bob")
        connect_agents(a, b)
        for i in range(3):
            a.send(b, f"m{i}")
        with RawSocket(server.ws_url, receive_buffer=1 << 16) as ws:
            assert ws.auth(b.api_key)["type"] == "auth_ok"
            deadline = time.monotonic() + 10
            seqs = [_next_json(ws, deadline)["message"]["seq"] for _ in range(3)]
            assert seqs == [1, 2, 3]
            ws.send_texts_at_once('{"type":"ping"}', '{"type":"ack","up_to_seq":3}')
            assert _next_json(ws, deadline) == {"type": "pong"}
            written = asyncio.run(_watermark(settings, b.agent_id))
    assert written == 3


def _next_json(ws: RawSocket, deadline: float) -> dict[str, object]:
    opcode, payload = ws.next_frame(deadline)
    assert opcode == TEXT, (opcode, payload)
    frame = json.loads(payload)
    assert isinstance(frame, dict)
    return frame


async def _watermark(settings: Settings, agent_id: str) -> int:
    """Read from the database itself: every server path would write pending acks first."""
    database = Database(settings)
    try:
        async with database.read() as conn:
            return await ack_store.watermark(conn, agent_id)
    finally:
        await database.dispose()
