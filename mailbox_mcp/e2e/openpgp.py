"""OpenPGP for end-to-end mail (contract, section 4), on pgpy: keys, encrypt+sign, decrypt+verify.

No network and no state beyond the key objects: the directory lookups and the
peer-key cache are in `keyring.py`, the bridge's use of both in `e2e.py`.

Choices, and why:
- The default key is an Ed25519 primary (certify, sign) with a Curve25519
  (ECDH) encryption subkey: pgpy does each operation in about a millisecond.
  `rsa_bits=4096` makes an RSA sign key with an RSA encryption subkey; pgpy's
  RSA private operations are 100x slower, so it is only for those who need it.
- A key belongs to an agent when one of its user ids names it: the name part
  is the agent name, or the e-mail is `<name>@agent-mailbox`. A directory key
  that names someone else is refused, so a server cannot swap one agent's key
  for another's without it showing.
- Messages are signed, then encrypted (one-pass signature inside SEIPD with
  MDC, as GnuPG 2.2 writes), never compressed (nothing to gain on short text,
  and compression leaks length patterns), with the recipient's preferred AES.
- ASCII armor is ours (`armor.py`): pgpy's costs more than the cryptography.
- A peer's key is checked packet by packet before pgpy parses it
  (`openpgp_packets.py`): pgpy is worse than linear in user ids and signature
  subpackets, and a crafted 64 KiB key cost it seconds of CPU. Callers on an
  event loop parse in a worker thread (`keyring.py`, `e2e.py`).
- pgpy decompresses whatever a message holds, without limit: a peer could send
  a few KiB that inflate to gigabytes and crash the bridge, again on every
  restart. Its decompression is replaced by one that stops at
  MAX_PLAINTEXT_BYTES in all, per message we decrypt; outside `decrypt` it
  behaves as before.
- A passphrase-protected key is unlocked once, when loaded, and stays unlocked
  in memory for the life of the process: pgpy's S2K would otherwise cost more
  per message than everything else together.
- pgpy rebuilds the `cryptography` RSA key object, validating it again (about
  270 ms for RSA-4096), on every private operation: that was the "100-400 ms"
  of RSA. We build it once per key and hand pgpy that one (about 10 ms per
  RSA-4096 message afterwards).

The errors, all rooted in the bridge's ``BridgeError``:

    CryptoError          an OpenPGP problem, said so that a person can fix it
    ├── KeyFileError     the private key file: missing, unreadable, garbled, or already there
    ├── PassphraseError  the key needs a passphrase, or this one does not unlock it
    ├── BadKeyError      not a usable OpenPGP key (malformed, private/public mix-up, no
    │                    encryption or signing key)
    ├── WrongKeyOwner    the key's user ids do not name the agent it is used for
    ├── PeerKeyMissing   the peer has no published OpenPGP key
    │                    (code ``peer_missing_openpgp_public_key``)
    └── DecryptError     not an OpenPGP message, corrupted, or
        └── NotForUs     encrypted to another key
"""

from __future__ import annotations

import bz2
import contextlib
import os
import threading
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mailbox_mcp.e2e.armor import ArmorError, armor, unarmor
from mailbox_mcp.e2e.key_packets import KeyShapeError, check_public_key
from mailbox_mcp.errors import BridgeError

# pgpy 0.6 warns on import and on every use about cryptography APIs it uses and
# checks it has not implemented; none of it is actionable for our users.
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"pgpy(\.|$)")
warnings.filterwarnings("ignore", category=UserWarning, module=r"pgpy(\.|$)")

import pgpy  # noqa: E402
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat  # noqa: E402
from pgpy.constants import (  # noqa: E402
    CompressionAlgorithm,
    EllipticCurveOID,
    HashAlgorithm,
    KeyFlags,
    PubKeyAlgorithm,
    SymmetricKeyAlgorithm,
)
from pgpy.errors import PGPDecryptionError, PGPError  # noqa: E402
from pgpy.packet.fields import RSAPriv  # noqa: E402

__all__ = [
    "DOMAIN",
    "MAX_PLAINTEXT_BYTES",
    "BadKeyError",
    "CryptoError",
    "DecryptError",
    "Decrypted",
    "KeyFileError",
    "NotForUs",
    "PassphraseError",
    "PeerKeyMissing",
    "PrivateKey",
    "PublicKey",
    "Verification",
    "WrongKeyOwner",
    "decrypt",
    "decrypt_and_verify",
    "encrypt_and_sign",
    "verify",
]

DOMAIN = "agent-mailbox"
_SIGN = {KeyFlags.Sign}
_ENCRYPT = {KeyFlags.EncryptCommunications, KeyFlags.EncryptStorage}
# In our order of preference; AES-128 is the one every implementation must have.
_CIPHERS = (
    SymmetricKeyAlgorithm.AES256,
    SymmetricKeyAlgorithm.AES192,
    SymmetricKeyAlgorithm.AES128,
)
_FALLBACK_CIPHER = SymmetricKeyAlgorithm.AES128
# 16 times the server's largest message: room for any honest compression ratio.
MAX_PLAINTEXT_BYTES = 1 << 20


class CryptoError(BridgeError):
    """Root of the OpenPGP errors; the message says what to do."""


class KeyFileError(CryptoError):
    pass


class PassphraseError(CryptoError):
    pass


class BadKeyError(CryptoError):
    pass


class WrongKeyOwner(CryptoError):
    pass


class PeerKeyMissing(CryptoError):
    code = "peer_missing_openpgp_public_key"

    def __init__(self, peer: str) -> None:
        super().__init__(
            f"{self.code}: {peer!r} has not published an OpenPGP key, so nothing can be "
            "encrypted to it; send without encrypt=true, or ask its owner to run "
            "`mailbox-mcp keys generate` and `mailbox-mcp keys publish`"
        )
        self.peer = peer


class DecryptError(CryptoError):
    pass


class NotForUs(DecryptError):
    pass


# --- bounded decompression (see the module docstring) -------------------------------


class _TooLarge(Exception):
    pass


_budget = threading.local()  # bytes left to inflate, set only while `decrypt` runs
_pgpy_decompress = CompressionAlgorithm.decompress


def _bounded_decompress(self: CompressionAlgorithm, data: bytes) -> bytes:
    remaining: int | None = getattr(_budget, "remaining", None)
    if remaining is None or self is CompressionAlgorithm.Uncompressed:
        return _pgpy_decompress(self, data)  # type: ignore[no-any-return]
    inflater: Any
    if self is CompressionAlgorithm.ZIP:
        inflater = zlib.decompressobj(-15)
    elif self is CompressionAlgorithm.ZLIB:
        inflater = zlib.decompressobj()
    elif self is CompressionAlgorithm.BZ2:
        inflater = bz2.BZ2Decompressor()
    else:
        raise NotImplementedError(self)
    out: bytes = inflater.decompress(bytes(data), remaining + 1)
    if len(out) > remaining:
        _budget.exceeded = True  # pgpy may wrap the exception in its own: remember it here
        raise _TooLarge
    _budget.remaining = remaining - len(out)
    return out


CompressionAlgorithm.decompress = _bounded_decompress


# --- keys ---------------------------------------------------------------------------


def _parse_key(data: bytes) -> Any:
    """A pgpy key from binary packets. pgpy raises many types on bad input: one error here."""
    try:
        key, _ = pgpy.PGPKey.from_blob(data)
    except Exception as exc:
        raise BadKeyError(f"not a valid OpenPGP key ({type(exc).__name__})") from None
    if not key.is_primary:
        raise BadKeyError("not a valid OpenPGP key (no primary key)")
    return key


def _flags(key: Any) -> set[KeyFlags]:
    try:
        return set(key._get_key_flags())  # no public API; a key without self-signature has none
    except Exception:
        return set()


def _has_capability(key: Any, wanted: set[KeyFlags]) -> bool:
    return any(_flags(k) & wanted for k in [key, *key.subkeys.values()])


def _names(key: Any) -> list[str]:
    return [str(uid.userid) for uid in key.userids]


def _belongs_to(key: Any, agent: str) -> bool:
    email = f"{agent}@{DOMAIN}"
    return any(uid.name == agent or (uid.email or "").lower() == email for uid in key.userids)


def _fingerprint(key: Any) -> str:
    return str(key.fingerprint).replace(" ", "")


def _algorithm(key: Any) -> str:
    if key.key_algorithm == PubKeyAlgorithm.EdDSA:
        return "ed25519"
    if key.key_algorithm in (PubKeyAlgorithm.RSAEncryptOrSign, PubKeyAlgorithm.RSASign):
        return f"rsa{key.key_size}"
    return str(key.key_algorithm.name).lower()


def _preferred_cipher(key: Any) -> SymmetricKeyAlgorithm:
    uid = next(iter(key.userids), None)
    prefs = list(uid.selfsig.cipherprefs) if uid is not None and uid.selfsig else []
    return next((c for c in prefs if c in _CIPHERS), _FALLBACK_CIPHER)


class PublicKey:
    """A peer's published key, checked to belong to the agent it is used for."""

    def __init__(self, key: Any, owner: str, armored: str) -> None:
        self.key = key
        self.owner = owner
        self.armored = armored
        self.fingerprint = _fingerprint(key)
        # Work out once what pgpy would look up on every message.
        self.cipher = _preferred_cipher(key)
        self.key_ids = {key.fingerprint.keyid, *key.subkeys}

    @classmethod
    def parse(cls, armored: str, owner: str) -> PublicKey:
        """Raises BadKeyError (not an armored public key, or no encryption key) or WrongKeyOwner."""
        try:
            data = unarmor(armored, "PUBLIC KEY BLOCK")
        except ArmorError as exc:
            raise BadKeyError(
                f"{owner}'s OpenPGP key is not an armored public key ({exc})"
            ) from None
        try:
            check_public_key(data)
        except KeyShapeError as exc:
            raise BadKeyError(f"{owner}'s OpenPGP key is refused: {exc}") from None
        key = _parse_key(data)
        if not key.is_public:
            raise BadKeyError(f"{owner}'s OpenPGP key is a private key, not a public one")
        if not _belongs_to(key, owner):
            raise WrongKeyOwner(
                f"the OpenPGP key published for {owner!r} is made out to "
                f"{_names(key) or 'nobody'}, not to {owner!r}: refusing to use it"
            )
        if not _has_capability(key, _ENCRYPT):
            raise BadKeyError(f"{owner}'s OpenPGP key has no encryption (sub)key")
        return cls(key, owner, armored)


class PrivateKey:
    """Our own key, unlocked once (see the module docstring) until `close()`."""

    def __init__(self, key: Any) -> None:
        self.key = key
        self.fingerprint = _fingerprint(key)
        self.algorithm = _algorithm(key)
        self.key_ids = {key.fingerprint.keyid, *key.subkeys}
        self._unlocked = contextlib.ExitStack()

    # -- making one
    @classmethod
    def generate(cls, name: str, *, rsa_bits: int | None = None) -> PrivateKey:
        """A new key for agent `name`: Ed25519 + Curve25519, or RSA of `rsa_bits` bits."""
        if rsa_bits is not None:
            primary = pgpy.PGPKey.new(PubKeyAlgorithm.RSAEncryptOrSign, rsa_bits)
            subkey = pgpy.PGPKey.new(PubKeyAlgorithm.RSAEncryptOrSign, rsa_bits)
        else:
            primary = pgpy.PGPKey.new(PubKeyAlgorithm.EdDSA, EllipticCurveOID.Ed25519)
            subkey = pgpy.PGPKey.new(PubKeyAlgorithm.ECDH, EllipticCurveOID.Curve25519)
        uid = pgpy.PGPUID.new(name, email=f"{name}@{DOMAIN}")
        primary.add_uid(
            uid,
            usage={KeyFlags.Certify, KeyFlags.Sign},
            hashes=[HashAlgorithm.SHA512, HashAlgorithm.SHA256],
            ciphers=list(_CIPHERS),
            compression=[CompressionAlgorithm.Uncompressed, CompressionAlgorithm.ZLIB],
        )
        primary.add_subkey(subkey, usage=_ENCRYPT)
        self = cls(primary)
        self._build_rsa_once()
        return self

    # -- loading one
    @classmethod
    def load(cls, path: Path, passphrase: str | None, *, unlock: bool = True) -> PrivateKey:
        """Read and unlock the key at `path`. Raises KeyFileError, BadKeyError, PassphraseError.

        With `unlock=False` a protected key stays locked: enough for its public parts."""
        try:
            text = path.read_text(encoding="ascii")
        except FileNotFoundError:
            raise KeyFileError(
                f"no OpenPGP private key at {path}: run `mailbox-mcp keys generate`, then "
                "`mailbox-mcp keys publish` (or set MAILBOX_PGP_PRIVATE_KEY_FILE)"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not ASCII armor"
            raise KeyFileError(f"cannot read the OpenPGP private key {path}: {reason}") from None
        return cls.from_armored(text, passphrase, source=str(path), unlock=unlock)

    @classmethod
    def from_armored(
        cls, text: str, passphrase: str | None, *, source: str = "the key", unlock: bool = True
    ) -> PrivateKey:
        try:
            data = unarmor(text, "PRIVATE KEY BLOCK")
        except ArmorError:
            if "-----BEGIN PGP PUBLIC KEY BLOCK-----" in text:
                raise BadKeyError(
                    f"{source} holds a PUBLIC key; the bridge needs the private key"
                ) from None
            raise KeyFileError(f"{source} is not an armored OpenPGP private key") from None
        try:
            key = _parse_key(data)
        except BadKeyError as exc:
            raise KeyFileError(f"{source}: {exc}") from None
        if key.is_public:
            raise BadKeyError(f"{source} holds a PUBLIC key; the bridge needs the private key")
        if not _has_capability(key, _SIGN):
            raise BadKeyError(f"{source} has no signing key")
        if not _has_capability(key, _ENCRYPT):
            raise BadKeyError(f"{source} has no encryption subkey")
        self = cls(key)
        if key.is_protected and unlock:
            self.unlock(passphrase, source)
        elif not key.is_protected:
            self._build_rsa_once()
        return self

    @property
    def is_protected(self) -> bool:
        return bool(self.key.is_protected)

    def unlock(self, passphrase: str | None, source: str = "the key") -> None:
        """Unlock a protected key until `close()`; PassphraseError if it cannot be."""
        if not passphrase:
            raise PassphraseError(
                f"{source} is protected by a passphrase: set MAILBOX_PGP_PASSPHRASE"
            )
        try:
            self._unlocked.enter_context(self.key.unlock(passphrase))
        except PGPDecryptionError:
            raise PassphraseError(
                f"MAILBOX_PGP_PASSPHRASE does not unlock {source}: check the passphrase"
            ) from None
        except Exception as exc:  # an S2K or cipher pgpy does not support, say
            raise PassphraseError(f"cannot unlock {source} ({type(exc).__name__})") from None
        self._build_rsa_once()

    def _materials(self) -> list[Any]:
        return [k._key.keymaterial for k in (self.key, *self.key.subkeys.values())]

    def _build_rsa_once(self) -> None:
        """See the module docstring: pgpy looks `__privkey__` up on the instance first."""
        for material in self._materials():
            if isinstance(material, RSAPriv) and "__privkey__" not in vars(material):
                built = material.__privkey__()
                material.__privkey__ = lambda built=built: built

    def close(self) -> None:
        """Forget the unlocked secret material (pgpy zeroes it)."""
        if self.key.is_protected:  # an unprotected key's secrets stay in the object anyway
            for material in self._materials():
                vars(material).pop("__privkey__", None)
        self._unlocked.close()

    # -- using one
    def belongs_to(self, agent: str) -> bool:
        return _belongs_to(self.key, agent)

    @property
    def user_ids(self) -> list[str]:
        return _names(self.key)

    def public_armored(self) -> str:
        return str(self.key.pubkey)

    def public_key(self, owner: str) -> PublicKey:
        return PublicKey.parse(self.public_armored(), owner)

    def spki_pem(self) -> str:
        """The signing key's public part as SPKI PEM (the directory's `public_key`)."""
        # pgpy has no public accessor for the cryptography key object.
        public = self.key._key.keymaterial.__pubkey__()
        pem: bytes = public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        return pem.decode()

    def to_armored(self, passphrase: str | None) -> str:
        """The private key, armored, protected with AES-256/SHA-256 S2K when a passphrase is given.

        Only for a key made by `generate` (an unprotected one)."""
        if passphrase and not self.key.is_protected:
            self.key.protect(passphrase, SymmetricKeyAlgorithm.AES256, HashAlgorithm.SHA256)
        return str(self.key)

    def write(self, path: Path, passphrase: str | None, *, force: bool = False) -> None:
        """Write the key to `path`, mode 0600. KeyFileError if it exists and not `force`."""
        text = self.to_armored(passphrase)
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
            fd = os.open(path, flags, 0o600)
        except FileExistsError:
            raise KeyFileError(
                f"{path} already exists: keep it, or pass --force to replace it (the old key "
                "can then no longer decrypt mail sent to it)"
            ) from None
        except OSError as exc:
            raise KeyFileError(f"cannot write {path}: {exc.strerror}") from None
        with os.fdopen(fd, "w") as handle:
            if hasattr(os, "fchmod"):  # POSIX: an existing file keeps its mode otherwise
                os.fchmod(handle.fileno(), 0o600)
            handle.write(text)


# --- messages -----------------------------------------------------------------------


def encrypt_and_sign(plaintext: str, recipient: PublicKey, signer: PrivateKey) -> str:
    """`plaintext` signed by `signer`, encrypted to `recipient`, ASCII-armored."""
    try:
        message = pgpy.PGPMessage.new(plaintext, compression=CompressionAlgorithm.Uncompressed)
        message |= signer.key.sign(message, hash=HashAlgorithm.SHA256)
        encrypted = recipient.key.encrypt(message, cipher=recipient.cipher)
        return armor(bytes(encrypted))
    except Exception as exc:  # pgpy's errors on an unusual key: say which side
        raise CryptoError(
            f"cannot encrypt to {recipient.owner}'s key {recipient.fingerprint} "
            f"({type(exc).__name__}: {exc})"
        ) from None


@dataclass(frozen=True)
class Verification:
    status: Literal["valid", "none", "invalid"]
    fingerprint: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Decrypted:
    text: str
    signed: bool
    message: Any  # the pgpy message, kept so the signature can be checked again


@contextlib.contextmanager
def _bounded_inflation() -> Iterator[None]:
    _budget.remaining, _budget.exceeded = MAX_PLAINTEXT_BYTES, False
    try:
        yield
    finally:
        _budget.remaining = None


def _unreadable(reason: str) -> DecryptError:
    if _budget.exceeded:
        reason = f"the OpenPGP message inflates to more than {MAX_PLAINTEXT_BYTES} bytes: refused"
    return DecryptError(reason)


def decrypt(armored: str, key: PrivateKey) -> Decrypted:
    """Decrypt an armored message. Raises DecryptError, or NotForUs for another key's mail."""
    try:
        data = unarmor(armored, "MESSAGE")
    except ArmorError as exc:
        raise DecryptError(f"not an armored OpenPGP message ({exc})") from None
    # Parsing inflates too: an unencrypted compressed packet is as much a bomb.
    with _bounded_inflation():
        try:
            message = pgpy.PGPMessage.from_blob(data)
        except Exception:
            raise _unreadable("the OpenPGP message is garbled") from None
        if not message.is_encrypted:
            raise DecryptError("the OpenPGP message is not encrypted")
        recipients = set(message.encrypters)
        if not recipients & key.key_ids:
            raise NotForUs(
                f"encrypted to another key (key id {', '.join(sorted(recipients)) or 'hidden'}), "
                f"not to this agent's key {key.fingerprint}"
            )
        try:
            clear = key.key.decrypt(message)
        except Exception:
            raise _unreadable("the OpenPGP message is corrupted or was tampered with") from None
    body = clear.message
    text = body if isinstance(body, str) else bytes(body).decode("utf-8", errors="replace")
    return Decrypted(text=text, signed=bool(clear.signatures), message=clear)


def verify(decrypted: Decrypted, sender: PublicKey | None) -> Verification:
    """Check the message's signature against the sender's published key. Never raises."""
    if not decrypted.signed:
        return Verification("none")
    if sender is None:
        return Verification("invalid", reason="the sender has no published key to check it with")
    try:
        result = sender.key.verify(decrypted.message)
    except PGPError:  # pgpy: "No signatures to verify" by this key
        signers = ", ".join(sorted({s.signer for s in decrypted.message.signatures}))
        return Verification("invalid", reason=f"signed by key id {signers}, not the sender's key")
    except Exception as exc:
        return Verification("invalid", reason=f"the signature cannot be checked ({exc})")
    if not result:
        return Verification("invalid", reason="the signature does not match the message")
    return Verification("valid", fingerprint=sender.fingerprint)


def decrypt_and_verify(
    armored: str, key: PrivateKey, sender: PublicKey | None
) -> tuple[str, Verification]:
    decrypted = decrypt(armored, key)
    return decrypted.text, verify(decrypted, sender)
