"""OpenClaw starts the stdio bridge itself, as the example config sets it up.

With the main session and two per-peer sessions running, three bridges of one
agent share a state dir; the lock elects one listener, so each message is
injected exactly once, and still after the listening bridge's session is deleted
(OpenClaw then stops that bridge and another takes over).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from mailbox_mcp.election import ListenerLock
from tests.helpers import Agent
from tests.mcp.conftest import bridge_env
from tests.openclaw.conftest import gateway_env, peer_of, requires_openclaw
from tests.openclaw.dedicated import (
    MAIN_SESSION,
    PEER_AGENT,
    QUIET_WINDOW,
    arrived,
    configure,
    count_in,
    owner_turn,
    peer_session,
    wait_until,
)
from tests.openclaw.gateway import RealGateway
from tests.openclaw.processes import bridge_pids
from tests.openclaw.scripted_model import ScriptedModel, Text
from tests.servers import ServerThread

pytestmark = [requires_openclaw, pytest.mark.openclaw, pytest.mark.timeout(420)]


def test_each_message_is_injected_once_with_three_bridges_and_after_the_listener_goes(
    scripted_gateway: RealGateway,
    model: ScriptedModel,
    mailbox: ServerThread,
    me: Agent,
    tmp_path: Path,
) -> None:
    gateway = scripted_gateway
    one, two = peer_of(mailbox, me, "pone"), peer_of(mailbox, me, "ptwo")
    key_one, key_two = peer_session(one), peer_session(two)
    state = tmp_path / "bridge-state"
    state.mkdir(mode=0o700)  # as `mailbox-mcp register` leaves it: the bridges' cwd
    env = bridge_env(mailbox, me, state, OPENCLAW_AGENT_ID=PEER_AGENT, **gateway_env(gateway))
    configure(gateway, env, tmp_path)
    model.script = lambda request: Text("noted")
    lock = ListenerLock(state, me.agent_id)  # one listener per mailbox agent

    # The first bridge: the owner opens the session for peer one, so it runs there.
    owner_turn(gateway, key_one, "the owner says hello")
    [first] = wait_until(lambda: bridge_pids(state), 90, "the first bridge")
    wait_until(lambda: lock.holder_pid() == first, 20, "the first bridge to listen")
    # Its listener injects peer two's mail; that run starts the second bridge; the
    # owner's turn in main starts the third.
    # One run at a time while the bridges start: OpenClaw 2026.9.6 may fail a run
    # that starts while another session's MCP relays are starting (see owner_turn).
    two.send(me, "warm-up", subject="hi")
    wait_until(arrived(gateway, key_two, ["warm-up", "noted"]), 90, f"the run in {key_two}")
    wait_until(lambda: len(bridge_pids(state)) == 2, 90, "the second bridge")
    owner_turn(gateway, MAIN_SESSION, "the owner again")
    bridges = wait_until(
        lambda: len(bridge_pids(state)) == 3 and bridge_pids(state), 90, "the third bridge"
    )
    assert lock.holder_pid() == first

    def round_of_mail(label: str) -> dict[str, list[str]]:
        lines: dict[str, list[str]] = {key_one: [], key_two: []}
        for i in range(4):
            for peer, key in ((one, key_one), (two, key_two)):
                text = f"{label}-{i}-{peer.name}-{uuid.uuid4().hex[:6]}"
                peer.send(me, text, subject=label)
                lines[key].append(text)
        for key, sent in lines.items():
            wait_until(arrived(gateway, key, sent), 90, f"{label} in {key}")
        time.sleep(QUIET_WINDOW)  # a duplicate would land now
        return lines

    first_round = round_of_mail("before")
    for key, sent in first_round.items():
        assert count_in(gateway, key, sent) == dict.fromkeys(sent, 1), key

    # The listening session goes: OpenClaw stops its bridge, another one takes over.
    gateway.rpc(
        "sessions.delete",
        {"key": key_one, "deleteTranscript": True},
        scopes=("operator.read", "operator.write", "operator.admin"),
    )
    wait_until(lambda: first not in bridge_pids(state), 30, "OpenClaw to stop the first bridge")
    heir = wait_until(lambda: lock.holder_pid() in bridges[1:] and lock.holder_pid(), 10, "heir")
    assert heir in bridge_pids(state)

    second_round = round_of_mail("after")
    for key, sent in second_round.items():
        assert count_in(gateway, key, sent) == dict.fromkeys(sent, 1), key
    # peer one's session was made again, fresh: none of the first round is in it
    assert count_in(gateway, key_one, first_round[key_one]) == dict.fromkeys(
        first_round[key_one], 0
    )
    main = gateway.history(MAIN_SESSION)
    assert not any(name in text for text in main.texts for name in (one.name, two.name))
