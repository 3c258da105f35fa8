"""The dedicated setup on a running gateway, and what the tests do with it.

``configure`` applies what ``mailbox-mcp config openclaw`` prints; ``owner_turn`` is
the owner talking in a session; ``count_in`` reads how often a text was injected.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, cast

from mailbox_mcp.openclaw.workspace import prepare_peer_workspace
from mailbox_mcp.owner.snippets import openclaw_dedicated_config
from mailbox_mcp.settings import BridgeSettings
from tests.helpers import Agent
from tests.openclaw.gateway import GatewayHarnessError, RealGateway
from tests.waiting import NotInTime, wait_until

PEER_AGENT = "mailbox"
MAIN_SESSION = "agent:main:main"


def peer_session(peer: Agent) -> str:
    return f"agent:{PEER_AGENT}:dm:mailbox-{peer.name}"


def dedicated_patch(env: dict[str, str], workdir: Path, **serve: Any) -> dict[str, Any]:
    """What ``mailbox-mcp config openclaw`` prints for a bridge with ``env``, with real
    paths and secrets; ``serve_url``/``serve_token`` for the ``--serve`` entry. Like that
    command it writes the peer agent's role files first (else OpenClaw seeds its
    BOOTSTRAP.md first-run routine, and the model never reads its role)."""
    settings = BridgeSettings(**env)  # type: ignore[arg-type]
    (workdir / "workspace-main").mkdir(parents=True, exist_ok=True)
    prepare_peer_workspace(workdir / "workspace-mailbox")
    config = openclaw_dedicated_config(
        settings,
        include_key=True,
        workspace=str(workdir / "workspace-mailbox"),
        main_workspace=str(workdir / "workspace-main"),
        **serve,
    )
    config.pop("gateway")  # the test gateway already binds loopback
    return config


def configure(gateway: RealGateway, env: dict[str, str], workdir: Path, **serve: Any) -> None:
    """``dedicated_patch`` applied to the running gateway, and in effect on return; the
    previous ``mailbox`` entry goes first, so a stdio entry and a url entry never merge."""
    gateway.cli("mcp", "unset", "mailbox", check=False)
    patch = dedicated_patch(env, workdir, **serve)
    gateway.cli("config", "patch", "--stdin", stdin=json.dumps(patch))
    gateway.wait_config_applied()


def owner_turn(
    gateway: RealGateway, session_key: str, message: str, within: float = 90, attempts: int = 4
) -> None:
    """The owner runs a turn in ``session_key`` (made first if new), and it ends well.

    The dedicated agent's entry applies when the config watcher has seen it, so the
    start is retried until then. A run that fails is run again: on two cores,
    OpenClaw 2026.9.6 now and then fails a run that starts while another session's
    MCP relays start ("another OpenClaw process owns state-lifecycle", "Agent
    database cleanup failed"). The turn only sets the scene; what a test checks
    comes after it."""

    def start() -> str | None:
        try:
            if session_key != MAIN_SESSION:
                agent_id = session_key.split(":")[1]
                gateway.rpc("sessions.create", {"key": session_key, "agentId": agent_id})
            accepted = gateway.rpc(
                "agent",
                {"sessionKey": session_key, "message": message, "idempotencyKey": uuid.uuid4().hex},
            )
        except GatewayHarnessError:
            return None
        return str(accepted["runId"])

    outcomes: list[dict[str, Any]] = []

    def a_turn_that_ends_well() -> bool:
        run_id = wait_until(start, within=within, what=f"an owner turn in {session_key}", every=0.5)
        assert run_id is not None  # what wait_until returns holds
        outcome = wait_for_run(gateway, run_id, within)
        if outcome.get("status") == "ok":
            return True
        outcomes.append(outcome)
        if len(outcomes) == attempts:
            raise AssertionError(f"the owner's turns in {session_key} failed: {outcomes}")
        return False

    # A failed run's cleanup (which failed it) settles within seconds, and a run started
    # at once fails too: 2, 4, 8 s between turns. ``attempts`` ends the turns; the
    # deadline is a backstop above what that many turns take (each: two waits of
    # ``within``, the last ``agent.wait`` of 30 s, a pause).
    wait_until(
        a_turn_that_ends_well,
        within=attempts * (2 * within + 30 + 16),
        what=f"a turn in {session_key} that ends well",
        every=2,
        backoff=2,
    )


def wait_for_run(gateway: RealGateway, run_id: str, within: float) -> dict[str, Any]:
    """The run's outcome (``agent.wait``: a long poll of up to 20 s, asked again while the
    run is queued or running); past ``within``, the last answer ("timeout", "pending")."""
    try:
        return wait_until(
            lambda: gateway.rpc("agent.wait", {"runId": run_id, "timeoutMs": 20_000}, timeout=30),
            lambda outcome: outcome.get("status") not in ("timeout", "pending"),
            within=within,
            what=f"the run {run_id} to end",
            every=0,  # agent.wait itself waits for the run
        )
    except NotInTime as late:
        return cast(dict[str, Any], late.last)


def count_in(gateway: RealGateway, session_key: str, lines: Iterable[str]) -> dict[str, int]:
    """How many times each line was injected into ``session_key`` (transcript and pending)."""
    texts = gateway.history(session_key, message_limit=200).texts
    return {line: sum(line in text for text in texts) for line in lines}


def arrived(gateway: RealGateway, session_key: str, lines: list[str]) -> Callable[[], bool]:
    return lambda: all(count_in(gateway, session_key, lines).values())
