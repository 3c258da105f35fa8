"""Two server processes on one PostgreSQL (contract §10): what one does, the other knows.

Each test runs two real `python -m server` processes on one migrated database and
drives them with real clients: a change made through one is in effect on the other
within the bound (1 s), a send on one reaches a socket on the other live, the
newest socket of an agent wins wherever it is, and a process whose listener was cut
catches up from the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from server.cipher import Cipher, parse_keys
from server.cluster import COUNT_SECONDS, LISTENER_NAME
from server.db import Database
from server.services import message_store
from server.settings import Settings
from tests.helpers import Agent, Socket, _open_clients, connect_agents, register
from tests.servers import (
    POSTGRES_ADMIN_URL,
    ServerProcess,
    ServersBehindProxy,
    free_port,
    migrate,
    postgres_database,
    server_env,
    server_settings,
    sqlite_url,
)
from tests.waiting import wait_until

STALENESS_BOUND = 1.0  # contract §10


@dataclass
class Pair:
    a: ServerProcess
    b: ServerProcess
    database: str


@pytest.fixture
def two(postgres_available: None) -> Iterator[Pair]:
    with postgres_database() as url:
        migrate(url)
        first = server_settings(url)
        # The same database, the same keys; its own port.
        second = server_settings(url, MAILBOX_ENCRYPTION_KEY=first.encryption_key)
        with ServerProcess(first) as a, ServerProcess(second) as b:
            yield Pair(a, b, url.rsplit("/", 1)[1])


def on(agent: Agent, server: ServerProcess) -> Agent:
    """The same agent, talking to another process."""
    http = httpx.Client(base_url=server.url, timeout=10)
    _open_clients.append(http)
    return replace(agent, http=http)


def close_code(socket: Socket) -> int | None:
    with pytest.raises(ConnectionClosed):
        while True:
            socket.recv(timeout=8)
    return socket.conn.close_code


def test_a_connection_approved_on_one_process_lets_a_send_through_on_the_other(
    two: Pair,
) -> None:
    a, b = register(two.a.url, "alice"), register(two.a.url, "bob")
    refused = a.post("/messages/send", {"to": b.name, "content": "x", "subject": "s"})
    assert refused.status_code == 403  # and "not connected" is now known on process A
    connect_agents(on(a, two.b), on(b, two.b))

    def sends() -> bool:
        response = a.post("/messages/send", {"to": b.name, "content": "hi", "subject": "s"})
        return response.status_code == 201

    wait_until(sends, within=STALENESS_BOUND, what="a send on A, once connected on B", every=0.01)


def test_a_revoke_on_one_process_stops_sends_on_the_other_within_the_bound(two: Pair) -> None:
    a, b = register(two.a.url, "alice"), register(two.a.url, "bob")
    connect_agents(a, b)
    a.send(b, "known to be connected on A")
    assert on(a, two.b).delete(f"/connections/{b.name}").status_code == 200

    def refused() -> bool:
        response = a.post("/messages/send", {"to": b.name, "content": "x", "subject": "s"})
        return response.status_code == 403

    wait_until(
        refused, within=STALENESS_BOUND, what="sends refused on A, once revoked on B", every=0.01
    )


def test_a_rotated_key_is_dead_on_every_process_and_its_sockets_closed(two: Pair) -> None:
    agent = register(two.a.url)
    old_on_b = on(agent, two.b)
    assert old_on_b.get("/agents/me").status_code == 200  # the key is cached on B
    with Socket(two.b.ws_url) as socket:
        assert socket.auth(agent.api_key)["type"] == "auth_ok"
        rotated = agent.post("/agents/me/rotate-key")
        assert rotated.status_code == 200
        wait_until(
            lambda: old_on_b.get("/agents/me").status_code == 401,
            within=STALENESS_BOUND,
            what="the old key refused on B",
            every=0.01,
        )
        assert close_code(socket) == 4001
    fresh = replace(old_on_b, api_key=rotated.json()["api_key"])
    assert fresh.get("/agents/me").status_code == 200


def test_a_send_on_one_process_reaches_a_socket_on_the_other_live_in_order(two: Pair) -> None:
    a, b = register(two.a.url, "alice"), register(two.a.url, "bob")
    connect_agents(a, b)
    via_b = on(a, two.b)
    with Socket(two.b.ws_url) as socket:
        assert socket.auth(b.api_key)["type"] == "auth_ok"
        sent = [(a if i % 2 else via_b).send(b, f"m{i}")["seq"] for i in range(40)]
        seen = [socket.recv_type("message")["message"]["seq"] for _ in sent]
    assert seen == sorted(sent) == list(range(1, 41))


def test_the_newest_socket_of_an_agent_wins_across_processes(two: Pair) -> None:
    a, b = register(two.a.url, "alice"), register(two.a.url, "bob")
    connect_agents(a, b)
    with Socket(two.a.ws_url) as older:
        assert older.auth(b.api_key)["type"] == "auth_ok"
        with Socket(two.b.ws_url) as newer:
            assert newer.auth(b.api_key)["type"] == "auth_ok"
            assert close_code(older) == 4000
            sent = a.send(b, "to the newest")
            assert newer.recv_type("message")["message"]["message_id"] == sent["message_id"]


def test_a_process_whose_listener_was_cut_catches_up_from_the_database(two: Pair) -> None:
    a, b = register(two.a.url, "alice"), register(two.a.url, "bob")
    connect_agents(a, b)
    with Socket(two.b.ws_url) as socket:
        assert socket.auth(b.api_key)["type"] == "auth_ok"
        # Cut every listener: notifications sent now reach nobody.
        assert asyncio.run(_terminate_listeners(two.database)) >= 2
        sent = [a.send(b, f"while cut {i}")["seq"] for i in range(5)]
        seen = [socket.recv_type("message", timeout=10)["message"]["seq"] for _ in sent]
    assert seen == sent


async def _terminate_listeners(database: str) -> int:
    conn = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        return len(
            await conn.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = $1 AND application_name = $2",
                database,
                LISTENER_NAME,
            )
        )
    finally:
        await conn.close()


def test_workers_share_one_port_and_deliver_across_each_other(postgres_available: None) -> None:
    with postgres_database() as url:
        migrate(url)
        settings = server_settings(url, MAILBOX_WORKERS=2)
        with ServerProcess(settings) as server:
            a, b = register(server.url, "alice"), register(server.url, "bob")
            connect_agents(a, b)
            with Socket(server.ws_url) as socket:
                assert socket.auth(b.api_key)["type"] == "auth_ok"
                sent = []
                for i in range(30):
                    # A new connection per send: the kernel spreads them over the workers.
                    with httpx.Client(base_url=server.url, timeout=10) as fresh:
                        response = fresh.post(
                            "/messages/send",
                            json={"to": b.name, "content": f"m{i}", "subject": "s"},
                            headers=a.auth,
                        )
                    assert response.status_code == 201, response.text
                    sent.append(response.json()["seq"])
                seen = [socket.recv_type("message")["message"]["seq"] for _ in sent]
            assert seen == sent
            listeners = asyncio.run(_count_listeners(url.rsplit("/", 1)[1]))
            assert listeners == 2, "each worker listens to the others"


async def _count_listeners(database: str) -> int:
    conn = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = $1 AND application_name = $2",
                database,
                LISTENER_NAME,
            )
        )
    finally:
        await conn.close()


def test_workers_on_sqlite_are_refused_with_the_fix(tmp_path: Path) -> None:
    settings = server_settings(sqlite_url(tmp_path), MAILBOX_WORKERS=2)
    result = subprocess.run(
        [sys.executable, "-m", "server"],
        env=server_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--workers needs PostgreSQL" in result.stderr


def test_the_per_key_rate_is_shared_between_the_processes(postgres_available: None) -> None:
    with postgres_database() as url:
        migrate(url)
        # A burst of 10 and almost no refill: two processes allow 5 each.
        first = server_settings(url, MAILBOX_REQUEST_BURST=10, MAILBOX_REQUESTS_PER_SECOND=0.001)
        second = first.model_copy(update={"port": free_port()})
        with ServerProcess(first) as a, ServerProcess(second):

            def allowed_per_fresh_key() -> int:
                agent = register(a.url)
                return next(
                    (n for n in range(12) if agent.get("/agents/me").status_code == 429), 12
                )

            # Each process counts the listeners every few seconds; then each allows half.
            wait_until(
                lambda: allowed_per_fresh_key() == 5,
                within=3 * COUNT_SECONDS,
                what="5 allowed per fresh key",
                every=0.01,
            )


class Receiver(threading.Thread):
    """A recipient as the bridge is: a socket through the proxy that acknowledges every
    message and reconnects (to whichever process the proxy picks) when it is cut."""

    def __init__(self, ws_url: str, api_key: str) -> None:
        super().__init__(daemon=True)
        self.ws_url, self.api_key = ws_url, api_key
        self.ids: set[str] = set()
        self.connections = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            # Whatever ends a connection (a cut socket, a handshake with a dying
            # process), the bridge connects again.
            with contextlib.suppress(Exception):
                self._listen()

    def _listen(self) -> None:
        with connect(self.ws_url, open_timeout=5) as ws:
            ws.send(json.dumps({"type": "auth", "api_key": self.api_key}))
            if json.loads(ws.recv(timeout=5))["type"] != "auth_ok":
                return
            self.connections += 1
            while not self.done.is_set():
                try:
                    frame = json.loads(ws.recv(timeout=0.2))
                except TimeoutError:
                    continue
                if frame["type"] == "message":
                    self.ids.add(frame["message"]["message_id"])
                    ws.send(json.dumps({"type": "ack", "up_to_seq": frame["message"]["seq"]}))


def test_a_killed_process_loses_no_acknowledged_message(postgres_available: None) -> None:
    with postgres_database() as url:
        migrate(url)
        with ServersBehindProxy(server_settings(url)) as servers:
            pairs = []
            for _ in range(4):
                a, b = register(servers.url, "alice"), register(servers.url, "bob")
                connect_agents(a, b)
                pairs.append((a, b))
            receivers = [Receiver(servers.ws_url, b.api_key) for _, b in pairs]
            for receiver in receivers:
                receiver.start()
            acknowledged: dict[int, set[str]] = {i: set() for i in range(len(pairs))}
            try:
                for n in range(200):
                    if n == 100:
                        servers.processes[0].kill()  # SIGKILL, mid-load
                    index = n % len(pairs)
                    a, b = pairs[index]
                    with contextlib.suppress(httpx.HTTPError):
                        response = a.post(
                            "/messages/send", {"to": b.name, "content": f"m{n}", "subject": "s"}
                        )
                        if response.status_code == 201:  # acknowledged: it must arrive
                            acknowledged[index].add(response.json()["message_id"])
                assert sum(len(ids) for ids in acknowledged.values()) >= 100
                wait_until(
                    lambda: all(acknowledged[i] <= r.ids for i, r in enumerate(receivers)),
                    within=30,
                    what="every acknowledged message received",
                    every=0.01,
                )
            finally:
                for receiver in receivers:
                    receiver.done.set()
                for receiver in receivers:
                    receiver.join(10)
            # The sockets that were on the killed process came back through the other one.
            assert any(receiver.connections >= 2 for receiver in receivers)


def test_a_message_whose_notice_was_lost_still_reaches_the_socket(two: Pair) -> None:
    """A batch of notices goes out after the commit, so a process killed in between
    loses it; here a message is written with no notice at all (as that process did),
    and the other process's socket gets it from the sweep within about a second."""
    a, b = register(two.a.url, "alice"), register(two.a.url, "bob")
    connect_agents(a, b)
    with Socket(two.b.ws_url) as socket:
        assert socket.auth(b.api_key)["type"] == "auth_ok"
        message_id = asyncio.run(_store_without_notice(two.a.settings, a, b, "never told"))
        frame = socket.recv_type("message", timeout=5)
    assert frame["message"]["message_id"] == message_id
    assert frame["message"]["content"] == "never told"


async def _store_without_notice(settings: Settings, sender: Agent, to: Agent, text: str) -> str:
    assert settings.encryption_key is not None
    cipher = Cipher(parse_keys(settings.encryption_key.get_secret_value()))
    database = Database(settings)
    low, high = sorted((sender.agent_id, to.agent_id))
    message_id = str(uuid.uuid4())
    try:
        await message_store.store(
            database,
            message_store.NewMessage(
                message_id=message_id,
                sender_id=sender.agent_id,
                recipient_id=to.agent_id,
                session_id=str(uuid.uuid4()),
                content_encrypted=cipher.encrypt(text),
                correlation_id_encrypted=None,
                encrypted=False,
                encryption=None,
                created_at=datetime.now(UTC),
                new_session_subject=cipher.encrypt("lost notice"),
                session_low_id=low,
                session_high_id=high,
            ),
        )
    finally:
        await database.dispose()
    return message_id
