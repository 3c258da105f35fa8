"""Secrets in outgoing text: every reply, send and connection note is checked before it leaves.

A hit is reported by its kind ("an AWS access key"), never by its value, and
the caller refuses to send. A model told to encode a secret can defeat any
scanner: this catches accidents and plain requests. What is looked for, and
where the patterns come from: `secret_rules`.

Speed: running every pattern over a 2 KiB reply costs about 2 ms, because a
few are slow. So, cheapest first:

1. the text rules (private keys, passwords in URLs) run only when their
   literal ("PRIVATE KEY", "://") is in the text;
2. the text is reduced to a byte mask by one `bytes.translate`; with no run of
   `MIN_RUN` token characters in it (typical prose), we are done;
3. rules whose gate words are nowhere in the text are dropped;
4. the rest are searched in windows around the runs (clipped to the line),
   each only where the longest run fits its shortest secret and its gate words
   are in the window.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from mailbox_mcp.safety.secret_rules import MIN_RUN, TOKEN_CHARS, Rules, WindowRule, rules

__all__ = ["SecretScanner"]

# Shorter exact values would match ordinary prose.
_MIN_EXACT_CHARS = 8
_MASK = bytes(0x61 if chr(b) in TOKEN_CHARS else 0x20 for b in range(256))  # 'a' or ' '
_RUN = b"a" * MIN_RUN
# Context searched around a run, on its line: assignment patterns need the
# name before the value ("aws_secret_access_key = ..."; Artifactory's looks up
# to 200 characters back), URL patterns the host after it.
_BEFORE, _AFTER = 200, 100


class SecretScanner:
    """Finds the kinds of secret in outgoing text."""

    def __init__(self, exact: Mapping[str, str] | None = None) -> None:
        """`exact`: kind -> a literal secret value refused wherever it appears, e.g.
        {"the OpenClaw gateway token": token, "this agent's mailbox API key": key}.
        Values shorter than 8 characters are ignored (they would match prose)."""
        self._exact = tuple(
            (kind, value) for kind, value in (exact or {}).items() if len(value) >= _MIN_EXACT_CHARS
        )
        self._rules = rules()  # built once per process; here, so that no reply waits for it

    def find(self, text: str) -> list[str]:
        """The kinds of secret in `text`: unique, in a stable order; never the values."""
        found = [kind for kind, value in self._exact if value in text]
        hits = _scan(self._rules, text)
        found += [kind for kind in self._rules.kinds if kind in hits and kind not in found]
        return found


def _scan(rules: Rules, text: str) -> set[str]:
    hits = {
        rule.kind
        for rule in rules.text
        if any(needle in text for needle in rule.needles) and rule.holds(text)
    }
    data = text.encode("utf-8", "surrogatepass")
    mask = data.translate(_MASK)
    if _RUN not in mask:
        return hits
    windows = [
        (start, run, window, window.lower())
        for start, end, run in _windows(data, mask)
        for window in (data[start:end].decode("utf-8", "ignore"),)
    ]
    # Gates are looked up in all windows at once first: usually a small part of the text.
    joined = "\n".join(window for _, _, window, _ in windows)
    joined_lowered = joined.lower()
    longest = max(run for _, run, _, _ in windows)
    for rule in rules.window:
        if rule.min_run > longest:
            continue
        # A rule that reads nearby lines may find its words there, outside the windows.
        if not (
            rule.gate.met(text, text.lower())
            if rule.lines_around
            else rule.gate.met(joined, joined_lowered)
        ):
            continue
        for start, run, window, lowered in windows:
            if run < rule.min_run:
                continue
            # With one window, the check above was on that window already.
            scope = _scope(rule, data, start, window, lowered, check_gate=len(windows) > 1)
            if scope is not None and rule.holds(scope):
                hits.add(rule.kind)
                break
    return hits


def _scope(
    rule: WindowRule, data: bytes, start: int, window: str, lowered: str, *, check_gate: bool
) -> str | None:
    """Where `rule` searches for the window at byte `start`; None where its gate is not met."""
    if rule.lines_around:
        window = _lines_around(data, start, rule.lines_around)
        lowered, check_gate = window.lower(), True
    if check_gate and not rule.gate.met(window, lowered):
        return None
    return window


def _windows(data: bytes, mask: bytes) -> Iterator[tuple[int, int, int]]:
    """(start, end, longest run) in bytes of the window around each run, clipped to its line;
    overlapping windows merged (the mask maps newlines to spaces, so no run crosses a line)."""
    current: tuple[int, int, int] | None = None
    position = mask.find(_RUN)
    while position >= 0:
        end = mask.find(b" ", position + MIN_RUN)
        end = len(mask) if end < 0 else end
        line_start = data.rfind(b"\n", 0, position) + 1
        line_end = data.find(b"\n", end)
        line_end = len(data) if line_end < 0 else line_end
        start, stop = max(line_start, position - _BEFORE), min(line_end, end + _AFTER)
        if current is not None and start <= current[1]:  # same line, contexts overlap
            current = (current[0], max(current[1], stop), max(current[2], end - position))
        else:
            if current is not None:
                yield current
            current = (start, stop, end - position)
        position = mask.find(_RUN, end)
    if current is not None:
        yield current


def _lines_around(data: bytes, start: int, count: int) -> str:
    """The line at byte `start` and `count` lines either side (rare: only for very long runs)."""
    line = data.count(b"\n", 0, start)
    lines = data.split(b"\n")[max(0, line - count) : line + count + 1]
    return b"\n".join(lines).decode("utf-8", "ignore")
