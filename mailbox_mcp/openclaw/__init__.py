"""OpenClaw, as the bridge reaches and reads it.

gateway.py         the gateway client: its calls (`sessions.create`, `sessions_send`,
                   `agent`, `agent.wait`) over HTTP and the WebSocket RPC
gateway_errors.py  what the gateway can answer besides "accepted", and the retry decision
sessions.py        which per-peer sessions this process created on the gateway
session_keys.py    the session-key format `agent:<agentId>:...`, parsed here only
probe.py           what `mailbox-mcp doctor` checks on the gateway, with no run
config.py          the parts of openclaw.json the bridge reads (JSON5, one pydantic model)
home.py            where the owner's OpenClaw keeps its config and the main workspace
workspace.py       the dedicated peer agent's workspace (its role)
policy.py          can a peer's message reach past its reply? the receiving agent's tools
"""
