"""An incoming message, from the WebSocket to the agent's per-peer session.

election.py       one listener per agent among the bridge processes
readable.py       the message as the agent may read it: decrypted, handles removed
envelope.py       the untrusted-text wrapper (pure functions; tables generated)
injector.py       into OpenClaw, wrapped, exactly once
delivered_log.py  what was injected, kept across restarts
run_watch.py      the outcome of the run each injection starts
"""
