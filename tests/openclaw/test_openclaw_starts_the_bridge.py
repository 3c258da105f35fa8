"""OpenClaw itself runs the bridge, as the example config sets it up, on a real gateway.

Two shapes, both with the dedicated ``mailbox`` agent owning the peer sessions:

- ``url``: one ``mailbox-mcp serve`` process, which OpenClaw reaches through
  ``mcp.servers.mailbox.url`` with the bearer token in ``headers``. It listens from
  the start, so mail arrives before any session has run, and every session shares it.
- stdio: OpenClaw starts a bridge per session that runs. With the main session and
  two per-peer sessions running, three bridges of one agent share a state dir; the
  lock elects one listener, so each message is injected exactly once, and still
  after the listening bridge's session is deleted (OpenClaw then stops that bridge
  and another takes over).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpx
import pytest

from mailbox_mcp.election import ListenerLock
from mailbox_mcp.settings import BridgeSettings
from mailbox_mcp.snippets import openclaw_dedicated_config
from tests.helpers import Agent
from tests.mcp.conftest import MAILBOX_MCP, bridge_env, running
from tests.openclaw.conftest import gateway_env, peer_of, requires_openclaw
from tests.openclaw.gateway import GatewayHarnessError, RealGateway
from tests.openclaw.processes import bridge_pids, tree
from tests.openclaw.scripted_model import ModelRequest, Reply, ScriptedModel, Text, ToolCall
from tests.openclaw.two_agents import gateway_pid, send_call
from tests.servers import ServerThread, free_port

pytestmark = [requires_openclaw, pytest.mark.openclaw, pytest.mark.timeout(420)]

PEER_AGENT = "mailbox"
MAIN_SESSION = "agent:main:main"
# Long enough for a second injection of the same message to show (a retry, or a
# second listener): the bridges' retry backoff here is 0.05-0.3 s.
QUIET_WINDOW = 4.0


def peer_session(peer: Agent) -> str:
    return f"agent:{PEER_AGENT}:dm:mailbox-{peer.name}"


def configure(gateway: RealGateway, env: dict[str, str], workdir: Path, **serve: Any) -> None:
    """What ``mailbox-mcp config openclaw`` prints (with real paths and secrets) for
    ``env``, applied to the running gateway; the previous ``mailbox`` entry goes first,
    so a stdio entry and a url entry never merge."""
    settings = BridgeSettings(**env)  # type: ignore[arg-type]
    (workdir / "workspace-main").mkdir(parents=True, exist_ok=True)
    config = openclaw_dedicated_config(
        settings,
        include_key=True,
        workspace=str(workdir / "workspace-mailbox"),
        main_workspace=str(workdir / "workspace-main"),
        **serve,
    )
    config.pop("gateway")  # the test gateway already binds loopback
    gateway.cli("mcp", "unset", "mailbox", check=False)
    gateway.cli("config", "patch", "--stdin", stdin=json.dumps(config))


def wait_until(check: Callable[[], Any], within: float, what: str, every: float = 0.2) -> Any:
    deadline = time.monotonic() + within
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {within:.0f} s for {what}")
        time.sleep(every)


def owner_turn(gateway: RealGateway, session_key: str, message: str, within: float = 60) -> None:
    """The owner starts a run in ``session_key`` (made first if new). The dedicated
    agent's entry applies when the config watcher has seen it: retried until then."""

    def start() -> bool:
        try:
            if session_key != MAIN_SESSION:
                agent_id = session_key.split(":")[1]
                gateway.rpc("sessions.create", {"key": session_key, "agentId": agent_id})
            gateway.rpc(
                "agent",
                {"sessionKey": session_key, "message": message, "idempotencyKey": uuid.uuid4().hex},
            )
        except GatewayHarnessError:
            return False
        return True

    wait_until(start, within, f"an owner turn in {session_key}", every=0.5)


def count_in(gateway: RealGateway, session_key: str, lines: Iterable[str]) -> dict[str, int]:
    """How many times each line was injected into ``session_key`` (transcript and pending)."""
    texts = gateway.history(session_key, message_limit=200).texts
    return {line: sum(line in text for text in texts) for line in lines}


def arrived(gateway: RealGateway, session_key: str, lines: list[str]) -> Callable[[], bool]:
    return lambda: all(count_in(gateway, session_key, lines).values())


def bridge_processes_under(gateway: RealGateway) -> list[int]:
    """Bridge processes OpenClaw started (in the gateway's process tree)."""
    found = []
    for pid in tree(gateway_pid(gateway)):
        try:
            if b"mailbox_mcp" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:
            continue
    return found


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
    two.send(me, "warm-up", subject="hi")
    wait_until(arrived(gateway, key_two, ["warm-up"]), 90, f"warm-up in {key_two}")
    owner_turn(gateway, MAIN_SESSION, "the owner again")
    bridges = wait_until(lambda: len(bridge_pids(state)) == 3 and bridge_pids(state), 90, "3")
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


def test_openclaw_reaches_one_serve_process_through_url_and_headers(
    scripted_gateway: RealGateway,
    model: ScriptedModel,
    mailbox: ServerThread,
    me: Agent,
    tmp_path: Path,
) -> None:
    gateway = scripted_gateway
    peer = peer_of(mailbox, me, "peer")
    key = peer_session(peer)
    tag = uuid.uuid4().hex[:8]
    line = f"msg-{tag}-in"
    from_peer_session, from_main = f"reply-{tag}-peer-session", f"note-{tag}-main"
    token = f"serve-{uuid.uuid4().hex}"
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    env = bridge_env(
        mailbox,
        me,
        tmp_path / "serve-state",
        OPENCLAW_AGENT_ID=PEER_AGENT,
        MAILBOX_SERVE_TOKEN=token,
        **gateway_env(gateway),
    )

    def script(request: ModelRequest) -> Reply:
        if request.tool_results():
            return Text(f"done-{tag}")
        if request.session == key:
            return ToolCall("tool_call", send_call(peer.name, from_peer_session, subject="re"))
        if request.session == MAIN_SESSION:
            return ToolCall("tool_call", send_call(peer.name, from_main, subject="owner"))
        return Text("not for this test")

    model.script = script
    configure(gateway, env, tmp_path, serve_url=url, serve_token=token)
    process_env = {**os.environ, **env}
    with running("serve", "--port", str(port), env=process_env, ready_url=url):
        assert httpx.post(url, json={}).status_code == 401  # OpenClaw's headers are needed

        # No session has run: serve's listener injects all the same.
        me_sent = peer.send(me, line, subject=f"Hi {tag}")
        wait_until(arrived(gateway, key, [line]), 90, f"the message in {key}")
        # That run's model calls the send tool: OpenClaw reaches serve through the url.
        wait_until(
            lambda: from_peer_session in str(peer.get("/inbox").json()), 90, "the per-peer reply"
        )
        # The owner's main session uses the same process.
        owner_turn(gateway, MAIN_SESSION, f"tell the peer {tag}")
        wait_until(lambda: from_main in str(peer.get("/inbox").json()), 90, "main's message")

        assert bridge_processes_under(gateway) == []  # OpenClaw started no bridge of its own
        assert count_in(gateway, key, [line]) == {line: 1}
        assert me_sent["session_id"] in str(gateway.history(key).texts)
        main = gateway.history(MAIN_SESSION)
        assert not any(line in text for text in main.texts), main.texts


def test_a_run_that_fails_before_the_model_is_reported_by_doctor(
    scripted_gateway: RealGateway,
    model: ScriptedModel,
    mailbox: ServerThread,
    me: Agent,
    tmp_path: Path,
) -> None:
    """The gateway accepts the message, then the run fails before the model is called
    (here: an allow list that matches no tool). The listener asks OpenClaw for the
    run's outcome (``agent.wait``) and ``doctor`` shows the failure with its fix."""
    gateway = scripted_gateway
    peer = peer_of(mailbox, me, "peer")
    key = peer_session(peer)
    token = f"serve-{uuid.uuid4().hex}"
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    env = bridge_env(
        mailbox,
        me,
        tmp_path / "serve-state",
        OPENCLAW_AGENT_ID=PEER_AGENT,
        MAILBOX_SERVE_TOKEN=token,
        **gateway_env(gateway),
    )
    configure(gateway, env, tmp_path, serve_url=url, serve_token=token)
    allow = {"agents": {"entries": {PEER_AGENT: {"tools": {"allow": ["elsewhere__*"]}}}}}
    gateway.cli("config", "patch", "--stdin", stdin=json.dumps(allow))
    before = len(model.requests)
    process_env = {**os.environ, **env}
    with running("serve", "--port", str(port), env=process_env, ready_url=url):
        peer.send(me, f"unread-{uuid.uuid4().hex[:6]}", subject="hi")

        def reported() -> str | None:
            done = subprocess.run(
                [MAILBOX_MCP, "doctor"], env=process_env, capture_output=True, text=True
            )
            return done.stdout if "[WARN] agent runs" in done.stdout else None

        report = wait_until(reported, 90, "doctor to report the failed run", every=1)
    assert f"the run in {key} failed" in report, report
    assert "No callable tools remain" in report, report
    assert "fix: the agent's tools.allow matches no tool" in report, report
    assert not [r for r in model.requests[before:] if r.session == key]  # never reached it
