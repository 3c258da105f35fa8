"""uvicorn's sans-I/O WebSocket protocol, with an end for peers that stop reading.

Stock uvicorn waits for the peer to drain the send buffer before it writes a
close frame, and when the closing handshake or a ping times out it closes the
transport gracefully, which waits for that buffer to be flushed. A peer that
never reads therefore keeps its socket, its buffers and its handler forever
(issue 13: pings did not drop them). Here:

- a close frame is written at once, behind whatever is buffered (a slow reader
  still finds it, after the frames before it), and the handler is told the
  socket is closed without waiting;
- a peer that has not completed the closing handshake within `close_timeout`,
  or has not answered a ping in time while data waits for it, is cut off
  (`transport.abort()`: the buffer is dropped, not flushed).

Nothing is lost by cutting a peer off: the database is the source of truth, and
what it did not acknowledge is replayed on its next connection.

And acks are taken where they arrive. The bridge sends one `ack` frame per
message, as many as there are sends; handed to the app, each costs a queue
hop, a task wake-up and a pause and resume of the socket's reading (uvicorn
pauses after every frame until the app takes it). Once the app has
authenticated the socket it puts `ACK_SINK` in the connection's scope: an ack
frame in the usual spelling then goes straight to it, unless the sink refuses
it (the socket's frame rate is spent), and then takes the app's path, which
waits for the rate. Any other frame takes the app's path as before; frames
reach the app in the order they came, acks only earlier, which the ack buffer
does not mind (the watermark only moves forward).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, cast

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState

__all__ = ["ACK_SINK", "MailboxWebSocketProtocol"]

# The scope key of the authenticated socket's ack sink: up_to_seq in, True if taken.
ACK_SINK = "mailbox.ack_sink"
AckSink = Callable[[int], bool]

# An ack as clients write it (compact, or with json.dumps' default spaces), read without
# the JSON parser; here on the frame's bytes, in `server/api/ws.py` on its text.
ACK_PATTERN = r'\{"type": ?"ack", ?"up_to_seq": ?(0|[1-9][0-9]{0,17})\}'
ACK_FRAME = re.compile(ACK_PATTERN.encode())


class MailboxWebSocketProtocol(WebSocketsSansIOProtocol):
    def send_receive_event_to_app(self) -> None:
        sink = cast("AckSink | None", self.scope.get(ACK_SINK))
        if sink is not None and self.curr_msg_data_type == "text" and len(self.frames) == 1:
            ack = ACK_FRAME.fullmatch(self.frames[0])
            if ack is not None and not self.close_sent and sink(int(ack[1])):
                self.frames = []
                return
        super().send_receive_event_to_app()

    async def send(self, message: Any) -> None:
        if message["type"] == "websocket.close" and self._open_for_close():
            self._close_now(message.get("code", 1000), message.get("reason") or "")
            return
        await super().send(message)

    def _open_for_close(self) -> bool:
        return (
            self.handshake_complete
            and self.initial_response is None
            and not self.close_sent
            and not self.disconnected
        )

    def _close_now(self, code: int, reason: str) -> None:
        # uvicorn's own close, minus its wait for the buffer to drain, and with a cut-off
        # instead of a graceful close when the peer does not answer.
        if self.transport.is_closing():
            return
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        try:
            self.conn.send_close(code, reason)
        except InvalidState:
            raise ClientDisconnected() from None
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        self.close_timer = self.loop.call_later(self.close_timeout, self._cut_off)

    def _cut_off(self) -> None:
        self.close_timer = None
        self.transport.abort()

    def keepalive_timeout(self) -> None:
        super().keepalive_timeout()
        # uvicorn closed gracefully; with data still buffered for a peer that does not
        # read, that close would wait for it forever.
        if self.transport.get_write_buffer_size():
            self.transport.abort()
