"""Two agents, each behind its own real OpenClaw gateway, talking through one mailbox server.

Shared by ``test_two_agents.py`` and ``bench/two_agents.py``. Each side has its own
``ScriptedModel`` (so a request's side is the model that got it), its own gateway
configured with ``openclaw_dedicated_config``: OpenClaw starts the bridge itself
(stdio, ``mcp.servers.mailbox``) in each session that runs, peer mail goes to the
fenced ``mailbox`` agent (``agent:mailbox:dm:mailbox-<peer>``), and the owner talks
in ``agent:main:main``.

The bridge is started lazily, at a session's first run: ``Side.wake()`` runs one
owner turn in the main session so that the side's first bridge (the listener) runs.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailbox_mcp.openclaw.workspace import prepare_peer_workspace
from mailbox_mcp.owner.snippets import openclaw_dedicated_config
from mailbox_mcp.settings import BridgeSettings
from tests.helpers import Agent
from tests.mcp.conftest import REPLY_LINE
from tests.openclaw.dedicated import MAIN_SESSION, PEER_AGENT, peer_session
from tests.openclaw.gateway import OpenClawInstall, RealGateway
from tests.openclaw.processes import bridge_pids
from tests.openclaw.scripted_model import ModelRequest, ScriptedModel
from tests.waiting import wait_until

SEND_TOOL = "mailbox__mailbox_send"  # the owner's, in main
REPLY_TOOL = "mailbox__mailbox_reply"  # the fenced agent's only mailbox tool


@dataclass
class Side:
    name: str
    agent: Agent
    gateway: RealGateway
    model: ScriptedModel
    state_dir: Path

    def peer_key(self, other: Side) -> str:
        """This side's per-peer session for ``other``."""
        return peer_session(other.agent)

    def ask(self, message: str) -> None:
        """An owner turn in this side's main session (starts a run, returns at once)."""
        self.gateway.rpc(
            "agent",
            {"sessionKey": MAIN_SESSION, "message": message, "idempotencyKey": uuid.uuid4().hex},
        )

    def wake(self, timeout: float = 90) -> None:
        """Run one owner turn in main, so that OpenClaw starts this side's first bridge,
        and wait until a bridge process runs."""
        before = len(self.model.requests)
        self.ask(f"hello from the owner of {self.name}")
        self.model.wait_for(
            lambda rs: any(r.session == MAIN_SESSION for r in rs[before:]),
            timeout,
            f"{self.name}: a run in {MAIN_SESSION}",
        )
        wait_until(self.bridge_pids, within=timeout, what=f"{self.name}: a bridge OpenClaw started")

    def bridge_pids(self) -> list[int]:
        """Bridge processes OpenClaw started for this side (by their state dir)."""
        return bridge_pids(self.state_dir)


def send_call(to: str, content: str, **fields: Any) -> dict[str, Any]:
    """The ``tool_call`` arguments that call the mailbox send tool behind tool search."""
    return {"id": SEND_TOOL, "args": {"to": to, "content": content, **fields}}


def reply_call(reply_token: str, content: str) -> dict[str, Any]:
    """The ``tool_call`` arguments that call the mailbox reply tool behind tool search."""
    return {"id": REPLY_TOOL, "args": {"reply_token": reply_token, "content": content}}


def envelope_reply_token(request: ModelRequest) -> str | None:
    """The reply token of the last envelope a request carries."""
    found = REPLY_LINE.findall(request.text())
    return found[-1] if found else None


def _configure(side_dir: Path, gateway: RealGateway, model: ScriptedModel, env: dict[str, str]):
    gateway.configure()
    gateway.cli("config", "patch", "--stdin", stdin=json.dumps(model.openclaw_config()))
    settings = BridgeSettings(**env)  # type: ignore[arg-type]
    workspace = side_dir / "workspace-mailbox"
    main_workspace = side_dir / "workspace-main"
    main_workspace.mkdir(parents=True, exist_ok=True)
    prepare_peer_workspace(workspace)
    patch = openclaw_dedicated_config(
        settings,
        include_key=True,
        agent_id=PEER_AGENT,
        workspace=str(workspace),
        main_workspace=str(main_workspace),
    )
    patch.pop("gateway")  # the test gateway already binds loopback
    patch["mcp"]["servers"]["mailbox"]["env"].update(
        MAILBOX_RETRY_INITIAL_SECONDS="0.05", MAILBOX_RETRY_MAX_SECONDS="0.3"
    )
    gateway.cli("config", "patch", "--stdin", stdin=json.dumps(patch))


@contextlib.contextmanager
def two_sides(
    install: OpenClawInstall, workdir: Path, server_url: str, a: Agent, b: Agent
) -> Iterator[tuple[Side, Side]]:
    """Two configured, running gateways with their models (``a`` and ``b`` already
    connected on the server at ``server_url``). Stops everything on exit."""
    with contextlib.ExitStack() as stack:
        sides = []
        for name, agent in (("A", a), ("B", b)):
            side_dir = workdir / name
            state_dir = side_dir / "bridge-state"
            state_dir.mkdir(parents=True)
            model = stack.enter_context(ScriptedModel())
            gateway = RealGateway(install, side_dir)
            stack.callback(gateway.close)
            env = {
                "MAILBOX_SERVER_URL": server_url,
                "MAILBOX_API_KEY": agent.api_key,
                "MAILBOX_STATE_DIR": str(state_dir),
                "OPENCLAW_GATEWAY_URL": gateway.url,
                "OPENCLAW_GATEWAY_TOKEN": gateway.token,
                "OPENCLAW_AGENT_ID": PEER_AGENT,
            }
            _configure(side_dir, gateway, model, env)
            sides.append(Side(name, agent, gateway, model, state_dir))
        for side in sides:  # one at a time: two starting gateways on two cores are slow
            side.gateway.start()
        yield sides[0], sides[1]
