"""Runs that really finish: a real gateway whose model is a scripted server on loopback.

With no model key every run fails, which hides what happens after the target
session answers. Here OpenClaw's only model is ``ScriptedModel``: the test
decides what the model answers (text, or a tool call) and reads back every
request it got, with the session it ran in.

This module runs its own gateway (the model and the agents are configured
before it starts) and stops the session's shared one meanwhile.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

from mailbox_mcp import envelope
from tests.helpers import Agent
from tests.mcp.conftest import bridge, bridge_env, send
from tests.openclaw.conftest import gateway_env, peer_of, requires_openclaw
from tests.openclaw.dedicated import MAIN_SESSION, dedicated_patch
from tests.openclaw.gateway import GatewayHarnessError, RealGateway
from tests.openclaw.scripted_model import ModelRequest, Reply, ScriptedModel, Text, ToolCall
from tests.servers import ServerThread

pytestmark = [requires_openclaw, pytest.mark.openclaw, pytest.mark.anyio, pytest.mark.timeout(420)]

# What the fenced agent must not be offered (OPENCLAW.md, "A dedicated agent").
FORBIDDEN_TOOLS = {"exec", "write", "apply_patch", "sessions_send", "message", "gateway"}
# Long enough for a reply-back turn to start (seen 2-5 s after the target answered).
REPLY_BACK_WINDOW = 8.0


async def wait_for(
    model: ScriptedModel, predicate: object, *, within: float, what: str
) -> list[ModelRequest]:
    return await anyio.to_thread.run_sync(
        lambda: model.wait_for(predicate, within, what)  # type: ignore[arg-type]
    )


async def test_a_per_peer_run_that_answers_sends_nothing_to_main_and_starts_no_reply_back(
    scripted_gateway: RealGateway,
    model: ScriptedModel,
    mailbox: ServerThread,
    me: Agent,
    tmp_path: Path,
) -> None:
    gateway = scripted_gateway
    peer = peer_of(mailbox, me, "peer")
    key = f"agent:main:dm:mailbox-{peer.name}"
    tag = uuid.uuid4().hex[:8]
    line, answer = f"msg-{tag}-in", f"answer-{tag}-from-the-per-peer-run"
    model.script = lambda request: Text(answer)
    before = len(model.requests)

    async with bridge(bridge_env(mailbox, me, tmp_path, **gateway_env(gateway))):
        await send(peer, me, line)
        requests = await wait_for(
            model,
            lambda rs: any(r.session == key for r in rs[before:]),
            within=90,
            what=f"a model request in {key}",
        )
        await anyio.sleep(REPLY_BACK_WINDOW)
    requests = model.requests[before:]

    [run] = [r for r in requests if r.session == key]
    assert line in run.text(), run.messages
    assert "[Inter-session message]" in run.text(), run.messages
    # the plain setup: the per-peer run has the owner's tools (why the fenced agent exists)
    assert {"exec", "write"} <= set(run.tools), sorted(run.tools)
    effective = gateway.effective_tools(key)
    assert {"exec", "write", "sessions_send"} <= effective, sorted(effective)
    # no reply-back turn: the only request of this test is the per-peer run's one
    assert [r.session for r in requests] == [key], [r.session for r in requests]
    assert not model.requests_in(MAIN_SESSION)

    history = gateway.history(key)
    assert any(line in t for t in history.texts), history.texts
    assert any(answer in t for t in history.messages), history.messages
    main = gateway.history(MAIN_SESSION)
    assert not any(tag in t for t in main.texts), main.texts


async def test_the_fenced_agent_gets_the_envelope_is_refused_exec_and_can_mailbox_send(
    scripted_gateway: RealGateway,
    model: ScriptedModel,
    mailbox: ServerThread,
    me: Agent,
    tmp_path: Path,
) -> None:
    gateway = scripted_gateway
    peer = peer_of(mailbox, me, "peer")
    key = f"agent:mailbox:dm:mailbox-{peer.name}"
    tag = uuid.uuid4().hex[:8]
    line, reply_line = f"msg-{tag}-in", f"msg-{tag}-reply"
    canary = tmp_path / f"exec-{tag}"
    env = bridge_env(
        mailbox, me, tmp_path / "bridge-state", OPENCLAW_AGENT_ID="mailbox", **gateway_env(gateway)
    )
    patch = dedicated_patch(env, gateway.workdir)
    await anyio.to_thread.run_sync(
        lambda: gateway.cli("config", "patch", "--stdin", stdin=json.dumps(patch))
    )

    send_args = {"to": peer.name, "content": reply_line, "subject": "re"}
    # One run: what a talked-into model would try, directly and through tool search,
    # then the mailbox tool (behind tool search by default), then a text answer.
    steps: list[Reply] = [
        ToolCall("exec", {"command": f"touch {canary}"}),
        ToolCall("tool_call", {"id": "exec", "args": {"command": f"touch {canary}"}}),
        ToolCall("write", {"path": str(canary), "content": tag}),
        ToolCall("sessions_send", {"sessionKey": MAIN_SESSION, "message": tag}),
        ToolCall(
            "tool_call",
            {"id": "sessions_send", "args": {"sessionKey": MAIN_SESSION, "message": tag}},
        ),
        ToolCall("tool_call", {"id": "mailbox__mailbox_send", "args": send_args}),
        Text(f"done-{tag}"),
    ]

    def script(request: ModelRequest) -> Reply:
        if request.session != key:
            return Text("not for this test")
        return steps[min(len(request.tool_results()), len(steps) - 1)]

    model.script = script
    before = len(model.requests)
    async with bridge(env) as client:
        status = (await client.call_tool("mailbox_status", {})).structured_content
        assert status is not None and status["injection"] == "agent", status
        sent = await send(peer, me, line, subject=f"Hi {tag}")
        await wait_for(
            model,
            lambda rs: any(r.session == key and isinstance(r.reply, Text) for r in rs[before:]),
            within=180,
            what=f"the run in {key} to finish",
        )
        await anyio.sleep(REPLY_BACK_WINDOW)
    requests = model.requests[before:]
    mine = [r for r in requests if r.session == key]
    assert [r.session for r in requests] == [key] * len(mine), [r.session for r in requests]
    assert [r.reply for r in mine] == steps, [(r.reply, r.tool_results()) for r in mine]

    offered = set(mine[0].tools)
    assert not offered & FORBIDDEN_TOOLS, sorted(offered)
    *refused, mailbox_result = mine[-1].tool_results()
    assert len(refused) == len(steps) - 2
    for result in refused:
        assert "not found" in result.lower() or "unknown tool" in result.lower(), result
    assert not canary.exists()

    # mailbox_send went through the bridge OpenClaw started, to the mailbox server
    inbox = await anyio.to_thread.run_sync(lambda: peer.get("/inbox").json()["messages"])
    assert any(reply_line in json.dumps(m) for m in inbox), (mailbox_result, inbox)

    # the envelope, verbatim, in the fenced session (read back with an owner caller)
    history = gateway.history(key)
    [text] = [t for t in history.texts if t.startswith(envelope.MESSAGE_TITLE)]
    nonce = next(x for x in text.splitlines() if x.startswith("[BEGIN AGENT_MSG_"))
    assert text == envelope.wrap_incoming_message(
        from_agent=peer.name,
        subject=f"Hi {tag}",
        content=line,
        session_id=sent["session_id"],
        nonce=nonce.removeprefix("[BEGIN AGENT_MSG_").removesuffix("]"),
    )
    assert text in mine[0].text()  # and so the model got it (after OpenClaw's timestamp)
    main = gateway.history(MAIN_SESSION)
    assert not any(tag in t for t in main.texts), main.texts
    assert not model.requests_in(MAIN_SESSION)
    # what doctor could read: the fenced session's effective tools
    effective = gateway.effective_tools(key)
    assert not effective & FORBIDDEN_TOOLS, sorted(effective)
    assert "mailbox__mailbox_send" in effective, sorted(effective)
    assert all(tool.startswith("mailbox__") for tool in effective), sorted(effective)


# What OpenClaw seeds into a new workspace at an agent's first run (not at sessions.create).
SEEDED_FILES = ("AGENTS.md", "SOUL.md", "IDENTITY.md", "USER.md")


def test_a_workspace_prepared_with_the_four_files_gets_no_bootstrap_md(
    scripted_gateway: RealGateway, model: ScriptedModel
) -> None:
    """What preparing the dedicated workspace can rely on: with ``AGENTS.md``, ``SOUL.md``,
    ``IDENTITY.md`` and ``USER.md`` there before the first run, OpenClaw seeds no
    ``BOOTSTRAP.md`` and the role written in ``AGENTS.md`` reaches the model. (An empty
    folder, or ``AGENTS.md`` alone, gets ``BOOTSTRAP.md``'s first-run routine.)"""
    gateway = scripted_gateway
    tag = uuid.uuid4().hex[:8]
    agent = f"prepared-{tag}"
    workspace = gateway.workdir / f"workspace-{agent}"
    workspace.mkdir()
    role = f"ROLE-{tag}: you answer peer agents through the mailbox tools only."
    for name in SEEDED_FILES:
        (workspace / name).write_text(role if name == "AGENTS.md" else f"# {name}\n")
    patch = {"agents": {"entries": {agent: {"workspace": str(workspace)}}}}
    gateway.cli("config", "patch", "--stdin", stdin=json.dumps(patch))
    key = f"agent:{agent}:dm:mailbox-peer"
    deadline = time.monotonic() + 30
    while True:  # agents.entries applies live, after the config watcher saw the change
        try:
            gateway.rpc("sessions.create", {"key": key, "agentId": agent, "label": "mailbox-peer"})
            break
        except GatewayHarnessError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    model.script = lambda request: Text(f"done-{tag}")
    gateway.rpc("agent", {"sessionKey": key, "message": f"hi {tag}", "idempotencyKey": tag})
    requests = model.wait_for(
        lambda rs: any(r.session == key for r in rs), 90, f"the first run in {key}"
    )
    request = next(r for r in requests if r.session == key)
    time.sleep(1)  # the run has started, so seeding (if any) is done; let the run finish

    assert role in request.text()
    assert "BOOTSTRAP.md" not in request.text()
    assert sorted(p.name for p in workspace.iterdir() if p.is_file()) == sorted(SEEDED_FILES)
    assert (workspace / "AGENTS.md").read_text() == role
