"""OpenClaw, as the bridge reaches and reads it.

gateway.py    the gateway client (`sessions.create`, `sessions_send`, `agent`, `agent.wait`)
home.py       where the owner's OpenClaw keeps its config and the main workspace
workspace.py  the dedicated peer agent's workspace (its role)
policy.py     can a peer's message reach past its reply? the receiving agent's tools
"""
