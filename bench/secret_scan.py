"""Cost of the secret check on one outgoing 2 KiB reply (budget for all checks: p50 ≤ 2 ms).

    .venv/bin/python -m bench.secret_scan
    .venv/bin/python -m bench.secret_scan --runs 5000

`SecretScanner.find` as the bridge calls it, with two exact values as the
bridge gives them, timed per call over `--runs` runs after a warm-up, wall
clock and process CPU, on:

- clean prose (short words, line breaks), which the prefilter should wave through;
- prose full of long identifiers (UUIDs, git SHAs, sha256, URLs, file paths), one per line:
  every one of them opens a window that the patterns search;
- the same identifiers in one paragraph without line breaks (windows, not whole lines);
- prose holding one token (a GitHub token mid-text): found, and every other kind still checked.

The tokens are made up here, shaped like real ones.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import string
import uuid
from collections.abc import Callable

from bench.common import percentile, timed_runs
from mailbox_mcp.safety.secret_scan import SecretScanner

SIZE = 2048
_WORDS = (
    "the a report of numbers can you check appendix revenue churn flat up down quarter plan "
    "launch review data table figure draft we should ask whether it is ready for monday and "
    "then send the summary to the team with notes on risks costs and next steps"
).split()


def _prose(rng: random.Random, extra: Callable[[], str] | None = None, newline: str = "\n") -> str:
    text = ""
    while len(text) < SIZE:
        sentence = " ".join(rng.choice(_WORDS) for _ in range(rng.randrange(8, 16)))
        if extra is not None:
            sentence += " " + extra()
        text += sentence.capitalize() + "." + (newline if rng.random() < 0.5 else " ")
    return text[:SIZE]


def _identifier(rng: random.Random) -> str:
    hexdigits = "0123456789abcdef"
    return rng.choice(
        [
            lambda: f"(message {uuid.UUID(int=rng.getrandbits(128))})",
            lambda: "commit " + "".join(rng.choice(hexdigits) for _ in range(40)),
            lambda: "sha256 " + hashlib.sha256(rng.randbytes(8)).hexdigest(),
            lambda: (
                f"see https://example.org/reports/2026/q3/{uuid.UUID(int=rng.getrandbits(128))}"
            ),
            lambda: "in /srv/mailbox/state/conversations/archive/2026-09-quarterly.json",
        ]
    )()


def texts() -> dict[str, str]:
    rng = random.Random(7)
    clean = _prose(rng)
    identifiers = _prose(rng, lambda: _identifier(rng), newline="\n")
    paragraph = _prose(rng, lambda: _identifier(rng), newline=" ").replace("\n", " ")
    token = "ghp_" + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(36))
    half = SIZE // 2
    holding = clean[:half] + f" the token is {token} " + clean[half : SIZE - len(token) - 15]
    return {
        "clean prose": clean,
        "prose with long identifiers": identifiers,
        "identifiers, no line breaks": paragraph,
        "prose holding a GitHub token": holding,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=1000)
    args = parser.parse_args()
    scanner = SecretScanner(
        {
            "the OpenClaw gateway token": "bench-gateway-token-0123456789",
            "this agent's mailbox API key": "amb_" + "x" * 49,
        }
    )
    for label, text in texts().items():
        wall, cpu = timed_runs(lambda text=text: scanner.find(text), args.runs)
        # CPU time too: on a busy machine a wall-clock p99 is mostly the scheduler's tick.
        print(
            f"  {label:<30} {len(text.encode()):5d} B  p50 {percentile(wall, 50):6.3f} ms"
            f"  p99 {percentile(wall, 99):6.3f} ms   (CPU p50 {percentile(cpu, 50):6.3f}"
            f"  p99 {percentile(cpu, 99):6.3f} ms, n={len(wall)})  found {scanner.find(text)}"
        )


if __name__ == "__main__":
    main()
