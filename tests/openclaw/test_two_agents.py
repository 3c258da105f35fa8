"""Two agents talk: two real gateways, bridges started by OpenClaw, one mailbox server.

A's owner asks in A's main session; A's model calls ``mailbox__mailbox_send`` (behind
tool search) through OpenClaw; B's fenced per-peer session gets the envelope verbatim;
B's model answers with ``mailbox__mailbox_reply`` and the envelope's ``reply_token`` (its
only mailbox tool); A's per-peer session for B gets the answer, in the same conversation.
Neither main session sees the other agent's text.

Setup: the dedicated ``mailbox`` agent (``openclaw_dedicated_config``) on both sides,
stdio bridges that OpenClaw starts from ``mcp.servers.mailbox``.
"""

from __future__ import annotations

import json
import re
import uuid

import pytest

from mailbox_mcp.inbound import envelope
from tests.openclaw.conftest import requires_openclaw
from tests.openclaw.quiet_windows import REPLY_BACK_WINDOW
from tests.openclaw.scripted_model import ModelRequest, Reply, Text, ToolCall
from tests.openclaw.two_agents import (
    MAIN_SESSION,
    Side,
    envelope_reply_token,
    reply_call,
    send_call,
)
from tests.waiting import assert_stays

pytestmark = [requires_openclaw, pytest.mark.openclaw, pytest.mark.timeout(480)]


def tool_output(request: ModelRequest) -> str:
    """What the tool call before this request answered (the messages after the call)."""
    messages = request.messages
    last_call = max(i for i, m in enumerate(messages) if m.get("tool_calls"))
    return json.dumps(messages[last_call + 1 :])


def last_nonce(request: ModelRequest) -> str:
    """The nonce of the last envelope in a request."""
    return re.findall(r"\[BEGIN AGENT_MSG_([A-Za-z0-9]+)\]", request.text())[-1]


def test_two_agents_talk_through_openclaw_and_the_mains_see_nothing(
    sides: tuple[Side, Side],
) -> None:
    a, b = sides
    tag = uuid.uuid4().hex[:8]
    question, answer = f"question-{tag}-from-alice", f"answer-{tag}-from-bob"
    subject = f"Hi {tag}"
    a_key, b_key = a.peer_key(b), b.peer_key(a)

    # Each model calls the send tool once, then answers in text: the turn after a tool
    # result does not end in a role "tool" message in OpenClaw's request (a model keyed
    # on that looped, 160 sends in one run), so the scripts keep their own state.
    done: set[str] = set()

    def a_script(request: ModelRequest) -> Reply:
        if request.session == MAIN_SESSION and tag in request.text() and "a" not in done:
            done.add("a")
            return ToolCall("tool_call", send_call(b.agent.name, question, subject=subject))
        return Text(f"ok-{tag}")

    def b_script(request: ModelRequest) -> Reply:
        token = envelope_reply_token(request)
        if request.session == b_key and token and "b" not in done:
            done.add("b")
            return ToolCall("tool_call", reply_call(token, answer))
        return Text(f"ok-{tag}")

    a.model.script, b.model.script = a_script, b_script
    b.wake()  # B's listener must run before A's message can reach B's gateway
    a.ask(f"Please ask {b.agent.name} this: {question} (request {tag})")

    a.model.wait_for(
        lambda rs: any(r.session == a_key for r in rs), 180, f"A: a run in {a_key} (the answer)"
    )

    def no_stray_turn() -> bool:
        """Only the runs the test expects, each no more often than expected (a stray
        reply-back turn would be one more)."""
        a_sessions = [r.session for r in a.model.requests]
        b_sessions = [r.session for r in b.model.requests]
        return (
            set(a_sessions) <= {MAIN_SESSION, a_key}
            and set(b_sessions) <= {MAIN_SESSION, b_key}
            and a_sessions.count(a_key) <= 1
            and a_sessions.count(MAIN_SESSION) <= 2
            and b_sessions.count(b_key) <= 2
        )

    assert_stays(
        no_stray_turn, for_seconds=REPLY_BACK_WINDOW, what="no stray reply-back turn", every=0.2
    )
    a_requests, b_requests = a.model.requests, b.model.requests

    # A's main run called the send tool through OpenClaw, and it went through
    a_main = [r for r in a_requests if r.session == MAIN_SESSION]
    assert [type(r.reply) for r in a_main] == [ToolCall, Text], [
        (r.reply, r.last.get("role")) for r in a_main
    ]
    sent_result = tool_output(a_main[1])

    # B's per-peer run got the envelope verbatim, and answered with the reply tool
    b_peer = [r for r in b_requests if r.session == b_key]
    assert b_peer, [r.session for r in b_requests]
    first = b_peer[0]
    token = envelope_reply_token(first)
    assert token is not None, first.messages
    [asked] = b.agent.get("/sessions").json()["sessions"]
    sid = asked["session_id"]
    assert sid in sent_result, (sid, sent_result)
    incoming = envelope.wrap_incoming_message(
        from_agent=a.agent.name,
        subject=subject,
        content=question,
        session_id=sid,
        reply_token=token,
        nonce=last_nonce(first),
    )
    assert incoming in first.text(), first.messages
    assert first.reply == ToolCall("tool_call", reply_call(token, answer))
    assert [type(r.reply) for r in b_peer] == [ToolCall, Text], [r.reply for r in b_peer]
    answer_result = tool_output(b_peer[1])
    assert '"status": "sent"' in answer_result.replace('\\"', '"'), answer_result
    assert sid in answer_result, answer_result

    # A's per-peer session for B got the answer, in the same conversation, once
    a_peer = [r for r in a_requests if r.session == a_key]
    assert [type(r.reply) for r in a_peer] == [Text], [r.reply for r in a_peer]
    assert answer in a_peer[0].text()
    messages = a.agent.get(f"/sessions/{sid}/history").json()["messages"]
    assert [(m["from_agent"], m["content"]) for m in messages] == [
        (a.agent.name, question),
        (b.agent.name, answer),
    ], messages
    reply = envelope.wrap_incoming_message(
        from_agent=b.agent.name,
        subject=subject,
        content=answer,
        session_id=sid,
        reply_token=envelope_reply_token(a_peer[0]),
        nonce=last_nonce(a_peer[0]),
    )
    assert reply in a_peer[0].text(), a_peer[0].messages

    # only the expected sessions ran, and no main session saw the other agent's text
    assert {r.session for r in a_requests} == {MAIN_SESSION, a_key}
    assert {r.session for r in b_requests} == {MAIN_SESSION, b_key}
    assert not any(answer in r.text() for r in a_main), "A's main saw B's answer"
    for r in b_requests:
        if r.session == MAIN_SESSION:
            assert question not in r.text() and answer not in r.text(), r.messages
    for side, foreign in ((a, answer), (b, question)):
        main = side.gateway.history(MAIN_SESSION)
        assert not any(foreign in t for t in main.texts), (side.name, main.texts)
    assert not any(answer in t for t in b.gateway.history(MAIN_SESSION).texts)
