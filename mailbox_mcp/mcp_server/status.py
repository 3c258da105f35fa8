"""`mailbox_status`: is the mailbox working, and if not, what to fix."""

from __future__ import annotations

import sqlite3
import time

from mailbox_mcp.bridge import Bridge
from mailbox_mcp.errors import BridgeError, MailboxAPIError, ServerUnreachable
from mailbox_mcp.mcp_server.error_map import NEXT_STEP
from mailbox_mcp.mcp_server.results import StatusResult
from mailbox_mcp.safety import review


async def status(bridge: Bridge) -> StatusResult:
    settings = bridge.settings
    reachable = True
    name = bridge.identity.name if bridge.identity else None
    error = bridge.startup_error
    fix = None
    if bridge.api_key:
        try:
            name = (await bridge.identify()).name
        except MailboxAPIError as exc:
            reachable = not isinstance(exc, ServerUnreachable)
            error = exc.message
            fix = NEXT_STEP.get(exc.code)
    else:
        error = "no mailbox API key configured"
        fix = "run `mailbox-mcp register NAME`, or set MAILBOX_API_KEY in this server's env"
    listener = "not running (pull mode: read mail with mailbox_inbox)"
    reason = None
    listening = None
    delivered = 0
    run_failure = None
    if settings.push_mode:
        election = bridge.election
        if election is not None and not election.held:
            holder = election.holder_pid()
            listener = "standby (another bridge process of this agent listens)"
            listening = f"pid {holder} (another process)" if holder else "another process"
        elif bridge.listener is None:
            listener = "starting"
        else:
            listener = bridge.listener.status.state
            reason = bridge.listener.status.reason
            listening = f"pid {bridge.pid} (this process)"
        if bridge.injector is not None:
            delivered = bridge.injector.status.delivered
            if bridge.injector.status.last_error:
                since = bridge.injector.status.retrying_since or time.time()
                error = (
                    f"cannot inject into OpenClaw for {time.time() - since:.0f} s: "
                    f"{bridge.injector.status.last_error}"
                )
                fix = bridge.injector.status.last_fix
        failure = bridge.runs.last_failure if bridge.runs is not None else None
        if failure is not None:
            run_failure = f"{failure.describe()}; fix: {failure.fix}"
    try:
        waiting = review.count_waiting(bridge.safety.ledger)
    except (BridgeError, OSError, sqlite3.Error):  # a damaged state dir: the tools say so
        waiting = 0
    return StatusResult(
        agent_name=name,
        server_url=settings.server_url,
        server_reachable=reachable,
        mode="push" if settings.push_mode else "pull",
        listener=listener,
        listener_reason=reason,
        listening_process=listening,
        delivered=delivered,
        last_error=error,
        fix=fix,
        gateway_url=settings.gateway_url,
        injection=settings.injection_path if settings.push_mode else None,
        last_run_failure=run_failure,
        review_waiting=waiting,
    )
