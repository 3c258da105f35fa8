"""`mailbox-mcp autonomy`, `peers` and `review`: the owner's decisions, outside any agent's reach.

No MCP tool can do what these do: set how far a peer's messages may go on
their own, or send a reply (or inject a message) that was held.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import unicodedata
from datetime import UTC, datetime
from typing import Any

from mailbox_mcp import __version__
from mailbox_mcp.errors import BridgeError, MailboxAPIError
from mailbox_mcp.inbound import envelope
from mailbox_mcp.inbound.injector import inject_text
from mailbox_mcp.inbound.readable import Readable
from mailbox_mcp.openclaw.gateway import GatewayClient
from mailbox_mcp.openclaw.gateway_errors import GatewayError
from mailbox_mcp.safety import autonomy, review
from mailbox_mcp.safety.context import Safety
from mailbox_mcp.server_link.client import MailboxAPI
from mailbox_mcp.settings import BridgeSettings
from mailbox_wire import wire_time

__all__ = ["add_owner_parsers", "run_autonomy", "run_peers", "run_review", "visible"]


def add_owner_parsers(commands: Any) -> None:
    p = commands.add_parser("autonomy", help="how far a peer's messages may go without you")
    p.add_argument("peer", help="the peer's agent name")
    p.add_argument(
        "level",
        nargs="?",
        choices=autonomy.LEVELS,
        help="notify-only (you review every reply), bounded (default: 3 per conversation, "
        "20 per day on their own), extended (your own numbers); without it, show the level",
    )
    p.add_argument(
        "--per-conversation", type=int, metavar="N", help="extended: replies per conversation"
    )
    p.add_argument("--per-day", type=int, metavar="M", help="extended: replies per 24 hours")
    commands.add_parser("peers", help="each peer's autonomy and what it used in the last 24 hours")
    p = commands.add_parser("review", help="what waits for your decision; approve or reject it")
    p.add_argument("action", nargs="?", choices=["approve", "reject"])
    p.add_argument("held_id", nargs="?", metavar="ID")
    p.add_argument("--json", action="store_true", help="a JSON list instead of text")


def _safety(settings: BridgeSettings) -> Safety:
    return Safety(settings, settings.resolved_api_key())


def _peer_name(peer: str) -> str:
    if not envelope.AGENT_NAME_PATTERN.fullmatch(peer):
        raise SystemExit(f"mailbox-mcp: {peer!r} is not an agent name")
    return peer


async def run_autonomy(settings: BridgeSettings, args: argparse.Namespace) -> int:
    peer = _peer_name(args.peer)
    safety = _safety(settings)
    try:
        if args.level is None:
            if args.per_conversation is not None or args.per_day is not None:
                print(
                    "mailbox-mcp: give the level too: autonomy PEER extended --per-day M",
                    file=sys.stderr,
                )
                return 2
            print(f"{peer}: {autonomy.of(safety.ledger, peer).describe()}")
            return 0
        chosen = autonomy.set_level(
            safety.ledger,
            peer,
            args.level,
            per_conversation=args.per_conversation,
            per_day=args.per_day,
        )
        safety.audit.record(
            "autonomy_changed",
            peer=peer,
            level=chosen.level,
            per_conversation=chosen.per_conversation,
            per_day=chosen.per_day,
        )
    except autonomy.AutonomyError as exc:
        print(f"mailbox-mcp: {exc}", file=sys.stderr)
        return 2
    finally:
        safety.close()
    print(f"{peer}: {chosen.describe()}")
    return 0


async def run_peers(settings: BridgeSettings, _args: argparse.Namespace) -> int:
    safety = _safety(settings)
    connected: dict[str, str] = {}
    note = None
    key = settings.resolved_api_key()
    if key:
        try:
            async with MailboxAPI(settings.server_url, key) as api:
                connected = {
                    c.peer_agent_name: wire_time(c.connected_at) for c in await api.connections()
                }
        except MailboxAPIError as exc:
            note = f"(connections not shown: {exc.message})"
    try:
        expire_and_audit(safety)
        held = review.waiting(safety.ledger)
        peers = sorted(set(connected) | set(autonomy.known_peers(safety.ledger)))
        if not peers:
            print("No peers yet: `mailbox-mcp connect PEER`.")
        for peer in peers:
            used = autonomy.usage(safety.ledger, peer)
            waiting = sum(1 for item in held if item.peer == peer)
            state = "connected" if peer in connected else "not connected"
            print(
                f"{peer}  {state}  {used.autonomy.describe()}  "
                f"replies on their own in the last 24 h: {used.replies_today}"
                + (f"  waiting for you: {waiting}" if waiting else "")
            )
    finally:
        safety.close()
    if note:
        print(note)
    return 0


def expire_and_audit(safety: Safety) -> None:
    for item in review.expire(safety.ledger):
        safety.audit.record(
            "expired",
            peer=item.peer,
            held_id=item.held_id,
            direction=item.direction,
            session_id=item.session_id,
        )


async def run_review(settings: BridgeSettings, args: argparse.Namespace) -> int:
    safety = _safety(settings)
    try:
        expire_and_audit(safety)
        if args.action is None:
            return _list(safety, as_json=args.json)
        if args.held_id is None:
            print(f"mailbox-mcp: review {args.action} needs the item's ID", file=sys.stderr)
            return 2
        if args.action == "reject":
            item = review.reject(safety.ledger, args.held_id)
            safety.audit.record(
                "rejected", peer=item.peer, held_id=item.held_id, direction=item.direction
            )
            print(f"Rejected {item.held_id}: nothing was {_verb(item)}.")
            return 0
        return await _approve(settings, safety, args.held_id)
    except review.AlreadyApproved as exc:
        print(str(exc))
        return 0
    except review.ReviewError as exc:
        print(f"mailbox-mcp: {exc}", file=sys.stderr)
        return 1
    finally:
        safety.close()


def _verb(item: review.HeldItem) -> str:
    return "sent" if item.direction == review.OUTGOING else "injected"


def _list(safety: Safety, *, as_json: bool) -> int:
    items = review.waiting(safety.ledger)
    if as_json:
        print(json.dumps([_as_json(item) for item in items], indent=2, ensure_ascii=False))
        return 0
    if not items:
        print("Nothing waits for you.")
        return 0
    now = time.time()
    for item in items:
        left = (item.created_at + review.EXPIRE_SECONDS - now) / 86400
        arrow = "reply to" if item.direction == review.OUTGOING else "message from"
        print(
            f"{item.held_id}  {item.direction}: {arrow} {item.peer}, conversation "
            f"{item.session_id}, {_when(item.created_at)} (expires in {left:.1f} days)"
        )
        print(f"    why: {visible(item.reason)}")
        for line in visible(item.content).split("\n"):
            print(f"    | {line}")
    print(
        f"{len(items)} waiting. `mailbox-mcp review approve ID` sends (or injects) one, "
        "`review reject ID` drops it."
    )
    return 0


def _as_json(item: review.HeldItem) -> dict[str, Any]:
    data = item.as_json()
    data["created_at"] = _when(item.created_at)
    data["expires_at"] = _when(item.created_at + review.EXPIRE_SECONDS)
    return data


def _when(timestamp: float) -> str:
    return (
        datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )


def visible(text: str) -> str:
    """`text` with control, bidi and invisible characters shown as <U+XXXX> (lines kept)."""
    out = []
    for char in text:
        if char in "\n\t":
            out.append(char)
        elif unicodedata.category(char) in ("Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp"):
            out.append(f"<U+{ord(char):04X}>")
        else:
            out.append(char)
    return "".join(out)


async def _approve(settings: BridgeSettings, safety: Safety, held_id: str) -> int:
    item = review.claim(safety.ledger, held_id)
    try:
        if item.direction == review.OUTGOING:
            result = await _send_held(settings, safety, item)
        else:
            result = await _inject_held(settings, safety, item)
    except (BridgeError, GatewayError) as exc:
        review.release_claim(safety.ledger, held_id)
        detail = exc.message if isinstance(exc, MailboxAPIError) else str(exc)
        print(
            f"mailbox-mcp: {held_id} was not {_verb(item)}: {detail}; it still waits",
            file=sys.stderr,
        )
        return 1
    review.finish(safety.ledger, held_id, result)
    safety.audit.record(
        "approved",
        peer=item.peer,
        text=item.content,
        held_id=held_id,
        direction=item.direction,
        session_id=item.session_id,
        message_id=result.get("message_id"),
    )
    print(f"Approved {held_id}: {_verb(item)} ({item.direction}, {item.peer}).")
    return 0


async def _send_held(
    settings: BridgeSettings, safety: Safety, item: review.HeldItem
) -> dict[str, Any]:
    # Checked when held, and again now: the scanner may know more kinds since.
    safety.check_outgoing(item.content, peer=item.peer, session_id=item.session_id)
    key = settings.resolved_api_key()
    if not key:
        raise BridgeError("no API key: run `mailbox-mcp register NAME` or set MAILBOX_API_KEY")
    async with MailboxAPI(settings.server_url, key) as api:
        body = item.content
        if item.encrypt:
            from mailbox_mcp.e2e.seal import EndToEnd

            e2e = EndToEnd(settings, api)
            try:
                body = await e2e.seal(item.peer, item.content)
            finally:
                e2e.close()
        # The held id is the idempotency key: approving after a lost answer cannot send twice.
        sent = await api.send_once(
            item.peer,
            body,
            session_id=item.session_id,
            encrypted=item.encrypt,
            idempotency_key=f"held-{item.held_id}",
        )
    return {"message_id": sent.message_id, "seq": sent.seq}


async def _inject_held(
    settings: BridgeSettings, safety: Safety, item: review.HeldItem
) -> dict[str, Any]:
    from mailbox_mcp.owner.doctor import as_openclaw_starts_it

    settings, _ = as_openclaw_starts_it(settings)
    if not settings.push_mode or settings.gateway_url is None:
        raise BridgeError(
            "injecting needs the gateway: set OPENCLAW_GATEWAY_URL and OPENCLAW_GATEWAY_TOKEN"
        )
    key = settings.resolved_api_key()
    if not key:
        raise BridgeError("no API key: run `mailbox-mcp register NAME` or set MAILBOX_API_KEY")
    if item.readable is None or item.message_id is None:
        raise BridgeError(f"{item.held_id} holds no message to inject")
    async with MailboxAPI(settings.server_url, key) as api:
        me = await api.me()
    readable = Readable.from_json(item.readable)
    token = safety.mint(me.agent_id, readable.from_agent, readable.session_id)
    gateway_token = settings.gateway_token.get_secret_value() if settings.gateway_token else ""
    async with GatewayClient(
        settings.gateway_url, gateway_token, settings.session_agent_id, __version__
    ) as gateway:
        run_id = await inject_text(
            gateway,
            settings,
            readable.from_agent,
            readable.wrap(reply_token=token),
            idempotency_key=item.message_id,
        )
    return {"message_id": item.message_id, "run_id": run_id}
