"""How long the OpenClaw tier watches that something does NOT happen, one window per reason.

Each is watched with ``tests.waiting.assert_stays``: it fails as soon as the thing
happens, so a window only costs its full length when all is well. Never shorten one
below the reason it gives: the test would pass before the fault had time to show.
"""

from __future__ import annotations

# A second injection of a message already delivered (a retry, or a second listener of
# the same agent): the bridges' retry backoff in these tests is 0.05-0.3 s, so a
# duplicate shows well within this.
DUPLICATE_WINDOW = 4.0

# A reply-back turn that OpenClaw starts after a target session answered a
# ``sessions_send``: seen 2-5 s after the target answered.
REPLY_BACK_WINDOW = 8.0

# One hop of an exchange between two agents, from a reply to the other side's run that
# answers it: 0.5-1 s once both per-peer sessions had run, 10-16 s for a session's
# first run (which starts its bridge).
EXCHANGE_HOP_WINDOW = 20.0
