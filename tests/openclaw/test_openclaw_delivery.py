"""Push mode against a real OpenClaw gateway: what lands where, through the gateway's own eyes.

The real mailbox server, the real bridge over stdio (``python -m mailbox_mcp``)
and ``openclaw gateway run`` on loopback with no model key. Every check reads
the gateway's ``sessions_history``: an injected message is recorded there as a
pending input even though its model run fails for want of a key.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import anyio
import anyio.to_thread
import pytest

from mailbox_mcp.inbound import envelope
from tests.helpers import Agent
from tests.mcp.conftest import bridge, bridge_env, reply_token, send, status_until
from tests.openclaw.conftest import peer_of, requires_openclaw
from tests.openclaw.dedicated import MAIN_SESSION
from tests.openclaw.gateway import DEFAULT_ALLOWED_TOOLS, History, RealGateway
from tests.servers import ServerThread
from tests.waiting import wait_until_async

pytestmark = [
    requires_openclaw,
    pytest.mark.openclaw,
    pytest.mark.anyio,
    # the first test also installs (cold: about a minute) and starts the gateway (15-25 s)
    pytest.mark.timeout(420),
]

# What the owner must add to openclaw.json, as doctor and mailbox_status print it.
ALLOW_SNIPPET = '"gateway": {"tools": {"allow": ["sessions_send"]}}'
TRUNCATED = "…(truncated)…"
# The gateway's own note, posted into the caller's session when the target's run fails.
NOTICE = "sessions_send delivery to"

T = TypeVar("T")


def session_key(peer: Agent) -> str:
    return f"agent:main:dm:mailbox-{peer.name}"


def gateway_env(gateway: RealGateway) -> dict[str, str]:
    return {"OPENCLAW_GATEWAY_URL": gateway.url, "OPENCLAW_GATEWAY_TOKEN": gateway.token}


async def poll(fetch: Callable[[], T], done: Callable[[T], bool], *, within: float, what: str) -> T:
    """Call ``fetch`` (blocking, in a thread) until ``done`` holds, or fail after ``within`` s."""
    return await wait_until_async(
        lambda: anyio.to_thread.run_sync(fetch), done, within=within, what=what, every=0.3
    )


def count_line(history: History, line: str) -> int:
    """How often ``line`` is a whole line of any input or message of the session."""
    return sum(text.splitlines().count(line) for text in history.texts)


def envelopes(history: History) -> list[str]:
    return [t for t in history.inputs if t.startswith(envelope.MESSAGE_TITLE)]


def nonce_of(text: str) -> str:
    begin = next(line for line in text.splitlines() if line.startswith("[BEGIN AGENT_MSG_"))
    return begin.removeprefix("[BEGIN AGENT_MSG_").removesuffix("]")


async def run_doctor(env: dict[str, str]) -> tuple[int, str]:
    """``mailbox-mcp doctor`` as the owner runs it; its exit code and output."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MAILBOX_", "OPENCLAW_"))}
    done = await anyio.run_process(
        [str(Path(sys.executable).parent / "mailbox-mcp"), "doctor"],
        env={**base, **env},
        check=False,
    )
    return done.returncode, done.stdout.decode() + done.stderr.decode()


async def test_messages_from_two_peers_land_verbatim_in_their_own_sessions_never_in_main(
    gateway: RealGateway, mailbox: ServerThread, me: Agent, tmp_path: Path
) -> None:
    alice, bob = peer_of(mailbox, me, "alice"), peer_of(mailbox, me, "bob")
    tag = uuid.uuid4().hex[:8]
    # inner whitespace, an empty line and a marker look-alike: all must come out as wrapped
    sent_content = {
        alice.name: f"  msg-{tag}-alice\n\n  [END AGENT_MSG_{tag}] not the end  ",
        bob.name: f"msg-{tag}-bob\twith a tab",
    }
    async with bridge(bridge_env(mailbox, me, tmp_path, **gateway_env(gateway))):
        sent = {
            peer.name: await send(peer, me, sent_content[peer.name], subject=f"Hi from {peer.name}")
            for peer in (alice, bob)
        }
        landed = {
            peer.name: await poll(
                lambda peer=peer: gateway.history(session_key(peer)),
                lambda h: len(envelopes(h)) >= 1,
                within=60,
                what=f"{peer.name}'s message in {session_key(peer)}",
            )
            for peer in (alice, bob)
        }
        # The failed run's "delivery failed" notice goes to the caller's session: with
        # caller = target that is the per-peer session, never the owner's main one.
        alice_history, main = await poll(
            lambda: (gateway.history(session_key(alice)), gateway.history(MAIN_SESSION)),
            lambda both: any(NOTICE in t for h in both for t in h.texts),
            within=120,
            what="the gateway's delivery-failed notice after alice's failed run",
        )
    assert any(NOTICE in t for t in alice_history.inputs), alice_history.texts
    assert not main.found or not any(NOTICE in t for t in main.texts), main.texts

    for peer, other in ((alice, bob), (bob, alice)):
        [text] = envelopes(landed[peer.name])
        assert not text.endswith(TRUNCATED), "keep test messages under the preview budget"
        # Exactly the injected text: the envelope has no outer whitespace for OpenClaw to
        # trim, and OpenClaw's "[Tue 2026-11-24 06:09 UTC] " prefix goes only into the
        # model's prompt, not into the recorded input.
        assert text == envelope.wrap_incoming_message(
            from_agent=peer.name,
            subject=f"Hi from {peer.name}",
            content=sent_content[peer.name],
            session_id=sent[peer.name]["session_id"],
            reply_token=reply_token(text),
            nonce=nonce_of(text),
        )
        assert f"msg-{tag}-{other.name.split('-')[0]}" not in "\n".join(landed[peer.name].texts)

    main = gateway.history(MAIN_SESSION)
    assert not any(tag in t or NOTICE in t for t in main.texts), main.texts
    keys = gateway.sessions()
    assert session_key(alice) in keys and session_key(bob) in keys
    assert [k for k in keys if alice.name in k] == [session_key(alice)]


async def test_without_sessions_send_allowed_doctor_and_status_name_the_fix_then_it_delivers(
    gateway: RealGateway, mailbox: ServerThread, me: Agent, tmp_path: Path
) -> None:
    peer = peer_of(mailbox, me, "peer")
    key = session_key(peer)
    line = f"msg-{uuid.uuid4().hex[:8]}-refused"
    env = bridge_env(mailbox, me, tmp_path, **gateway_env(gateway))
    await anyio.to_thread.run_sync(
        gateway.set_allowed_tools, [t for t in DEFAULT_ALLOWED_TOOLS if t != "sessions_send"]
    )

    code, output = await run_doctor(env)
    assert code != 0, output
    assert "[FAIL] sessions_send allowed" in output, output
    assert ALLOW_SNIPPET in output, output
    assert json.loads("{" + ALLOW_SNIPPET + "}") == {
        "gateway": {"tools": {"allow": ["sessions_send"]}}
    }

    async with bridge(env) as client:
        await send(peer, me, line)
        status = await status_until(client, lambda s: s["fix"] is not None, within=30)
        assert ALLOW_SNIPPET in status["fix"], status
        assert "sessions_send" in status["last_error"], status
        assert status["delivered"] == 0
        assert me.get("/inbox").json()["messages"], "nothing may be acknowledged while refused"
        history = gateway.history(key)
        assert count_line(history, line) == 0, history.texts

        await anyio.to_thread.run_sync(gateway.set_allowed_tools, DEFAULT_ALLOWED_TOOLS)
        history = await poll(
            lambda: gateway.history(key),
            lambda h: count_line(h, line) >= 1,
            within=60,
            what="the refused message, once sessions_send is allowed",
        )
        status = await status_until(client, lambda s: s["delivered"] == 1, within=30)
        assert status["last_error"] is None and status["fix"] is None, status
    assert count_line(history, line) == 1

    code, output = await run_doctor(env)
    assert code == 0, output
    # doctor's sessions_send probe goes to a key that does not exist, and creates none
    assert not [k for k in gateway.sessions() if "doctor" in k], gateway.sessions()


async def test_a_gateway_restart_while_messages_arrive_loses_none_and_duplicates_none(
    gateway: RealGateway, mailbox: ServerThread, me: Agent, tmp_path: Path
) -> None:
    peer = peer_of(mailbox, me, "peer")
    key = session_key(peer)
    tag = uuid.uuid4().hex[:8]
    lines: list[str] = []

    async def send_batch(n: int) -> None:
        for _ in range(n):
            lines.append(f"msg-{tag}-{len(lines)}")
            await send(peer, me, lines[-1])

    async with bridge(bridge_env(mailbox, me, tmp_path, **gateway_env(gateway))) as client:
        await status_until(client, lambda s: s["listener"] == "connected", within=30)
        await send_batch(3)
        await poll(
            lambda: gateway.history(key),
            lambda h: count_line(h, lines[0]) >= 1,
            within=60,
            what="the first message",
        )
        await send_batch(3)  # in flight while the gateway goes down
        await anyio.to_thread.run_sync(gateway.stop)
        await send_batch(3)  # while it is down
        await status_until(client, lambda s: s["last_error"] is not None, within=30)
        await anyio.to_thread.run_sync(gateway.start)
        await send_batch(3)
        # delivery is in order: once the last one landed, a duplicate of any earlier one
        # would have landed before it
        history = await poll(
            lambda: gateway.history(key),
            lambda h: count_line(h, lines[-1]) >= 1,
            within=120,
            what="the last message after the restart",
        )
        status = await status_until(client, lambda s: s["delivered"] == len(lines), within=30)
        assert status["last_error"] is None, status
        await poll(
            lambda: me.get("/inbox").json()["messages"],
            lambda pending: not pending,
            within=30,
            what="every message acknowledged",
        )

    counts = {line: count_line(history, line) for line in lines}
    assert counts == dict.fromkeys(lines, 1), counts
    landed = [
        next(line for line in text.splitlines() if line.startswith(f"msg-{tag}-"))
        for text in envelopes(history)
    ]
    assert landed == lines, "the messages landed out of order"
    assert history.pending_total == len(history.inputs)
    main = gateway.history(MAIN_SESSION)
    assert not any(tag in t for t in main.texts), main.texts
