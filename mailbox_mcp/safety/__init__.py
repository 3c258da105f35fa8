"""What a peer's message can cause, bounded by construction (contract, section 9).

A run started by another agent's message gets one tool, the reply to that peer
(`reply.py`), and everything that reply crosses lives here:

    handles.py      reply handles: which peer and conversation a reply may go to
    secret_key.py   the agent's own key (0600 in the state dir) behind handles and audit hashes
    ledger.py       state shared by every bridge process of the agent (SQLite in the state dir):
                    per-peer epochs, autonomy levels, replies counted, items held for review
    autonomy.py     per-peer levels and budgets: send now, or hold for the owner
    review.py       the owner's review of held items (outgoing replies, screened-out messages)
    secret_scan.py  secrets in outgoing text: `SecretScanner`, fast enough for every reply
    secret_rules.py what it looks for (bc-detect-secrets' patterns plus our own kinds)
    guard.py        optional inbound screening by a pinned model, fail closed
    audit.py        the hash-chained audit log (audit_files.py its files and lock,
                    audit_check.py `verify`, audit_cli.py `mailbox-mcp audit`)
    reply.py        `mailbox_reply`: handle, secret check, budget, then send or hold
    context.py      one bridge process's handle on all of the above, opened on first use
    owner_cli.py    `mailbox-mcp autonomy`, `peers` and `review`: the owner's decisions
"""
