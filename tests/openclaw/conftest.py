"""The OpenClaw tier: a real OpenClaw gateway and the real bridge, on loopback.

Opt-in: it runs when ``MAILBOX_OPENCLAW_TESTS=1``, or when ``CI`` is set
(``MAILBOX_OPENCLAW_TESTS=0`` turns it off even then). Once enabled, a missing
install is made by ``scripts/install-openclaw.sh`` and a failure to install or
to start the gateway fails the tests: it never turns into a skip.

One gateway serves the whole test session (it needs about 1 GB and 15-25 s to
start); each test uses fresh agents, so fresh per-peer sessions, and gets the
gateway back running with the default ``gateway.tools.allow``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import Agent, connect_agents, register
from tests.openclaw.gateway import (
    DEFAULT_ALLOWED_TOOLS,
    GatewayHarnessError,
    OpenClawInstall,
    RealGateway,
)
from tests.openclaw.scripted_model import ScriptedModel
from tests.openclaw.two_agents import Side, two_sides
from tests.servers import ServerThread

ENABLE_VARIABLE = "MAILBOX_OPENCLAW_TESTS"


def tier_enabled() -> bool:
    flag = os.environ.get(ENABLE_VARIABLE, "").strip().lower()
    if flag:
        return flag not in ("0", "false", "no", "off")
    return bool(os.environ.get("CI"))


requires_openclaw = pytest.mark.skipif(
    not tier_enabled(),
    reason=f"OpenClaw tier is opt-in: set {ENABLE_VARIABLE}=1 "
    "(installs Node 24 + openclaw into ~/.cache/agent-mailbox/openclaw, ~1 GB of RAM)",
)


@pytest.fixture(scope="session")
def openclaw_install() -> OpenClawInstall:
    """The pinned install; made now if missing. Fails (never skips) when it cannot be."""
    try:
        return OpenClawInstall.ensure()
    except GatewayHarnessError as exc:
        failure = str(exc)
    pytest.fail(f"the OpenClaw tier is enabled but cannot be installed:\n{failure}", pytrace=False)


@pytest.fixture(scope="session")
def real_gateway(
    openclaw_install: OpenClawInstall, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RealGateway]:
    gateway = RealGateway(openclaw_install, tmp_path_factory.mktemp("openclaw"))
    _SESSION_GATEWAYS.append(gateway)
    failure = None
    try:
        gateway.start()
    except GatewayHarnessError as exc:
        failure = str(exc)
    if failure is not None:
        gateway.close()
        pytest.fail(f"the OpenClaw gateway did not start:\n{failure}", pytrace=False)
    yield gateway
    gateway.close()


_SESSION_GATEWAYS: list[RealGateway] = []


def pause_session_gateway() -> None:
    """Stop the session's shared gateway, if one runs, to keep one gateway on the machine.

    A test module with a gateway of its own calls this; the ``gateway`` fixture starts
    the shared one again when a later test needs it.
    """
    for shared in _SESSION_GATEWAYS:
        shared.stop()


@pytest.fixture
def gateway(real_gateway: RealGateway) -> Iterator[RealGateway]:
    """The session's gateway, running and with the default tools allowed."""
    if not real_gateway.running:
        real_gateway.start()
    if real_gateway.allowed_tools != DEFAULT_ALLOWED_TOOLS:
        real_gateway.set_allowed_tools(DEFAULT_ALLOWED_TOOLS)
    yield real_gateway


# -- a gateway whose model is scripted (runs that really finish) --------------------------


@pytest.fixture(scope="module")
def model() -> Iterator[ScriptedModel]:
    """The scripted model of this module's ``scripted_gateway``."""
    with ScriptedModel() as running:
        yield running


@pytest.fixture(scope="module")
def scripted_gateway(
    openclaw_install: OpenClawInstall,
    model: ScriptedModel,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RealGateway]:
    """A gateway of this module's own whose only model is ``model``; it stops the
    session's shared gateway meanwhile (one gateway at a time on the machine)."""
    pause_session_gateway()
    workdir = tmp_path_factory.mktemp("openclaw-scripted")
    gateway = RealGateway(openclaw_install, workdir)
    gateway.configure()
    gateway.cli("config", "patch", "--stdin", stdin=json.dumps(model.openclaw_config()))
    try:
        gateway.start()
        yield gateway
    finally:
        gateway.close()


def gateway_env(gateway: RealGateway) -> dict[str, str]:
    return {"OPENCLAW_GATEWAY_URL": gateway.url, "OPENCLAW_GATEWAY_TOKEN": gateway.token}


@pytest.fixture
def me(mailbox: ServerThread) -> Agent:
    """The agent whose bridge injects into OpenClaw."""
    return register(mailbox.url, "me")


def peer_of(mailbox: ServerThread, me: Agent, prefix: str) -> Agent:
    """A new agent connected with ``me``."""
    peer = register(mailbox.url, prefix)
    connect_agents(me, peer)
    return peer


@pytest.fixture
def sides(
    openclaw_install: OpenClawInstall, mailbox: ServerThread, tmp_path: Path
) -> Iterator[tuple[Side, Side]]:
    """Two agents connected on ``mailbox``, each behind its own gateway (``two_sides``);
    the session's shared gateway stops meanwhile."""
    pause_session_gateway()
    a, b = register(mailbox.url, "alice"), register(mailbox.url, "bob")
    connect_agents(a, b)
    with two_sides(openclaw_install, tmp_path, mailbox.url, a, b) as running:
        yield running


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    if report.failed:
        for value in getattr(item, "funcargs", {}).values():
            if isinstance(value, RealGateway):
                report.sections.append(("OpenClaw gateway log", value.log_tail(20_000)))
                break
    return report
