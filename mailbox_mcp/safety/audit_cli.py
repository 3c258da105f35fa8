"""`mailbox-mcp audit [--verify] [--json]`: the owner reads and checks the audit log.

Reads MAILBOX_STATE_DIR only: no API key, no server, no text key (lines hold hashes of
texts, and showing them needs no secret).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any

from mailbox_mcp.safety.audit import raw_lines, read_entries, verify
from mailbox_mcp.settings import BridgeSettings

__all__ = ["add_audit_parser", "run_audit"]

# Shown in their own columns; every other field is an id, shown as name=value.
_COLUMNS = ("n", "at", "event", "peer")
_HIDDEN = frozenset({"prev", "text_hmac"})


def add_audit_parser(commands: Any) -> None:
    """Add `audit` to the top-level sub-parsers."""
    p = commands.add_parser("audit", help="what peers' messages caused: print or check the log")
    p.add_argument(
        "--verify",
        action="store_true",
        help="check that no line was changed, removed or reordered (exit 1 if one was)",
    )
    p.add_argument("--json", action="store_true", help="JSON: the raw lines, or the check")


async def run_audit(settings: BridgeSettings, args: argparse.Namespace) -> int:
    # async like the other owner commands, which cli.main runs with asyncio.run
    state_dir = settings.state_dir
    if args.verify:
        result = verify(state_dir)
        if args.json:
            print(json.dumps(asdict(result)))
        elif result.ok:
            print(f"audit log intact: {result.lines} lines")
        else:  # the problem names the first bad line, when one is to blame
            print(f"audit log NOT intact: {result.problem}")
        return 0 if result.ok else 1
    if args.json:
        for line in raw_lines(state_dir):
            print(line)
        return 0
    entries = read_entries(state_dir)
    if not entries:
        print(f"The audit log is empty ({state_dir / 'audit.jsonl'}).")
    for entry in entries:
        print(_readable(entry))
    return 0


def _readable(entry: dict[str, Any]) -> str:
    if "unreadable" in entry:
        return _visible(f"{'?':>5}  unreadable line: {entry['unreadable']}")
    n, at, event, peer = (entry.get(key) for key in _COLUMNS)
    ids = " ".join(
        f"{key}={value}"
        for key, value in entry.items()
        if key not in _COLUMNS and key not in _HIDDEN
    )
    parts = [f"{n!s:>5}", str(at), f"{event!s:<19}", str(peer or "-")]
    return _visible("  ".join([*parts, ids]).rstrip())


def _visible(text: str) -> str:
    # Field values come from peers and servers: control and bidi characters would rewrite
    # the owner's terminal line, so they are shown as escapes instead.
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text)
