"""The bridge's errors: one root, and each error says whether trying again can help.

Every error the bridge raises on purpose descends from ``BridgeError``. A retry
loop reads the decision from the error it caught, never from its class alone:
``retryable`` is true when waiting and trying again can succeed with nothing
changed, and ``retry_after`` is the wait the other side asked for, in seconds
(``server_link/retry.py`` honours both). A non-retryable error waits for a
person: the loop that must not lose a message tries again only at its slowest
pace, so that the owner's fix is picked up, and says what to fix.

BridgeError                          root; .retryable (False), .retry_after (None)
├── ConfigError                      a setting is missing or wrong (names the variable)
├── MailboxAPIError                  the server answered {"error","message"}; retryable for
│   │                                429, 408 and 5xx, with the server's Retry-After
│   └── ServerUnreachable            no answer at all (network, DNS, TLS, timeout); retryable
├── openclaw.gateway_errors.GatewayError      OpenClaw said no or could not be reached; .fix
│   ├── GatewayUnreachable           cannot connect, timeout, 5xx, 429 (retryable)
│   ├── GatewayAuthError             the gateway refused OPENCLAW_GATEWAY_TOKEN
│   ├── GatewayToolNotAllowed        sessions_send is not in gateway.tools.allow
│   └── GatewayRejected              answered, but did not accept (retryable or not, per case)
├── openclaw.config.OpenClawConfigError       openclaw.json is not JSON5 or not shaped
│                                    as OpenClaw's config where the bridge reads it
├── e2e.armor.ArmorError             not an ASCII-armored OpenPGP block of the expected kind
├── e2e.key_packets.KeyShapeError    not shaped like one OpenPGP key
├── e2e.openpgp.CryptoError          OpenPGP: a key, a passphrase, a message
│   ├── KeyFileError, PassphraseError, BadKeyError, WrongKeyOwner, PeerKeyMissing
│   └── DecryptError
│       └── NotForUs
├── safety.review.ReviewError        a held item that is not there, or no longer waits
│   └── AlreadyApproved              approving again: an item goes out (or in) once
├── safety.autonomy.AutonomyError    a level or number the owner gave that cannot be used
├── safety.handles.HandleRefused     a reply_token that does not let this agent send
├── safety.context.SecretFound       outgoing text that holds a secret: nothing is sent
├── safety.reply.ReplyRefused        a reply neither sent nor held; says why
└── safety.audit_files.HeadDamaged   audit.head exists but does not hold a head
"""

from __future__ import annotations

__all__ = ["BridgeError", "ConfigError", "MailboxAPIError", "ServerUnreachable"]


class BridgeError(Exception):
    """Root of the bridge's own errors.

    ``retryable``: waiting and trying again can succeed with nothing changed.
    ``retry_after``: how long the other side asked us to wait, in seconds.
    """

    retryable: bool = False
    retry_after: float | None = None


class ConfigError(BridgeError):
    pass


class MailboxAPIError(BridgeError):
    def __init__(self, status: int, code: str, message: str, retry_after: float | None = None):
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after
        # A busy or failing server can answer later; any other 4xx is about the request.
        self.retryable = status == 0 or status in (408, 429) or status >= 500


class ServerUnreachable(MailboxAPIError):
    def __init__(self, url: str, reason: str) -> None:
        super().__init__(
            0,
            "server_unreachable",
            f"cannot reach the mailbox server at {url} ({reason}); check MAILBOX_SERVER_URL "
            "and that the server is running",
        )
