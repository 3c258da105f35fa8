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
import uuid
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

from mailbox_mcp.inbound import envelope
from tests.helpers import Agent
from tests.mcp.conftest import bridge, bridge_env, reply_token, send
from tests.openclaw.conftest import gateway_env, peer_of, requires_openclaw
from tests.openclaw.dedicated import MAIN_SESSION, dedicated_patch, wait_for_run
from tests.openclaw.gateway import GatewayHarnessError, RealGateway
from tests.openclaw.quiet_windows import REPLY_BACK_WINDOW
from tests.openclaw.scripted_model import ModelRequest, Reply, ScriptedModel, Text, ToolCall
from tests.openclaw.two_agents import REPLY_TOOL, reply_call
from tests.servers import ServerThread
from tests.waiting import assert_stays_async, wait_until

pytestmark = [requires_openclaw, pytest.mark.openclaw, pytest.mark.anyio, pytest.mark.timeout(420)]

# What a model would search for to find the owner's mailbox tools (one query each: the
# answer has a 4,000-character budget, and a batch of many queries came back truncated).
SEARCHES = ("mailbox", "send message conversation history inbox status approve connection")


def search_hits(result: str) -> list[str]:
    """The tool names a ``tool_search`` result lists (its JSON sits inside OpenClaw's
    external-content wrapping); fails if the answer was cut short."""
    body = result.split("\n---\n", 1)[-1].split("\n<<<END_EXTERNAL_UNTRUSTED_CONTENT", 1)[0]
    found = json.loads(body)
    groups = found["results"] if isinstance(found, dict) else [{"candidates": found}]
    assert not any(group.get("truncated") for group in groups), result
    return [hit["name"] for group in groups for hit in group["candidates"]]


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
        requests = await model.until(
            lambda rs: any(r.session == key for r in rs[before:]),
            within=90,
            what=f"a model request in {key}",
        )
        await assert_stays_async(
            lambda: [r.session for r in model.requests[before:]] == [key],
            for_seconds=REPLY_BACK_WINDOW,
            what=f"no model request but the one in {key} (no reply-back turn)",
        )
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


async def test_the_fenced_agent_gets_the_envelope_can_reach_mailbox_reply_alone_and_answers(
    scripted_gateway: RealGateway,
    model: ScriptedModel,
    mailbox: ServerThread,
    me: Agent,
    tmp_path: Path,
) -> None:
    """One run in the fenced per-peer session, started by a peer's message: what a
    talked-into model would try is refused (the owner's tools, and every mailbox tool
    but the reply, directly or through tool search), tool search shows it one mailbox
    tool, and ``mailbox_reply`` with the envelope's token answers that peer in that
    conversation."""
    gateway = scripted_gateway
    peer = peer_of(mailbox, me, "peer")
    key = f"agent:mailbox:dm:mailbox-{peer.name}"
    tag = uuid.uuid4().hex[:8]
    line, reply_line, send_line = f"msg-{tag}-in", f"msg-{tag}-reply", f"msg-{tag}-send"
    canary = tmp_path / f"exec-{tag}"
    env = bridge_env(
        mailbox, me, tmp_path / "bridge-state", OPENCLAW_AGENT_ID="mailbox", **gateway_env(gateway)
    )
    patch = dedicated_patch(env, gateway.workdir)
    await anyio.to_thread.run_sync(
        lambda: gateway.cli("config", "patch", "--stdin", stdin=json.dumps(patch))
    )

    send_args = {"to": peer.name, "content": send_line, "subject": "re"}
    # One run: what a talked-into model would try, directly and through tool search; what
    # tool search shows of the mailbox; the owner's mailbox tools; then the reply (behind
    # tool search by default), then a text answer. None -> the reply, with the token.
    steps: list[Reply | None] = [
        ToolCall("exec", {"command": f"touch {canary}"}),
        ToolCall("tool_call", {"id": "exec", "args": {"command": f"touch {canary}"}}),
        ToolCall("write", {"path": str(canary), "content": tag}),
        ToolCall("sessions_send", {"sessionKey": MAIN_SESSION, "message": tag}),
        ToolCall(
            "tool_call",
            {"id": "sessions_send", "args": {"sessionKey": MAIN_SESSION, "message": tag}},
        ),
        ToolCall("mailbox__mailbox_send", send_args),
        ToolCall("tool_call", {"id": "mailbox__mailbox_send", "args": send_args}),
        ToolCall("tool_call", {"id": "mailbox__mailbox_history", "args": {}}),
        ToolCall("tool_describe", {"id": "mailbox__mailbox_history"}),
        *(ToolCall("tool_search", {"query": query, "limit": 20}) for query in SEARCHES),
        None,
        Text(f"done-{tag}"),
    ]
    refusals = next(i for i, s in enumerate(steps) if s and s.name == "tool_search")

    def script(request: ModelRequest) -> Reply:
        if request.session != key:
            return Text("not for this test")
        step = steps[min(len(request.tool_results()), len(steps) - 1)]
        if step is None:
            token = reply_token(request.text())
            return ToolCall("tool_call", reply_call(token, reply_line))
        return step

    model.script = script
    before = len(model.requests)
    async with bridge(env) as client:
        status = (await client.call_tool("mailbox_status", {})).structured_content
        assert status is not None and status["injection"] == "agent", status
        sent = await send(peer, me, line, subject=f"Hi {tag}")
        await model.until(
            lambda rs: any(r.session == key and isinstance(r.reply, Text) for r in rs[before:]),
            within=180,
            what=f"the run in {key} to finish",
        )
        await assert_stays_async(
            lambda: (
                {r.session for r in model.requests[before:]} <= {key}
                and len(model.requests) - before <= len(steps)
            ),
            for_seconds=REPLY_BACK_WINDOW,
            what=f"no model request but the run's {len(steps)} in {key} (no reply-back turn)",
        )
    requests = model.requests[before:]
    mine = [r for r in requests if r.session == key]
    assert [r.session for r in requests] == [key] * len(mine), [r.session for r in requests]
    assert len(mine) == len(steps), [(r.reply, r.tool_results()) for r in mine]
    results = mine[-1].tool_results()
    debug = list(zip([r.reply for r in mine], results, strict=False))

    # its role, not OpenClaw's first-run routine, and tool search's trio and nothing else
    assert "You have one tool: `mailbox_reply(" in mine[0].text(), mine[0].messages
    assert "BOOTSTRAP.md" not in mine[0].text(), mine[0].messages
    assert sorted(mine[0].tools) == ["tool_call", "tool_describe", "tool_search"], mine[0].tools
    for result in results[:refusals]:
        assert "not found" in result.lower() or "unknown tool" in result.lower(), debug
    assert not canary.exists()
    # tool search knows one mailbox tool: the reply (its catalog has that one tool)
    for result in results[refusals : refusals + len(SEARCHES)]:
        assert search_hits(result) == [REPLY_TOOL], result

    # on the server: the reply reached the peer in the same conversation, and nothing else
    inbox = await anyio.to_thread.run_sync(lambda: peer.get("/inbox").json()["messages"])
    assert [(m["content"], m["session_id"]) for m in inbox] == [(reply_line, sent["session_id"])]
    assert '"status":"sent"' in results[-1].replace(" ", ""), results[-1]
    # the refused history call leaked no conversation, no peer
    assert sent["session_id"] not in "".join(results[:refusals]), debug
    assert peer.name not in "".join(results[:refusals]), debug

    # the envelope, verbatim, in the fenced session (read back with an owner caller)
    history = gateway.history(key)
    [text] = [t for t in history.texts if t.startswith(envelope.MESSAGE_TITLE)]
    nonce = next(x for x in text.splitlines() if x.startswith("[BEGIN AGENT_MSG_"))
    assert text == envelope.wrap_incoming_message(
        from_agent=peer.name,
        subject=f"Hi {tag}",
        content=line,
        session_id=sent["session_id"],
        reply_token=reply_token(text),
        nonce=nonce.removeprefix("[BEGIN AGENT_MSG_").removesuffix("]"),
    )
    assert text in mine[0].text()  # and so the model got it (after OpenClaw's timestamp)
    main = gateway.history(MAIN_SESSION)
    assert not any(tag in t for t in main.texts), main.texts
    assert not model.requests_in(MAIN_SESSION)
    # what doctor could read: the fenced session's effective tools
    effective = gateway.effective_tools(key)
    assert effective == {REPLY_TOOL}, sorted(effective)


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

    def session_made() -> GatewayHarnessError | None:
        try:
            gateway.rpc("sessions.create", {"key": key, "agentId": agent, "label": "mailbox-peer"})
        except GatewayHarnessError as refused:
            return refused
        return None

    # agents.entries applies live, after the config watcher saw the change
    wait_until(
        session_made, lambda refused: refused is None, within=30, what=f"{key} made", every=0.5
    )
    model.script = lambda request: Text(f"done-{tag}")
    accepted = gateway.rpc(
        "agent", {"sessionKey": key, "message": f"hi {tag}", "idempotencyKey": tag}
    )
    requests = model.wait_for(
        lambda rs: any(r.session == key for r in rs), 90, f"the first run in {key}"
    )
    request = next(r for r in requests if r.session == key)
    # the run has started, so seeding (if any) is done; let the run finish
    wait_for_run(gateway, str(accepted["runId"]), within=30)

    assert role in request.text()
    assert "BOOTSTRAP.md" not in request.text()
    assert sorted(p.name for p in workspace.iterdir() if p.is_file()) == sorted(SEEDED_FILES)
    assert (workspace / "AGENTS.md").read_text() == role
