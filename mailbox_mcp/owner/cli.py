"""`mailbox-mcp`: the owner's command line, and the stdio MCP entry point.

Owner commands print for a person (stdout) and exit non-zero on failure.
`python -m mailbox_mcp` (or `mailbox-mcp stdio`) serves MCP on stdio, where
stdout belongs to the protocol: logs go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio

from mailbox_mcp import __version__
from mailbox_mcp.e2e.keys_cli import add_keys_parser, run_keys
from mailbox_mcp.errors import ConfigError, MailboxAPIError
from mailbox_mcp.mcp_server.serve_auth import serve_token
from mailbox_mcp.mcp_server.stdio import load_settings, run_stdio
from mailbox_mcp.mcp_server.stdio import log_to_stderr as _log_to_stderr
from mailbox_mcp.openclaw.home import main_workspace as openclaw_main_workspace
from mailbox_mcp.openclaw.workspace import prepare_peer_workspace
from mailbox_mcp.owner.doctor import run_doctor
from mailbox_mcp.owner.snippets import (
    SERVE_URL,
    claude_config,
    openclaw_dedicated_config,
    openclaw_main_config,
    systemd_unit,
)
from mailbox_mcp.safety.audit_cli import add_audit_parser, run_audit
from mailbox_mcp.safety.context import Safety
from mailbox_mcp.safety.ledger import Ledger
from mailbox_mcp.safety.owner_cli import add_owner_parsers, run_autonomy, run_peers, run_review
from mailbox_mcp.server_link.client import MailboxAPI
from mailbox_mcp.settings import BridgeSettings
from mailbox_wire import wire_time

log = logging.getLogger("mailbox_mcp")


# --- owner commands -------------------------------------------------------------------


def _api(settings: BridgeSettings, *, need_key: bool = True) -> MailboxAPI:
    key = settings.resolved_api_key()
    if need_key and not key:
        raise SystemExit(
            "mailbox-mcp: no API key. Run `mailbox-mcp register NAME` first, "
            "or set MAILBOX_API_KEY."
        )
    return MailboxAPI(settings.server_url, key)


async def _register(settings: BridgeSettings, args: argparse.Namespace) -> int:
    key_file = settings.api_key_file
    try:  # before registering: a key the owner never sees is lost for good
        key_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise SystemExit(
            f"mailbox-mcp: cannot use MAILBOX_STATE_DIR {key_file.parent}: {exc.strerror}"
        ) from None
    async with _api(settings, need_key=False) as api:
        agent = await api.register(args.name, args.description)
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(agent.api_key + "\n")
    except OSError as exc:
        print(f"Registered {agent.name}. API key (shown once, save it now):")
        print(f"  {agent.api_key}")
        print(f"mailbox-mcp: could not save it to {key_file}: {exc.strerror}", file=sys.stderr)
        return 1
    print(f"Registered {agent.name} on {settings.server_url}.")
    print(f"API key (shown once, saved to {key_file}, mode 0600):")
    print(f"  {agent.api_key}")
    print("Next: `mailbox-mcp connect PEER`, or `mailbox-mcp config openclaw|claude`.")
    return 0


async def _connect(settings: BridgeSettings, args: argparse.Namespace) -> int:
    async with _api(settings) as api:
        request = await api.request_connection(args.peer, args.message)
    _audit(settings, "connect_requested", peer=request.target_agent_name, text=args.message)
    print(f"Requested a connection to {request.target_agent_name}.")
    print(
        f"Verification code: {request.verification_code}  (expires {wire_time(request.expires_at)})"
    )
    print("Give this code to the other agent's owner; they run `mailbox-mcp approve CODE`.")
    return 0


async def _pending(settings: BridgeSettings, _args: argparse.Namespace) -> int:
    async with _api(settings) as api:
        pending = await api.pending()
    if not pending.incoming and not pending.outgoing:
        print("No pending connection requests.")
    for incoming in pending.incoming:
        note = json.dumps(incoming.message) if incoming.message else "(no note)"
        print(
            f"incoming  from {incoming.from_agent_name}  note {note}  "
            f"expires {wire_time(incoming.expires_at)}"
        )
    for outgoing in pending.outgoing:
        print(
            f"outgoing  to {outgoing.target_agent_name}  code {outgoing.verification_code}  "
            f"expires {wire_time(outgoing.expires_at)}"
        )
    return 0


async def _approve(settings: BridgeSettings, args: argparse.Namespace) -> int:
    async with _api(settings) as api:
        approved = await api.approve(args.code)
    _audit(settings, "connection_approved", peer=approved.peer_agent_name)
    print(f"Connected with {approved.peer_agent_name}.")
    return 0


async def _connections(settings: BridgeSettings, _args: argparse.Namespace) -> int:
    async with _api(settings) as api:
        connections = await api.connections()
    if not connections:
        print("No connections yet: `mailbox-mcp connect PEER`.")
    for c in connections:
        print(f"{c.peer_agent_name}  since {wire_time(c.connected_at)}")
    return 0


async def _revoke(settings: BridgeSettings, args: argparse.Namespace) -> int:
    async with _api(settings) as api:
        await api.revoke(args.peer)
    _retire_reply_handles(settings, args.peer)
    print(f"Disconnected from {args.peer}.")
    return 0


def _retire_reply_handles(settings: BridgeSettings, peer: str) -> None:
    """Every reply handle minted for `peer` stops working now, whether or not a
    bridge is listening to hear the revoke."""
    ledger = Ledger(settings.state_dir)
    try:
        ledger.bump_epoch(peer)
    finally:
        ledger.close()


async def _block(settings: BridgeSettings, args: argparse.Namespace) -> int:
    async with _api(settings) as api:
        blocked = await api.block(args.agent)
    # Blocking also revokes a connection: its reply handles stop working too.
    _retire_reply_handles(settings, blocked.agent_name)
    print(
        f"Blocked {blocked.agent_name}: its connection requests are refused silently "
        "and any connection with it is revoked. Undo with `mailbox-mcp unblock NAME`."
    )
    return 0


async def _unblock(settings: BridgeSettings, args: argparse.Namespace) -> int:
    async with _api(settings) as api:
        await api.unblock(args.agent)
    print(f"Unblocked {args.agent}.")
    return 0


async def _blocks(settings: BridgeSettings, _args: argparse.Namespace) -> int:
    async with _api(settings) as api:
        blocks = await api.blocks()
    if not blocks:
        print("No blocked agents.")
    for b in blocks:
        print(f"{b.agent_name}  blocked {wire_time(b.blocked_at)}")
    return 0


def _audit(settings: BridgeSettings, event: str, **fields: str | None) -> None:
    safety = Safety(settings, settings.resolved_api_key())
    try:
        safety.audit.record(event, **fields)
    finally:
        safety.close()


async def _doctor(settings: BridgeSettings, _args: argparse.Namespace) -> int:
    return await run_doctor(settings)


def _run_service(args: argparse.Namespace) -> int:
    _log_to_stderr()
    settings = load_settings()
    from mailbox_mcp.mcp_server.serve import run_listen, run_serve

    try:
        if args.command == "serve":
            anyio.run(run_serve, settings, args.host, args.port)
        else:
            anyio.run(run_listen, settings)
    except ConfigError as exc:
        print(f"mailbox-mcp: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0


def _config(settings: BridgeSettings, args: argparse.Namespace) -> int:
    if args.host.startswith("systemd-"):
        agent_id = settings.agent_id if args.plain else _peer_agent_id(settings)
        print(systemd_unit(settings, args.host.removeprefix("systemd-"), agent_id), end="")
        return 0
    if args.host == "claude":
        print(json.dumps(claude_config(settings, include_key=args.include_key), indent=2))
        return 0
    try:
        # A stdio entry runs the bridge in the state dir (its cwd): a cwd that does not
        # exist fails the spawn, and OpenClaw then runs the agent with no mailbox tools.
        settings.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        # `--serve` shares one `mailbox-mcp serve` among all sessions; its token is only
        # read (or made, 0600) when it goes into the printed entry.
        token = serve_token(settings) if (args.serve and args.include_key) else None
    except OSError as exc:
        print(f"mailbox-mcp: cannot use the state dir {settings.state_dir}: {exc}", file=sys.stderr)
        return 1
    except ConfigError as exc:  # an empty serve token file
        print(f"mailbox-mcp: {exc}", file=sys.stderr)
        return 2
    if args.plain:
        config = openclaw_main_config(
            settings, include_key=args.include_key, serve_url=args.serve, serve_token=token
        )
    else:
        workspaces = _workspaces(settings, args)
        if isinstance(workspaces, int):
            return workspaces
        workspace, main_workspace = workspaces
        config = openclaw_dedicated_config(
            settings,
            include_key=args.include_key,
            agent_id=_peer_agent_id(settings),
            workspace=workspace,
            main_workspace=main_workspace,
            serve_url=args.serve,
            serve_token=token,
        )
    print(json.dumps(config, indent=2))
    return 0


def _workspaces(settings: BridgeSettings, args: argparse.Namespace) -> tuple[str, str] | int:
    """The peer agent's workspace (prepared unless told not to) and main's; or an exit code."""
    main_workspace = args.main_workspace
    if main_workspace is None:
        # Listing agents gives an unpinned `main` another folder: pin the one it has.
        found = openclaw_main_workspace()
        main_workspace = found.path
        print(
            f"mailbox-mcp: main keeps its workspace {found.path} ({found.source}); "
            "--main-workspace to name another",
            file=sys.stderr,
        )
    workspace = args.workspace or str(settings.state_dir / "openclaw-workspace")
    if _same_folder(workspace, main_workspace):
        print(
            "mailbox-mcp: the peer agent needs a workspace of its own, "
            f"not the main agent's ({main_workspace}): pass --workspace",
            file=sys.stderr,
        )
        return 2
    if args.prepare_workspace:
        # Before the agent's first run, or OpenClaw seeds BOOTSTRAP.md, a first-run
        # ritual its first peer message would walk into. Never over the owner's files.
        folder = Path(workspace)
        try:
            done = prepare_peer_workspace(folder)
        except OSError as exc:
            print(f"mailbox-mcp: cannot prepare the workspace {folder}: {exc}", file=sys.stderr)
            return 1
        for path, what in done:
            if what == "kept":
                print(
                    f"mailbox-mcp: kept {path}: you edited it, so it stays as it is; check that "
                    "it tells the agent to answer with mailbox_reply",
                    file=sys.stderr,
                )
            else:
                print(f"mailbox-mcp: {what} {path}", file=sys.stderr)
    return workspace, main_workspace


def _same_folder(one: str, other: str) -> bool:
    return Path(one).expanduser().resolve() == Path(other).expanduser().resolve()


def _serve_url(value: str) -> str:
    """`--serve URL`: where OpenClaw reaches `mailbox-mcp serve` (its /mcp endpoint)."""
    parts = urlsplit(value)
    try:
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # a port that is not a number
        valid = False
    if not valid:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a URL like {SERVE_URL} (where `mailbox-mcp serve` listens)"
        )
    return value


def _peer_agent_id(settings: BridgeSettings) -> str:
    """The dedicated peer agent: `mailbox`, unless OPENCLAW_AGENT_ID names another one."""
    explicit = "agent_id" in settings.model_fields_set and settings.agent_id != "main"
    return settings.agent_id if explicit else "mailbox"


Command = Callable[[BridgeSettings, argparse.Namespace], Coroutine[Any, Any, int]]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mailbox-mcp",
        description="Agent Mailbox bridge: owner commands, and the MCP server for your agent.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("stdio", help="serve MCP on stdio (what an LLM host starts)")
    p = commands.add_parser(
        "serve", help="run the listener and serve MCP over HTTP to every session (one process)"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    p.add_argument("--port", type=int, default=8766, help="port (default 8766)")
    commands.add_parser("listen", help="run the listener alone (inject into OpenClaw)")
    p = commands.add_parser("register", help="register an agent and save its API key")
    p.add_argument("name", help="agent name: a-z, 0-9, dashes, 3-32 characters")
    p.add_argument("--description", help="a short public description")
    p = commands.add_parser("connect", help="request a connection; prints the code to hand over")
    p.add_argument("peer")
    p.add_argument("--message", help="a short note shown to the other agent")
    commands.add_parser("pending", help="list pending connection requests")
    p = commands.add_parser("approve", help="approve a request with the code you were given")
    p.add_argument("code")
    commands.add_parser("connections", help="list connected agents")
    p = commands.add_parser("disconnect", help="revoke a connection")
    p.add_argument("peer")
    p = commands.add_parser(
        "block", help="refuse an agent's connection requests silently (revokes a connection)"
    )
    p.add_argument("agent")
    p = commands.add_parser("unblock", help="undo a block")
    p.add_argument("agent")
    commands.add_parser("blocks", help="list blocked agents")
    commands.add_parser("doctor", help="check server, key, gateway and permissions")
    add_keys_parser(commands)
    add_owner_parsers(commands)
    add_audit_parser(commands)
    p = commands.add_parser(
        "config", help="print a ready-to-paste MCP server entry, or a systemd user unit"
    )
    p.add_argument("host", choices=["openclaw", "claude", "systemd-serve", "systemd-listen"])
    p.add_argument(
        "--plain",
        action="store_true",
        help="openclaw: peer sessions in the main agent, with the owner's tools "
        "(needs gateway.tools.allow sessions_send); the default is the dedicated agent",
    )
    # The dedicated agent used to be opt-in; it is the default now, and the flag stays.
    p.add_argument("--dedicated", action="store_true", help=argparse.SUPPRESS)
    p.add_argument(
        "--serve",
        nargs="?",
        const=SERVE_URL,
        type=_serve_url,
        metavar="URL",
        help=f"openclaw: reach one `mailbox-mcp serve` (default {SERVE_URL}) "
        "instead of a stdio bridge per session",
    )
    p.add_argument("--workspace", help="openclaw: the peer agent's own workspace folder")
    p.add_argument(
        "--main-workspace",
        help="openclaw: the main agent's existing workspace (default: read from openclaw.json)",
    )
    p.add_argument(
        "--prepare-workspace",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="openclaw: write the peer agent's role files where missing, which keeps "
        "OpenClaw's first-run BOOTSTRAP.md out (default: yes)",
    )
    p.add_argument(
        "--include-key",
        action="store_true",
        help="put the secrets themselves in the entry (API key and gateway token; "
        "with --serve, the serve token)",
    )
    return parser


COMMANDS: dict[str, Command] = {
    "register": _register,
    "connect": _connect,
    "pending": _pending,
    "approve": _approve,
    "connections": _connections,
    "disconnect": _revoke,
    "block": _block,
    "unblock": _unblock,
    "blocks": _blocks,
    "doctor": _doctor,
    "keys": run_keys,
    "autonomy": run_autonomy,
    "peers": run_peers,
    "review": run_review,
    "audit": run_audit,
}


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "stdio":
        return run_stdio()
    if args.command in ("serve", "listen"):
        return _run_service(args)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(message)s")
    settings = load_settings()
    if args.command == "config":
        return _config(settings, args)
    try:
        return asyncio.run(COMMANDS[args.command](settings, args))
    except MailboxAPIError as exc:
        print(f"mailbox-mcp: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
