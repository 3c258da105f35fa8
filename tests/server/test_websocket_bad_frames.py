"""`/ws` under bad frames: each ends in an error frame or a close code, never in a
traceback in the server's log or a socket left open and silent (issue 13)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from websockets.exceptions import ConnectionClosed

from mailbox_wire import MAX_SEQ
from tests.helpers import Socket, connect_agents, register
from tests.servers import ServerThread

DEEP = "[" * 30_000


class _Tracebacks(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or "Traceback" in record.getMessage():
            self.records.append(record)


@pytest.fixture
def tracebacks() -> Iterator[list[logging.LogRecord]]:
    """Every log record with a traceback, from the server and from uvicorn, during the test."""
    handler = _Tracebacks()
    # uvicorn's loggers do not propagate to the root, so listen on them directly.
    loggers = [logging.getLogger(name) for name in ("server", "uvicorn", "uvicorn.error")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


def _closed_with(ws: Socket) -> int | None:
    with pytest.raises(ConnectionClosed):
        while True:
            ws.recv(timeout=8)
    return ws.conn.close_code


def test_a_deeply_nested_first_frame_is_closed_with_4001(
    server: ServerThread, tracebacks: list[logging.LogRecord]
) -> None:
    with Socket(server.ws_url) as ws:
        ws.conn.send(DEEP)
        assert _closed_with(ws) == 4001
    assert tracebacks == []


def test_a_since_past_the_largest_seq_is_closed_with_4001(
    server: ServerThread, tracebacks: list[logging.LogRecord]
) -> None:
    b = register(server.url)
    for since in (2**63, MAX_SEQ + 1, 10**40):
        with Socket(server.ws_url) as ws:
            ws.send({"type": "auth", "api_key": b.api_key, "since": since})
            assert _closed_with(ws) == 4001
    assert tracebacks == []


def test_a_binary_frame_after_auth_is_closed_with_1003(
    server: ServerThread, tracebacks: list[logging.LogRecord]
) -> None:
    b = register(server.url)
    with Socket(server.ws_url) as ws:
        ws.auth(b.api_key)
        ws.conn.send(b'{"type":"ping"}')
        assert _closed_with(ws) == 1003
    assert tracebacks == []


def test_a_binary_first_frame_is_closed_with_4001(
    server: ServerThread, tracebacks: list[logging.LogRecord]
) -> None:
    b = register(server.url)
    with Socket(server.ws_url) as ws:
        ws.conn.send(f'{{"type":"auth","api_key":"{b.api_key}"}}'.encode())
        assert _closed_with(ws) == 4001
    assert tracebacks == []


def test_a_deeply_nested_frame_after_auth_gets_an_error_and_the_socket_goes_on(
    server: ServerThread, tracebacks: list[logging.LogRecord]
) -> None:
    a, b = register(server.url), register(server.url)
    connect_agents(a, b)
    with Socket(server.ws_url) as ws:
        ws.auth(b.api_key)
        ws.conn.send(DEEP)
        assert ws.recv_type("error")["error"] == "validation_error"
        sent = a.send(b, "still here")
        assert ws.recv_type("message")["message"]["message_id"] == sent["message_id"]
    assert tracebacks == []
