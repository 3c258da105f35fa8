"""The bridge's errors. Every message says what to do next.

BridgeError                  root
├── ConfigError              a setting is missing or wrong (names the variable)
├── MailboxAPIError          the mailbox server answered an error {"error","message"}
│   └── ServerUnreachable    no answer at all (network, DNS, TLS, timeout)
├── gateway.GatewayError     OpenClaw said no or could not be reached (gateway.py)
└── crypto.CryptoError       OpenPGP: a key, a passphrase, a message (tree in crypto.py)
"""

from __future__ import annotations


class BridgeError(Exception):
    """Root of the bridge's own errors."""


class ConfigError(BridgeError):
    pass


class MailboxAPIError(BridgeError):
    def __init__(self, status: int, code: str, message: str, retry_after: float | None = None):
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


class ServerUnreachable(MailboxAPIError):
    def __init__(self, url: str, reason: str) -> None:
        super().__init__(
            0,
            "server_unreachable",
            f"cannot reach the mailbox server at {url} ({reason}); check MAILBOX_SERVER_URL "
            "and that the server is running",
        )
