"""Two agents that answer every message stop by themselves at the ``bounded`` budget.

Two real gateways, bridges started by OpenClaw, one mailbox server with its per-pair
limit off (``server_settings``): what stops the exchange here is the bridges' own
budget (contract, section 9), not the server's backstop. Both sides' scripted models
answer every message that reaches their fenced per-peer session with
``mailbox__mailbox_reply`` and the envelope's token, as a model told to be helpful
would; nothing else in the setup stops them.

B's owner starts the conversation from B's main session (``mailbox__mailbox_send``,
the owner's set, not counted). Then the replies alternate, A first::

    B opens -> A1 -> B1 -> A2 -> B2 -> A3 -> B3 -> A4 (held: A's 3 are spent)

so A holds its 4th reply and B never gets a 4th message to answer. A's owner approves
A4 from the command line; it reaches B once, B's model answers it, and B's 4th reply
is held in turn (B's 3 are spent too): the exchange stops again.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.helpers import Agent
from tests.mcp.conftest import REPLY_LINE, run_owner
from tests.openclaw.conftest import requires_openclaw
from tests.openclaw.dedicated import count_in
from tests.openclaw.quiet_windows import EXCHANGE_HOP_WINDOW
from tests.openclaw.scripted_model import ModelRequest, Reply, Text, ToolCall
from tests.openclaw.two_agents import MAIN_SESSION, Side, reply_call, send_call
from tests.servers import ServerThread
from tests.waiting import assert_stays

pytestmark = [requires_openclaw, pytest.mark.openclaw, pytest.mark.timeout(900)]

# The bounded level's replies per conversation (mailbox_mcp/safety/autonomy.py).
PER_CONVERSATION = 3
_NONCE = re.compile(r"\[BEGIN AGENT_MSG_([A-Za-z0-9]+)\]\n(.*?)\n\[END AGENT_MSG_\1\]", re.S)
HELD = '"status": "held"'


def envelopes(request: ModelRequest) -> list[tuple[str, str]]:
    """(nonce, content) of each envelope a request carries, oldest first."""
    return _NONCE.findall(request.text())


def answer_every_message(
    side: Side, peer_key: str, tag: str
) -> tuple[Callable[[ModelRequest], Reply], list[str]]:
    """A script that answers each new envelope in ``peer_key`` once with the reply tool
    (keyed on the envelope's nonce: the turn after the tool call carries the same one)
    and says a short text otherwise. Returns the script and the list of its replies."""
    answered: list[str] = []
    replies: list[str] = []

    def script(request: ModelRequest) -> Reply:
        if request.session == peer_key:
            found = envelopes(request)
            tokens = REPLY_LINE.findall(request.text())
            if found and found[-1][0] not in answered:
                answered.append(found[-1][0])
                replies.append(f"{side.name}{len(replies) + 1}-{tag}")
                return ToolCall("tool_call", reply_call(tokens[-1], replies[-1]))
        return Text(f"ok-{tag}")

    return script, replies


def owner_env(side: Side, server_url: str) -> dict[str, str]:
    """What the owner's ``mailbox-mcp`` needs: the bridge's server, key and state dir."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MAILBOX_", "OPENCLAW_"))}
    return {
        **base,
        "MAILBOX_SERVER_URL": server_url,
        "MAILBOX_API_KEY": side.agent.api_key,
        "MAILBOX_STATE_DIR": str(side.state_dir),
    }


def held(side: Side, server_url: str) -> list[dict[str, Any]]:
    done = run_owner("review", "--json", env=owner_env(side, server_url))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def conversation(agent: Agent) -> tuple[str, list[dict[str, Any]]]:
    """The one conversation on the server, and its messages, oldest first."""
    [session] = agent.get("/sessions").json()["sessions"]
    sid = session["session_id"]
    return sid, agent.get(f"/sessions/{sid}/history", params={"limit": 100}).json()["messages"]


def said(messages: list[dict[str, Any]], sender: Agent) -> list[str]:
    return [m["content"] for m in messages if m["from_agent"] == sender.name]


def held_answer(key: str, after: int = 0) -> Callable[[list[ModelRequest]], bool]:
    """Has a run in ``key`` (among the requests from ``after`` on) been told that its
    reply was held?"""
    return lambda rs: any(r.session == key and HELD in r.text() for r in rs[after:])


def test_two_agents_that_answer_everything_stop_at_the_budget_and_an_approved_reply_arrives_once(
    sides: tuple[Side, Side], mailbox: ServerThread
) -> None:
    a, b = sides
    tag = uuid.uuid4().hex[:8]
    opener, subject = f"opener-{tag}-from-bob", f"Chat {tag}"
    a_key, b_key = a.peer_key(b), b.peer_key(a)
    a_script, a_replies = answer_every_message(a, a_key, tag)
    b_peer_script, b_replies = answer_every_message(b, b_key, tag)
    opened: list[bool] = []

    def b_script(request: ModelRequest) -> Reply:
        # B's owner asks once in main; B's model sends the opener with the owner's tool
        if request.session == MAIN_SESSION and tag in request.text() and not opened:
            opened.append(True)
            return ToolCall("tool_call", send_call(a.agent.name, opener, subject=subject))
        return b_peer_script(request)

    a.model.script, b.model.script = a_script, b_script
    a.wake()  # A's listener must run before B's opener can reach A's gateway
    b.ask(f"Please start a chat with {a.agent.name}: {opener} (request {tag})")

    # The exchange runs by itself until A's 4th reply is held, then stops.
    a.model.wait_for(held_answer(a_key), 480, "A: a reply held by the budget")

    def progress() -> tuple[int, int, int]:
        """How far the exchange went: messages on the server, replies each model made."""
        return len(conversation(b.agent)[1]), len(a_replies), len(b_replies)

    stopped_at = progress()
    assert_stays(  # a reply that got through anyway would arrive now
        lambda: progress() == stopped_at,
        for_seconds=EXCHANGE_HOP_WINDOW,
        what="the exchange stopped at A's held reply",
        every=0.5,
    )

    sid, messages = conversation(b.agent)
    assert said(messages, b.agent) == [opener, *b_replies], messages
    assert said(messages, a.agent) == a_replies[:PER_CONVERSATION], messages
    assert len(a_replies) == len(b_replies) + 1 == PER_CONVERSATION + 1, (a_replies, b_replies)
    [item] = held(a, mailbox.url)
    assert (item["direction"], item["peer"], item["session_id"], item["content"]) == (
        "outgoing",
        b.agent.name,
        sid,
        a_replies[-1],
    ), item
    assert held(b, mailbox.url) == []
    # the held answer reached A's model as an answer, not an error: status and id
    assert any(
        item["held_id"] in r.text() for r in a.model.requests_in(a_key) if HELD in r.text()
    ), [r.tool_results() for r in a.model.requests_in(a_key)]
    b_before = len(b.model.requests)

    # A's owner approves the held reply from the command line: it goes out once.
    approved = run_owner("review", "approve", item["held_id"], env=owner_env(a, mailbox.url))
    assert approved.returncode == 0, approved.stderr
    # approving again does nothing (and says so); the server's count below shows it
    again = run_owner("review", "approve", item["held_id"], env=owner_env(a, mailbox.url))
    assert "approved already: nothing done" in again.stdout, (again.stdout, again.stderr)
    # B's model answers it, and B's 4th reply is held in turn (B's 3 are spent)
    b.model.wait_for(held_answer(b_key, b_before), 180, "B: its answer to A4 held")
    stopped_at = progress()
    assert_stays(
        lambda: progress() == stopped_at,
        for_seconds=EXCHANGE_HOP_WINDOW,
        what="the exchange stopped at B's held reply",
        every=0.5,
    )

    _, messages = conversation(b.agent)
    assert said(messages, a.agent) == a_replies, messages  # A4 once, after A3
    assert said(messages, b.agent) == [opener, *b_replies[:PER_CONVERSATION]], messages
    assert len(b_replies) == PER_CONVERSATION + 1, b_replies
    # B's per-peer session got A4 exactly once: one envelope, one run that answered it
    b_envelopes = {n: c for r in b.model.requests_in(b_key) for n, c in envelopes(r)}
    assert list(b_envelopes.values()) == a_replies, b_envelopes
    assert count_in(b.gateway, b_key, [a_replies[-1]]) == {a_replies[-1]: 1}
    [b_item] = held(b, mailbox.url)
    assert (b_item["direction"], b_item["peer"], b_item["session_id"], b_item["content"]) == (
        "outgoing",
        a.agent.name,
        sid,
        b_replies[-1],
    ), b_item
    assert held(a, mailbox.url) == []

    # Neither main session saw any of the exchanged texts (B's main knows its opener).
    exchanged = [*a_replies, *b_replies]
    for side, foreign in ((a, [opener, *exchanged]), (b, exchanged)):
        for request in side.model.requests_in(MAIN_SESSION):
            text = request.text()
            assert not any(t in text for t in foreign), (side.name, request.messages)
        main = side.gateway.history(MAIN_SESSION)
        assert not any(t in text for t in foreign for text in main.texts), (side.name, main.texts)
