"""`mailbox-mcp doctor`: checks every link a message crosses, and says how to fix each."""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from pydantic import ValidationError

from mailbox_mcp import __version__
from mailbox_mcp.errors import BridgeError, MailboxAPIError, ServerUnreachable
from mailbox_mcp.inbound.election import ListenerLock
from mailbox_mcp.inbound.run_watch import load_failure
from mailbox_mcp.openclaw.config import OpenClawConfigError, load_config
from mailbox_mcp.openclaw.gateway import GatewayClient
from mailbox_mcp.openclaw.gateway_errors import SESSIONS_SEND_FIX, TOKEN_FIX
from mailbox_mcp.openclaw.home import bridge_env, config_path
from mailbox_mcp.openclaw.policy import FIX as POLICY_FIX
from mailbox_mcp.openclaw.policy import inspect_policy
from mailbox_mcp.openclaw.probe import GatewayCheck, check_gateway
from mailbox_mcp.openclaw.workspace import CURRENT, EDITED, MISSING, inspect_peer_workspace
from mailbox_mcp.safety import review
from mailbox_mcp.server_link.client import MailboxAPI
from mailbox_mcp.settings import BridgeSettings


@dataclass
class Check:
    name: str
    ok: bool | None  # None: skipped
    detail: str
    fix: str | None = None
    warning: bool = False  # printed as WARN, with its fix, without failing doctor


async def collect_checks(settings: BridgeSettings) -> list[Check]:
    checks: list[Check] = []
    key = settings.resolved_api_key()
    async with MailboxAPI(settings.server_url, key) as api:
        try:
            await api.health()
            checks.append(Check("server", True, f"{settings.server_url} answers"))
        except MailboxAPIError as exc:
            checks.append(
                Check(
                    "server",
                    False,
                    exc.message,
                    "start the server (`mailbox-server`) or fix MAILBOX_SERVER_URL",
                )
            )
        if not key:
            checks.append(
                Check(
                    "api key",
                    False,
                    f"no API key (MAILBOX_API_KEY is not set and {settings.api_key_file} "
                    "does not exist)",
                    "run `mailbox-mcp register NAME`, or set MAILBOX_API_KEY",
                )
            )
        elif not checks[-1].ok:
            checks.append(Check("api key", None, "not checked: the server does not answer"))
        else:
            source = _key_source(settings)
            try:
                me = await api.me()
                checks.append(Check("api key", True, f"valid, agent {me.name} ({source})"))
                if settings.push_mode:
                    checks.append(listener_check(settings, me.agent_id))
                    run_failure = run_failure_check(settings, me.agent_id)
                    if run_failure is not None:
                        checks.append(run_failure)
            except ServerUnreachable as exc:
                checks.append(
                    Check(
                        "api key",
                        False,
                        exc.message,
                        "start the server (`mailbox-server`) or fix MAILBOX_SERVER_URL",
                    )
                )
            except MailboxAPIError as exc:
                checks.append(
                    Check(
                        "api key",
                        False,
                        f"{exc.code}: {exc.message} ({source})",
                        "use the key `mailbox-mcp register` printed: set MAILBOX_API_KEY to it "
                        f"(or save it in {settings.api_key_file}), or register a new agent",
                    )
                )
    if not settings.push_mode:
        checks.append(
            Check(
                "gateway",
                None,
                "OPENCLAW_GATEWAY_URL is not set: pull mode, the model reads mail with "
                "mailbox_inbox",
            )
        )
        return checks
    assert settings.gateway_url is not None
    token = settings.gateway_token.get_secret_value() if settings.gateway_token else ""
    if not token:
        checks.append(
            Check(
                "gateway token",
                False,
                "OPENCLAW_GATEWAY_TOKEN is not set",
                "set OPENCLAW_GATEWAY_TOKEN to gateway.auth.token from openclaw.json",
            )
        )
        return checks
    try:
        gateway = GatewayClient(settings.gateway_url, token, settings.session_agent_id, __version__)
    except ValueError as exc:
        checks.append(Check("gateway", False, str(exc), "fix OPENCLAW_GATEWAY_URL"))
        return checks
    async with gateway:
        try:
            result = await check_gateway(gateway)
        except ValueError as exc:  # a URL the WebSocket client cannot use (e.g. a bad port)
            checks.append(Check("gateway", False, str(exc), "fix OPENCLAW_GATEWAY_URL"))
            return checks
    gateway_checks = _gateway_checks(settings.gateway_url, result)
    if settings.injection_path == "agent":
        # The `agent` method needs no gateway.tools.allow: whether HTTP sessions_send
        # is allowed does not matter, and for a fenced agent it must not be.
        gateway_checks[-1] = Check(
            "injection",
            True if result.token_accepted else None,
            f"through the gateway WebSocket method `agent` into "
            f"{settings.session_key('<peer>')} (no gateway.tools.allow needed)",
        )
    else:
        gateway_checks.append(
            Check(
                "injection",
                True if result.sessions_send_allowed else None,
                f"through HTTP sessions_send into {settings.session_key('<peer>')}, "
                "caller = target",
            )
        )
    checks.extend(gateway_checks)
    checks.append(peer_policy_check(settings))
    role_files = role_files_check(settings)
    if role_files is not None:
        checks.append(role_files)
    return checks


def peer_policy_check(settings: BridgeSettings) -> Check:
    """Fail when a dedicated peer agent reaches more of the mailbox than the reply; warn
    when runs started by peers' messages keep the owner's own tools (the plain setup)."""
    finding = inspect_policy(config_path(), settings.session_agent_id)
    if finding.safe is None:
        # An openclaw.json that cannot be read as OpenClaw's config comes with its fix.
        return Check(
            "peer agent tools",
            None,
            f"not checked: {finding.detail}",
            finding.fix,
            warning=finding.fix is not None,
        )
    if finding.safe:
        return Check("peer agent tools", True, finding.detail)
    if finding.reaches_owner_tools:
        return Check("peer agent tools", False, finding.detail, finding.fix)
    return Check("peer agent tools", None, finding.detail, POLICY_FIX, warning=True)


def role_files_check(settings: BridgeSettings) -> Check | None:
    """The peer agent's role files: an unchanged old version is rewritten by `config
    openclaw`; a file the owner edited is left alone, and said so here."""
    try:
        config = load_config(config_path())
    except (OSError, OpenClawConfigError):
        return None  # the peer agent tools check says what is wrong with the file
    folder = config.agent(settings.session_agent_id).workspace
    if settings.session_agent_id == "main" or not folder:
        return None
    roles = inspect_peer_workspace(Path(folder).expanduser())
    stale = [r.path.name for r in roles if r.state not in (CURRENT, EDITED, MISSING)]
    edited = [r.path.name for r in roles if r.state == EDITED]
    if stale:
        return Check(
            "peer agent role files",
            None,
            f"{', '.join(stale)} in {folder} are an older version (they name tools the agent "
            "no longer has)",
            "run `mailbox-mcp config openclaw` again: it updates files you did not edit",
            warning=True,
        )
    if edited:
        return Check(
            "peer agent role files",
            None,
            f"{', '.join(edited)} in {folder}: edited by you, so left as they are",
            "make sure they tell the agent to answer with mailbox_reply(reply_token=..., "
            "content=...), its only tool",
            warning=True,
        )
    return Check("peer agent role files", True, f"current in {folder}")


def review_check(settings: BridgeSettings) -> Check | None:
    """What waits for the owner (held replies, screened-out messages)."""
    from mailbox_mcp.safety.context import Safety
    from mailbox_mcp.safety.owner_cli import expire_and_audit

    safety = Safety(settings, settings.resolved_api_key())
    try:
        expire_and_audit(safety)
        waiting = review.count_waiting(safety.ledger)
    except (BridgeError, OSError, sqlite3.Error) as exc:
        return Check("owner review", None, f"not checked: {exc}")
    finally:
        safety.close()
    if not waiting:
        return None
    return Check(
        "owner review",
        None,
        f"{waiting} item{'s' if waiting != 1 else ''} wait{'' if waiting != 1 else 's'} for "
        "your decision (replies past a peer's budget, messages the guard held)",
        "`mailbox-mcp review`, then `review approve ID` or `review reject ID`",
        warning=True,
    )


def _key_source(settings: BridgeSettings) -> str:
    if settings.api_key is not None and settings.api_key.get_secret_value().strip():
        return "key from MAILBOX_API_KEY"
    return f"key from {settings.api_key_file}"


def _gateway_checks(url: str, result: GatewayCheck) -> list[Check]:
    """One line per link; a ``None`` in ``result`` (not checked) is a skip, not a failure."""
    if result.token_accepted is None:
        token = Check("gateway token", None, "not checked: the gateway does not answer")
    elif result.token_accepted:
        token = Check("gateway token", True, "accepted")
    else:
        token = Check("gateway token", False, "refused", result.token_fix or TOKEN_FIX)

    if result.sessions_send_allowed is None:
        why = (
            "the gateway refused the token"
            if result.token_accepted is False
            else "the gateway does not answer"
        )
        send = Check("sessions_send allowed", None, f"not checked: {why}")
    elif result.sessions_send_allowed:
        send = Check("sessions_send allowed", True, "the gateway lets the bridge inject messages")
    else:
        send = Check(
            "sessions_send allowed",
            False,
            "the gateway refuses sessions_send over HTTP",
            result.sessions_send_fix or SESSIONS_SEND_FIX,
        )
    reachable = Check(
        "gateway",
        result.reachable,
        f"{url} {'answers' if result.reachable else 'does not answer'}",
        None if result.reachable else result.reachable_fix,
    )
    return [reachable, token, send]


def run_failure_check(settings: BridgeSettings, agent_id: str) -> Check | None:
    """The last run an injected message started that failed, as the listener saw it."""
    failure = load_failure(settings.state_dir, agent_id)
    if failure is None:
        return None
    return Check("agent runs", None, failure.describe(), failure.fix, warning=True)


def listener_check(settings: BridgeSettings, agent_id: str) -> Check:
    """Which bridge process holds this agent's listener lock (information, never a failure)."""
    lock = ListenerLock(settings.state_dir, agent_id)
    if lock.try_acquire():
        lock.release()
        return Check(
            "listener",
            None,
            "no bridge process of this agent is listening now; one starts with the LLM "
            "host's first session that uses the mailbox tools",
        )
    holder = lock.holder_pid()
    return Check("listener", True, f"bridge process pid {holder or '?'} holds the listener")


def as_openclaw_starts_it(settings: BridgeSettings) -> tuple[BridgeSettings, str | None]:
    """The bridge's settings as OpenClaw starts it: what the owner's shell leaves unset
    (the agent id, the gateway token, ...) comes from `mcp.servers.mailbox.env` in
    openclaw.json, so that doctor checks the setup the gateway really runs. Returns the
    settings and a line naming what was taken from where (never the values)."""
    path = config_path()
    try:
        entry_env = bridge_env(load_config(path))
    except (OSError, OpenClawConfigError):
        return settings, None
    aliases = {field.alias for field in BridgeSettings.model_fields.values() if field.alias}
    taken = {
        key: value for key, value in entry_env.items() if key in aliases and key not in os.environ
    }
    if not taken:
        return settings, None
    try:
        # By alias, as the environment would give them (the settings' init takes aliases).
        adopted = BridgeSettings(**cast(dict[str, Any], taken))
    except ValidationError as exc:
        return settings, f"not using {path}'s mcp.servers.mailbox.env: {exc.error_count()} invalid"
    return adopted, f"from {path} (mcp.servers.mailbox.env): {', '.join(sorted(taken))}"


async def run_doctor(settings: BridgeSettings) -> int:
    settings, adopted = as_openclaw_starts_it(settings)
    if adopted:
        print(f"[info] settings {adopted}")
    checks = await collect_checks(settings)
    waiting = review_check(settings)
    if waiting is not None:
        checks.append(waiting)
    failed = False
    for check in checks:
        mark = "skip" if check.ok is None else ("ok" if check.ok else "FAIL")
        if check.warning:
            mark = "WARN"
        print(f"[{mark:>4}] {check.name}: {check.detail}")
        if check.warning and check.fix:
            print(f"       fix: {check.fix}")
        if check.ok is False:
            failed = True
            if check.fix:
                print(f"       fix: {check.fix}")
    print("All checks passed." if not failed else "Some checks failed.")
    return 1 if failed else 0
