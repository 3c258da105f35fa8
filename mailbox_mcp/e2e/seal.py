"""End-to-end encryption in the bridge: sealing what we send, opening what we receive.

Our private key is loaded on first use, so a bridge without one still serves
plaintext mail, and a key generated while the bridge runs is picked up on the
next encrypted message. pgpy runs in a worker thread, one operation at a time:
an RSA private operation takes 100-400 ms, and the event loop must keep
serving the listener and the tools meanwhile.

pgpy (and with it ~5 MB and ~100 ms of imports) is only loaded when the first
encrypted message is sent or received: most bridge processes never need it.

Opening never raises: a message that cannot be decrypted is still shown, as
its armored text, with a notice that says why (contract, section 4). Only a
signature that checks against the directory key of the sender is "valid";
anything else keeps the trust level at UNKNOWN.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.to_thread

import mailbox_wire as wire
from mailbox_mcp.errors import MailboxAPIError
from mailbox_mcp.server_link.client import MailboxAPI
from mailbox_mcp.settings import BridgeSettings

if TYPE_CHECKING:
    from mailbox_mcp.e2e.keyring import PeerKeys
    from mailbox_mcp.e2e.openpgp import Decrypted, PrivateKey, Verification

__all__ = [
    "ENCRYPTED_NOTICE",
    "SIGNATURE_INVALID",
    "SIGNATURE_NONE",
    "SIGNATURE_UNKNOWN",
    "SIGNATURE_UNVERIFIED",
    "EndToEnd",
    "Opened",
    "undecryptable",
]

log = logging.getLogger(__name__)

ENCRYPTED_NOTICE = "Encryption: end-to-end (OpenPGP)"
SIGNATURE_NONE = "none (not signed)"
SIGNATURE_INVALID = "INVALID — do not trust the claimed sender"
SIGNATURE_UNVERIFIED = (
    "not verified (the directory could not be reached) — do not trust the claimed sender yet"
)
SIGNATURE_UNKNOWN = "unknown (the message could not be decrypted)"

T = TypeVar("T")


@dataclass(frozen=True)
class Opened:
    """What the envelope shows of an encrypted message."""

    content: str
    notice: str
    signature: str
    signature_valid: bool = False


class EndToEnd:
    def __init__(self, settings: BridgeSettings, api: MailboxAPI) -> None:
        self.settings = settings
        self._api = api
        self._peers: PeerKeys | None = None
        self._key: PrivateKey | None = None
        self._key_lock = anyio.Lock()
        self._limiter = anyio.CapacityLimiter(1)

    @property
    def peers(self) -> PeerKeys:
        if self._peers is None:
            from mailbox_mcp.e2e.keyring import PeerKeys

            # The same limiter as our own pgpy work: one pgpy thread competes with the loop.
            self._peers = PeerKeys(
                self._api.public_agent,
                self.settings.state_dir / "peer-keys",
                limiter=self._limiter,
            )
        return self._peers

    async def _run(self, func: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(func, *args, limiter=self._limiter)

    async def private_key(self) -> PrivateKey:
        """Our key, loaded and unlocked once. Raises CryptoError saying how to set it up."""
        from mailbox_mcp.e2e.openpgp import PrivateKey

        async with self._key_lock:
            if self._key is None:
                secret = self.settings.pgp_passphrase
                passphrase = secret.get_secret_value() if secret is not None else None
                self._key = await self._run(PrivateKey.load, self.settings.pgp_key_path, passphrase)
            return self._key

    def close(self) -> None:
        if self._key is not None:
            self._key.close()

    # --- sending -----------------------------------------------------------------

    async def seal(self, to: str, content: str) -> str:
        """`content` signed by us and encrypted to `to`, armored.

        Raises CryptoError (PeerKeyMissing when `to` has no key) and
        MailboxAPIError when the directory cannot be asked.
        """
        from mailbox_mcp.e2e import openpgp

        key = await self.private_key()
        peer = await self.peers.require(to)
        return await self._run(openpgp.encrypt_and_sign, content, peer, key)

    # --- receiving ---------------------------------------------------------------

    async def open(self, message: wire.Message, *, me: str | None = None) -> Opened:
        """Decrypt and verify an `encrypted: true` message. Never raises."""
        try:
            return await self._open(message, me)
        except Exception:  # a bug here must not hold up delivery: show the message unread
            log.exception("cannot open encrypted message %s", message.message_id)
            return undecryptable(
                message.content, "COULD NOT DECRYPT: unexpected error (see the log)"
            )

    async def _open(self, message: wire.Message, me: str | None) -> Opened:
        from mailbox_mcp.e2e import openpgp
        from mailbox_mcp.e2e.openpgp import CryptoError, NotForUs

        sender = message.from_agent
        armored = message.content
        try:
            key = await self.private_key()
            decrypted = await self._run(openpgp.decrypt, armored, key)
        except NotForUs as exc:
            if me is not None and sender == me:
                return undecryptable(
                    armored, "sent by this agent, encrypted for the recipient only"
                )
            return undecryptable(armored, f"COULD NOT DECRYPT: {exc}")
        except CryptoError as exc:  # not decryptable, or our own key is missing or locked
            return undecryptable(armored, f"COULD NOT DECRYPT: {exc}")
        verification = await self._verify(sender, decrypted)
        if verification is None:
            signature = SIGNATURE_UNVERIFIED
        elif verification.status == "valid":
            signature = f"valid, fingerprint {verification.fingerprint}"
        elif verification.status == "none":
            signature = SIGNATURE_NONE
        else:
            log.warning(
                "message %s claims to come from %s but its signature is invalid: %s",
                message.message_id,
                sender,
                verification.reason,
            )
            signature = SIGNATURE_INVALID
        return Opened(
            content=decrypted.text,
            notice=ENCRYPTED_NOTICE,
            signature=signature,
            signature_valid=verification is not None and verification.status == "valid",
        )

    async def _verify(self, sender: str, decrypted: Decrypted) -> Verification | None:
        """The signature against the sender's directory key; None if the directory is down."""
        from mailbox_mcp.e2e import openpgp
        from mailbox_mcp.e2e.openpgp import CryptoError, Verification

        if not decrypted.signed:
            return Verification("none")
        refresh = False
        while True:
            try:
                key, fetched_now = await self.peers.lookup(sender, refresh=refresh)
            except MailboxAPIError as exc:
                log.warning("cannot fetch the OpenPGP key of %s: %s", sender, exc)
                return None
            except CryptoError as exc:  # the directory's key is unusable or names someone else
                return Verification("invalid", reason=str(exc))
            result = await self._run(openpgp.verify, decrypted, key)
            if result.status == "valid" or fetched_now or refresh:
                return result
            refresh = True  # the cached key failed: the peer may have rotated


def undecryptable(armored: str, why: str) -> Opened:
    """The armored text as it came, with a notice saying why it could not be read."""
    return Opened(
        content=armored,
        notice=f"{ENCRYPTED_NOTICE} — {why}; the armored text follows",
        signature=SIGNATURE_UNKNOWN,
    )
