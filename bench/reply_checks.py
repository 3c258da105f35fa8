"""What the peer-session checks add to a reply: `mailbox_reply` against a plain send, one run.

    .venv/bin/python -m bench.reply_checks               # 1,000 replies of 2 KiB, SQLite
    .venv/bin/python -m bench.reply_checks --count 2000 --backend postgresql

A real `mailbox-server` as its own process (the per-pair hourly limit switched off,
MAILBOX_PAIR_MESSAGES_PER_HOUR=0, so a thousand messages between one pair go through)
and the bridge's own code in this process. Each round sends the same 2 KiB text twice,
interleaved: once as a plain send (`MailboxAPI.send_once`, what `mailbox_send` does
after its own secret scan), once through `reply()` — the handle check, the secret scan,
the budget transaction in the shared ledger, the send, the audit line. The difference
of the two is what the checks cost. Each check is also timed alone.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time

from bench.common import client, connect, database, percentile, register, server_process, summary
from mailbox_mcp.bridge import Bridge
from mailbox_mcp.safety import autonomy
from mailbox_mcp.safety.reply import reply
from mailbox_mcp.settings import BridgeSettings

PARAGRAPH = (
    "Thanks for the numbers. Revenue for the third quarter came in at 4.2 million, up 12 "
    "percent on the year; the Berlin office closed two deals and the pipeline for next "
    "quarter looks healthy. I attach the summary table below and can send the full report "
    "on Monday, once the finance team has reviewed it. "
)
REPLY_TEXT = (PARAGRAPH * 10)[:2048]


def timed(func, *args, **kwargs) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    func(*args, **kwargs)
    return (time.perf_counter() - started) * 1000


async def run(url: str, count: int) -> None:
    async with client(url) as http:
        me = await register(http, "replier")
        peer = await register(http, "asker")
        await connect(http, peer, me)
        first = await http.post(
            "/messages/send",
            json={"to": me.name, "subject": "numbers", "content": "Can you send Q3?"},
            headers=peer.headers,
        )
        first.raise_for_status()
        session_id = first.json()["session_id"]
        with tempfile.TemporaryDirectory() as state:
            settings = BridgeSettings(
                MAILBOX_SERVER_URL=url, MAILBOX_API_KEY=me.api_key, MAILBOX_STATE_DIR=state
            )
            bridge = Bridge(settings)
            identity = await bridge.identify()
            safety = bridge.safety
            # Every reply goes out (and is counted), so each one pays the whole budget check.
            autonomy.set_level(
                safety.ledger, peer.name, "extended", per_conversation=100_000, per_day=100_000
            )
            token = safety.mint(identity.agent_id, peer.name, session_id)
            plain: list[float] = []
            checked: list[float] = []
            for round_ in range(count + 20):  # the first 20 warm up
                started = time.perf_counter()
                await bridge.api.send_once(peer.name, REPLY_TEXT, session_id=session_id)
                middle = time.perf_counter()
                result = await reply(bridge, token, REPLY_TEXT, False)
                ended = time.perf_counter()
                assert result.status == "sent", result
                if round_ >= 20:
                    plain.append((middle - started) * 1000)
                    checked.append((ended - middle) * 1000)
            parts = {
                "handle check": [
                    timed(safety.verify, token, identity.agent_id) for _ in range(count)
                ],
                "secret scan (2 KiB)": [
                    timed(safety.check_outgoing, REPLY_TEXT) for _ in range(count)
                ],
                "budget (take + release)": [
                    timed(_budget, safety.ledger, peer.name, session_id) for _ in range(count)
                ],
                "audit line": [
                    timed(safety.audit.record, "replied", peer=peer.name, text=REPLY_TEXT)
                    for _ in range(count)
                ],
            }
            await bridge.aclose()
    print(summary("plain send        ", plain))
    print(summary("mailbox_reply     ", checked))
    for q in (50, 99):
        added = percentile(checked, q) - percentile(plain, q)
        print(f"added by the checks, p{q}: {added:.2f} ms")
    for name, values in parts.items():
        print(
            f"  {name:<24} p50 {percentile(values, 50):.3f} ms  p99 {percentile(values, 99):.3f} ms"
            f"  mean {statistics.fmean(values):.3f} ms"
        )


def _budget(ledger, peer: str, session_id: str) -> None:  # type: ignore[no-untyped-def]
    decision = autonomy.take(ledger, peer, session_id)
    assert decision.reservation is not None
    autonomy.release(ledger, decision.reservation)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    print(
        f"{args.count} replies of {len(REPLY_TEXT)} characters, {args.backend}; "
        "pair limit off (MAILBOX_PAIR_MESSAGES_PER_HOUR=0)"
    )
    with (
        database(args.backend) as url,
        server_process(url, MAILBOX_PAIR_MESSAGES_PER_HOUR="0") as (
            base,
            _,
        ),
    ):
        asyncio.run(run(base, args.count))


if __name__ == "__main__":
    main()
