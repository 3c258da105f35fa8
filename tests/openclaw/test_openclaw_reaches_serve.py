"""OpenClaw reaches one ``mailbox-mcp serve`` through ``mcp.servers.mailbox.url``.

The bearer token goes in ``headers``, as ``mailbox-mcp config openclaw --serve``
prints it. Serve listens from the start, so mail arrives before any session has
run, and every session shares the one process. Its own gateway: switching a live
gateway between a stdio entry and a url entry is not what these tests are about.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.helpers import Agent
from tests.mcp.conftest import MAILBOX_MCP, bridge_env, running
from tests.openclaw.conftest import gateway_env, peer_of, requires_openclaw
from tests.openclaw.dedicated import (
    MAIN_SESSION,
    PEER_AGENT,
    arrived,
    configure,
    count_in,
    peer_session,
)
from tests.openclaw.gateway import RealGateway
from tests.openclaw.processes import bridge_processes_under
from tests.openclaw.scripted_model import ModelRequest, Reply, ScriptedModel, Text, ToolCall
from tests.openclaw.two_agents import envelope_reply_token, reply_call
from tests.servers import ServerThread, free_port
from tests.waiting import wait_until

pytestmark = [requires_openclaw, pytest.mark.openclaw, pytest.mark.timeout(420)]


@dataclass
class Serve:
    """How a test runs ``mailbox-mcp serve`` for ``me``: its environment, port and token."""

    env: dict[str, str]
    port: int
    token: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    @classmethod
    def for_agent(
        cls, mailbox: ServerThread, me: Agent, gateway: RealGateway, tmp_path: Path
    ) -> Serve:
        token = f"serve-{uuid.uuid4().hex}"
        env = bridge_env(
            mailbox,
            me,
            tmp_path / "serve-state",
            OPENCLAW_AGENT_ID=PEER_AGENT,
            MAILBOX_SERVE_TOKEN=token,
            **gateway_env(gateway),
        )
        return cls(env, free_port(), token)


def test_openclaw_reaches_one_serve_process_through_url_and_headers(
    scripted_gateway: RealGateway,
    model: ScriptedModel,
    mailbox: ServerThread,
    me: Agent,
    tmp_path: Path,
) -> None:
    """Mail sent before any session has run is injected; each per-peer run calls the
    reply tool through the url, and both sessions share the one serve process. (The
    owner's main session reaches it the same way; a main run right after the other
    agent's is what OpenClaw 2026.9.6 sometimes fails for good, see ``owner_turn``.)"""
    gateway = scripted_gateway
    peers = [peer_of(mailbox, me, "pone"), peer_of(mailbox, me, "ptwo")]
    tag = uuid.uuid4().hex[:8]
    lines = {peer_session(p): f"msg-{tag}-to-{p.name}" for p in peers}
    replies = {peer_session(p): (p, f"reply-{tag}-{p.name}") for p in peers}
    serve = Serve.for_agent(mailbox, me, gateway, tmp_path)

    def script(request: ModelRequest) -> Reply:
        if request.tool_results():
            return Text(f"done-{tag}")
        token = envelope_reply_token(request)
        if request.session in replies and token:
            _, reply = replies[request.session]
            return ToolCall("tool_call", reply_call(token, reply))
        return Text("not for this test")

    model.script = script
    configure(gateway, serve.env, tmp_path, serve_url=serve.url, serve_token=serve.token)
    process_env = {**os.environ, **serve.env}
    with running("serve", "--port", str(serve.port), env=process_env, ready_url=serve.url):
        assert httpx.post(serve.url, json={}).status_code == 401  # OpenClaw's headers are needed

        # No session has run: serve's listener injects all the same.
        sent = {
            key: p.send(me, lines[key], subject=f"Hi {tag}")
            for p in peers
            for key in [peer_session(p)]
        }
        for key, (peer, reply) in replies.items():
            wait_until(
                arrived(gateway, key, [lines[key]]),
                within=90,
                what=f"the message in {key}",
                every=0.2,
            )
            # That run's model calls the reply tool: OpenClaw reaches serve by the url.
            wait_until(
                lambda peer=peer, reply=reply: reply in str(peer.get("/inbox").json()),
                within=90,
                what=f"the reply from {key}",
                every=0.2,
            )

        assert bridge_processes_under(gateway) == []  # OpenClaw started no bridge of its own
        for key, line in lines.items():
            assert count_in(gateway, key, [line]) == {line: 1}
            # the reply went to that peer, in the conversation its message started
            peer, reply = replies[key]
            inbox = peer.get("/inbox").json()["messages"]
            assert [(m["content"], m["session_id"]) for m in inbox] == [
                (reply, sent[key]["session_id"])
            ], inbox
        main = gateway.history(MAIN_SESSION)
        assert not any(tag in text for text in main.texts), main.texts


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
    serve = Serve.for_agent(mailbox, me, gateway, tmp_path)
    env, url, token, port = serve.env, serve.url, serve.token, serve.port
    configure(gateway, env, tmp_path, serve_url=url, serve_token=token)
    allow = {"agents": {"entries": {PEER_AGENT: {"tools": {"allow": ["elsewhere__*"]}}}}}
    gateway.cli("config", "patch", "--stdin", stdin=json.dumps(allow))
    before = len(model.requests)
    process_env = {**os.environ, **env}
    with running("serve", "--port", str(port), env=process_env, ready_url=url):
        peer.send(me, f"unread-{uuid.uuid4().hex[:6]}", subject="hi")

        def reported() -> str:
            done = subprocess.run(
                [MAILBOX_MCP, "doctor"], env=process_env, capture_output=True, text=True
            )
            return done.stdout if "[WARN] agent runs" in done.stdout else ""

        report = wait_until(reported, within=90, what="doctor to report the failed run", every=1)
    assert f"the run in {key} failed" in report, report
    assert "No callable tools remain" in report, report
    assert "fix: the agent's tools.allow matches no tool" in report, report
    assert not [r for r in model.requests[before:] if r.session == key]  # never reached it
