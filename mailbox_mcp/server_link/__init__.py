"""The bridge's link to the mailbox server.

client.py    typed client of the REST API (contract, section 3)
listener.py  the WebSocket: first-message auth, frames in, acks out
retry.py     backoff between attempts
"""
