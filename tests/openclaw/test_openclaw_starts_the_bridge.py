"""OpenClaw starts the stdio bridge itself, as the example config sets it up.

With the main session and two per-peer sessions running, three bridges of one
agent share a state dir; the lock elects one listener, so each message is
injected exactly once, and still after the listening bridge's session is reset
(main) and then deleted (a per-peer session): OpenClaw stops that bridge each
time and another takes over.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from mailbox_mcp.inbound.election import ListenerLock
from tests.helpers import Agent
from tests.mcp.conftest import bridge_env
from tests.openclaw.conftest import gateway_env, peer_of, requires_openclaw
from tests.openclaw.dedicated import (
    MAIN_SESSION,
    PEER_AGENT,
    arrived,
    configure,
    count_in,
    owner_turn,
    peer_session,
)
from tests.openclaw.gateway import RealGateway
from tests.openclaw.processes import bridge_pids
from tests.openclaw.quiet_windows import DUPLICATE_WINDOW
from tests.openclaw.scripted_model import ScriptedModel, Text
from tests.servers import ServerThread
from tests.waiting import assert_stays, wait_until

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

    # The owner's turn in main starts the first bridge, which listens. Main first: on
    # two cores OpenClaw 2026.9.6 now and then fails a main run that starts right after
    # a run of the other agent, and every main run after it ("Agent database cleanup
    # failed"), until the gateway restarts.
    owner_turn(gateway, MAIN_SESSION, "the owner says hello")
    [first] = wait_until(lambda: bridge_pids(state), within=90, what="the first bridge")
    wait_until(lambda: lock.holder_pid() == first, within=20, what="the first bridge to listen")
    # Its listener injects each peer's first message; each run starts a bridge (one
    # at a time: a run may fail while another session's MCP relays start).
    session_of = {first: MAIN_SESSION}
    for peer, key in ((one, key_one), (two, key_two)):
        before = set(bridge_pids(state))
        peer.send(me, f"warm-up-{peer.name}", subject="hi")
        wait_until(
            arrived(gateway, key, [f"warm-up-{peer.name}", "noted"]),
            within=90,
            what=f"a run in {key}",
            every=0.2,
        )
        [started] = wait_until(
            lambda before=before: set(bridge_pids(state)) - before,
            within=90,
            what=f"a bridge for {key}",
        )
        session_of[started] = key
    assert sorted(session_of) == bridge_pids(state)  # three bridges of one agent
    assert lock.holder_pid() == first

    def round_of_mail(label: str) -> dict[str, list[str]]:
        lines: dict[str, list[str]] = {key_one: [], key_two: []}
        for i in range(4):
            for peer, key in ((one, key_one), (two, key_two)):
                text = f"{label}-{i}-{peer.name}-{uuid.uuid4().hex[:6]}"
                peer.send(me, text, subject=label)
                lines[key].append(text)
        for key, sent in lines.items():
            wait_until(arrived(gateway, key, sent), within=90, what=f"{label} in {key}", every=0.2)
        assert_stays(  # a duplicate would land now
            lambda: all(
                n <= 1 for key, sent in lines.items() for n in count_in(gateway, key, sent).values()
            ),
            for_seconds=DUPLICATE_WINDOW,
            what="each message injected once",
            every=0.5,  # each look reads both sessions' histories
        )
        return lines

    first_round = round_of_mail("before")
    for key, sent in first_round.items():
        assert count_in(gateway, key, sent) == dict.fromkeys(sent, 1), key

    # The listener's session goes: resetting main retires its MCP servers, so its bridge
    # stops and another takes over; then the new listener's session is deleted.
    admin = ("operator.read", "operator.write", "operator.admin")
    gateway.rpc("sessions.reset", {"key": MAIN_SESSION}, scopes=admin)
    wait_until(
        lambda: first not in bridge_pids(state), within=30, what="OpenClaw to stop main's bridge"
    )
    others = set(session_of) - {first}
    heir = wait_until(lock.holder_pid, lambda pid: pid in others, within=10, what="a takeover")
    assert heir is not None  # it is one of the others
    deleted = session_of[heir]
    gateway.rpc("sessions.delete", {"key": deleted, "deleteTranscript": True}, scopes=admin)
    wait_until(
        lambda: heir not in bridge_pids(state),
        within=30,
        what=f"OpenClaw to stop {deleted}'s bridge",
    )
    [last] = others - {heir}
    wait_until(lambda: lock.holder_pid() == last, within=10, what="the last bridge to take over")

    second_round = round_of_mail("after")
    for key, sent in second_round.items():
        assert count_in(gateway, key, sent) == dict.fromkeys(sent, 1), key
    # the deleted session was made again, fresh: none of the first round is in it
    assert count_in(gateway, deleted, first_round[deleted]) == dict.fromkeys(
        first_round[deleted], 0
    )
    main = gateway.history(MAIN_SESSION)
    assert not any(name in text for text in main.texts for name in (one.name, two.name))
