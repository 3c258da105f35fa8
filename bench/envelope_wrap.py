"""What the envelope costs the bridge per message: `wrap_incoming_message` on 2 KiB.

    .venv/bin/python -m bench.envelope_wrap

Two texts of 2 KiB: ASCII prose with brackets (the fast path), and mixed
scripts (accents, CJK, Cyrillic, Greek, emoji) with a bracket on most lines,
so that most lines take the look-alike path. Median and p99 over 2,000 wraps
each, after one warm-up wrap.
"""

from __future__ import annotations

import random
import statistics
import time

from mailbox_mcp.inbound.envelope import wrap_incoming_message

WORDS = (
    "the report Bericht données ünïcode résumé プロジェクト 数据 отчёт αναφορά ✓ 🙂 "
    "naïve café 2026 [note] {x} <b>"
).split()


def _mixed(size: int = 2048) -> str:
    rng = random.Random(7)
    text = ""
    while len(text.encode()) < size:
        text += " ".join(rng.choice(WORDS) for _ in range(10)) + "\n"
    return text.encode()[:size].decode("utf-8", "ignore")


ASCII = ("The quarterly report is attached [see appendix] {json} <b>bold</b>.\n" * 40)[:2048]


def _bench(label: str, content: str, runs: int = 2000) -> None:
    def wrap() -> str:
        return wrap_incoming_message(
            from_agent="agent-a", subject="Quarterly report ✓", content=content, session_id="s1"
        )

    wrap()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        wrap()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    print(
        f"{label}: median {statistics.median(times):.3f} ms, "
        f"p99 {times[int(0.99 * len(times))]:.3f} ms"
    )


def main() -> None:
    _bench("2 KiB non-ASCII", _mixed())
    _bench("2 KiB ASCII", ASCII)


if __name__ == "__main__":
    main()
