"""Did the agent read it? Watches the OpenClaw run each injected message starts.

The gateway accepts a message before the agent's run begins, and a run can still
fail before the model sees anything: an allow list that matches no tool, a stdio
bridge OpenClaw cannot start (its cwd missing), no working model. The message is
delivered (the session's transcript holds it, and it is acknowledged), but the
owner must learn that the agent never read it. So the listener asks the gateway
for each run's outcome (`agent.wait`, in the background, one run at a time) and
keeps the last failure: `mailbox_status` shows it, and a small file in the state
dir lets `mailbox-mcp doctor` show it too. A later run that succeeds clears it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path

import anyio

from mailbox_mcp.openclaw.gateway import GatewayClient
from mailbox_mcp.openclaw.gateway_errors import GatewayError
from mailbox_mcp.server_link.retry import Backoff

log = logging.getLogger(__name__)

# Each `agent.wait` returns within this (below the client's request timeout); a run
# still going goes back to the end of the queue and is asked about again.
WAIT_MS = 8_000
# Past this, a run's outcome is no longer worth asking for (a long, healthy run).
GIVE_UP_SECONDS = 15 * 60
# Outcomes waited for at most; a burst beyond it forgets the oldest (only a report).
MAX_WATCHED = 256
# `status: "error"` that is no failure: a newer input replaced the run.
_NOT_A_FAILURE = {"superseded"}


@dataclass(frozen=True)
class RunFailure:
    session_key: str
    error: str
    at: float

    @property
    def fix(self) -> str:
        error = self.error.lower()
        if "no callable tools remain" in error:
            return (
                "the agent's tools.allow matches no tool: make it "
                '`["mailbox__mailbox_reply"]` for `mcp.servers.mailbox`, and check that '
                "OpenClaw can start the bridge (its cwd, the state dir, must exist: "
                "`mailbox-mcp config openclaw` makes it)"
            )
        if "agent database cleanup failed" in error or "another openclaw process owns" in error:
            # OpenClaw's own state database (seen with 2026.9.6): sticky until a restart
            return "OpenClaw's own state database failed: restart the gateway"
        if "api key" in error or "unauthorized" in error or "no model" in error:
            return "give this OpenClaw agent a working model (`openclaw models status`)"
        return f"open the session {self.session_key} in OpenClaw: the message is in it, unread"

    def describe(self, now: float | None = None) -> str:
        ago = max(0, (now or time.time()) - self.at)
        return f"the run in {self.session_key} failed {ago:.0f} s ago: {self.error}"


def failure_file(state_dir: Path, agent_id: str) -> Path:
    return state_dir / f"run-failure-{agent_id}.json"


def load_failure(state_dir: Path, agent_id: str) -> RunFailure | None:
    """The last failed run recorded by this agent's listener (for `doctor`)."""
    try:
        data = json.loads(failure_file(state_dir, agent_id).read_text())
        return RunFailure(str(data["session_key"]), str(data["error"]), float(data["at"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


@dataclass
class _Watched:
    session_key: str
    run_id: str
    since: float


class RunWatcher:
    def __init__(
        self,
        gateway: GatewayClient,
        state_dir: Path,
        agent_id: str,
        *,
        backoff: Backoff | None = None,
    ) -> None:
        self._gateway = gateway
        self._backoff = backoff or Backoff()
        self._file = failure_file(state_dir, agent_id)
        self._queue: deque[_Watched] = deque(maxlen=MAX_WATCHED)
        self._wake = anyio.Event()
        self.last_failure: RunFailure | None = load_failure(state_dir, agent_id)

    def watch(self, session_key: str, run_id: str | None) -> None:
        if run_id:
            self._queue.append(_Watched(session_key, run_id, time.monotonic()))
            self._wake.set()

    async def run(self) -> None:
        """Ask for outcomes until cancelled (the listener's life)."""
        while True:
            if not self._queue:
                self._wake = anyio.Event()
                await self._wake.wait()
                continue
            watched = self._queue.popleft()
            try:
                outcome = await self._gateway.wait_for_run(watched.run_id, WAIT_MS)
                self._backoff.reset()
            except GatewayError as exc:
                # The gateway is down or restarting: the run's fate is unknown; the
                # injection path reports the gateway itself.
                log.debug("cannot ask for run %s: %s", watched.run_id, exc)
                outcome = {"status": "unknown"}
                await anyio.sleep(self._backoff.delay_after(exc))
            except Exception:  # a report must never take the listener down
                log.exception("cannot ask for run %s", watched.run_id)
                continue
            self._record(watched, outcome)

    def _record(self, watched: _Watched, outcome: dict[str, object]) -> None:
        status = outcome.get("status")
        if status == "ok":
            self._clear()
        elif status == "error" and outcome.get("stopReason") not in _NOT_A_FAILURE:
            error = str(outcome.get("error") or "the run failed")[:500]
            self._fail(RunFailure(watched.session_key, error, time.time()))
        elif status in ("timeout", "pending", "unknown"):
            if time.monotonic() - watched.since < GIVE_UP_SECONDS:
                self._queue.append(watched)

    def _fail(self, failure: RunFailure) -> None:
        log.warning("%s; fix: %s", failure.describe(), failure.fix)
        self.last_failure = failure
        temporary = self._file.with_suffix(".tmp")
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump(asdict(failure), handle)
            temporary.replace(self._file)
        except OSError as exc:
            log.debug("cannot keep the run failure in %s: %s", self._file, exc)

    def _clear(self) -> None:
        if self.last_failure is not None:
            log.info("a run succeeded again; the last failure is cleared")
        self.last_failure = None
        with contextlib.suppress(OSError):
            self._file.unlink()
