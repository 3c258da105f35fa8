"""Agent Mailbox MCP bridge: tools for the model, live delivery into OpenClaw."""

__version__ = "0.1.0"
__all__ = ["__version__"]
