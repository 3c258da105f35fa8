"""OpenPGP keys and messages (`mailbox_mcp.e2e.openpgp`): what works, each bad input refused."""

from __future__ import annotations

import stat
import warnings
from collections.abc import Callable
from pathlib import Path

import pgpy
import pytest
from pgpy.constants import CompressionAlgorithm, SymmetricKeyAlgorithm

from mailbox_mcp.e2e import openpgp
from mailbox_mcp.e2e.armor import armor, unarmor
from mailbox_mcp.e2e.openpgp import (
    BadKeyError,
    DecryptError,
    KeyFileError,
    NotForUs,
    PassphraseError,
    PrivateKey,
    PublicKey,
    WrongKeyOwner,
)
from mailbox_mcp.errors import BridgeError
from tests import abusive_keys

TEXT = "Can you review the Q3 numbers? — ünïcödé ✓\n" * 48  # about 2 KiB


@pytest.fixture(scope="module")
def alice() -> PrivateKey:
    return PrivateKey.generate("alice")


@pytest.fixture(scope="module")
def bob() -> PrivateKey:
    return PrivateKey.generate("bob")


def _unsigned(text: str, to: PublicKey) -> str:
    message = pgpy.PGPMessage.new(text, compression=CompressionAlgorithm.Uncompressed)
    return armor(bytes(to.key.encrypt(message, cipher=SymmetricKeyAlgorithm.AES128)))


# --- keys -------------------------------------------------------------------------------


def test_a_generated_key_is_ed25519_with_a_user_id_naming_its_agent(alice: PrivateKey) -> None:
    assert alice.algorithm == "ed25519"
    assert alice.user_ids == ["alice <alice@agent-mailbox>"]
    assert alice.belongs_to("alice") and not alice.belongs_to("bob")
    assert len(alice.fingerprint) == 40 and alice.fingerprint.isupper()
    assert alice.spki_pem().startswith("-----BEGIN PUBLIC KEY-----\n")
    assert alice.public_key("alice").fingerprint == alice.fingerprint


def test_an_rsa_key_signs_and_encrypts_with_rsa() -> None:
    key = PrivateKey.generate("rosa", rsa_bits=2048)
    assert key.algorithm == "rsa2048"
    assert key.spki_pem().startswith("-----BEGIN PUBLIC KEY-----\n")
    sealed = openpgp.encrypt_and_sign("hi", key.public_key("rosa"), key)
    text, verification = openpgp.decrypt_and_verify(sealed, key, key.public_key("rosa"))
    assert text == "hi" and verification.status == "valid"


def test_a_written_key_is_0600_protected_and_loads_with_its_passphrase(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "private.asc"
    key = PrivateKey.generate("alice")
    key.write(path, "correct horse")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "-----BEGIN PGP PRIVATE KEY BLOCK-----" in path.read_text()
    loaded = PrivateKey.load(path, "correct horse")
    assert loaded.is_protected and loaded.fingerprint == key.fingerprint
    sealed = openpgp.encrypt_and_sign("x", loaded.public_key("alice"), loaded)
    assert openpgp.decrypt_and_verify(sealed, loaded, loaded.public_key("alice"))[0] == "x"


def test_an_unprotected_key_loads_without_a_passphrase(tmp_path: Path) -> None:
    path = tmp_path / "private.asc"
    PrivateKey.generate("alice").write(path, None)
    assert not PrivateKey.load(path, None).is_protected


@pytest.mark.parametrize("passphrase", [None, "", "wrong"])
def test_a_missing_or_wrong_passphrase_is_a_passphrase_error_naming_the_variable(
    tmp_path: Path, passphrase: str | None
) -> None:
    path = tmp_path / "private.asc"
    PrivateKey.generate("alice").write(path, "right")
    with pytest.raises(PassphraseError, match="MAILBOX_PGP_PASSPHRASE"):
        PrivateKey.load(path, passphrase)


def test_a_locked_key_still_shows_its_public_parts(tmp_path: Path) -> None:
    path = tmp_path / "private.asc"
    key = PrivateKey.generate("alice")
    key.write(path, "right")
    locked = PrivateKey.load(path, None, unlock=False)
    assert locked.fingerprint == key.fingerprint and locked.spki_pem() == key.spki_pem()


def test_an_existing_key_file_is_kept_unless_forced(tmp_path: Path) -> None:
    path = tmp_path / "private.asc"
    first = PrivateKey.generate("alice")
    first.write(path, None)
    with pytest.raises(KeyFileError, match="--force"):
        PrivateKey.generate("alice").write(path, None)
    assert PrivateKey.load(path, None).fingerprint == first.fingerprint
    second = PrivateKey.generate("alice")
    path.chmod(0o644)
    second.write(path, None, force=True)
    assert PrivateKey.load(path, None).fingerprint == second.fingerprint
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_missing_key_file_says_to_generate_and_publish(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match=r"keys generate.*keys publish"):
        PrivateKey.load(tmp_path / "nope.asc", None)


@pytest.mark.parametrize(
    "content",
    [
        "",
        "garbage",
        "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nAAECAwQF\n-----END PGP PRIVATE KEY BLOCK-----\n",
        "\udcff",
    ],
    ids=["empty", "text", "armored-garbage", "not-ascii"],
)
def test_a_garbled_key_file_is_a_key_file_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "private.asc"
    path.write_bytes(content.encode("utf-8", errors="surrogateescape"))
    with pytest.raises(KeyFileError):
        PrivateKey.load(path, None)


def test_a_public_key_in_the_private_key_file_is_refused(tmp_path: Path, alice: PrivateKey) -> None:
    path = tmp_path / "private.asc"
    path.write_text(alice.public_armored())
    with pytest.raises(BadKeyError, match="PUBLIC key"):
        PrivateKey.load(path, None)


def test_a_private_key_without_an_encryption_subkey_is_refused() -> None:
    from pgpy.constants import EllipticCurveOID, KeyFlags, PubKeyAlgorithm

    key = pgpy.PGPKey.new(PubKeyAlgorithm.EdDSA, EllipticCurveOID.Ed25519)
    key.add_uid(pgpy.PGPUID.new("solo"), usage={KeyFlags.Sign, KeyFlags.Certify})
    with pytest.raises(BadKeyError, match="encryption"):
        PrivateKey.from_armored(str(key), None)


def test_a_directory_key_that_names_another_agent_is_refused(alice: PrivateKey) -> None:
    with pytest.raises(WrongKeyOwner, match="alice"):
        PublicKey.parse(alice.public_armored(), "mallory")


@pytest.mark.parametrize(
    "armored",
    [
        "",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO",
        "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nAAECAwQF\n-----END PGP PUBLIC KEY BLOCK-----\n",
        "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n%%%%\n-----END PGP PUBLIC KEY BLOCK-----\n",
    ],
    ids=["empty", "ssh-key", "garbage-packets", "not-base64"],
)
def test_malformed_public_keys_are_bad_key_errors(armored: str) -> None:
    with pytest.raises(BadKeyError):
        PublicKey.parse(armored, "alice")


def test_a_truncated_public_key_is_a_bad_key_error(alice: PrivateKey) -> None:
    data = unarmor(alice.public_armored(), "PUBLIC KEY BLOCK")
    with pytest.raises(BadKeyError):
        PublicKey.parse(armor(data[: len(data) // 2], "PUBLIC KEY BLOCK"), "alice")


def test_a_private_key_published_as_public_is_refused(alice: PrivateKey) -> None:
    data = unarmor(str(alice.key), "PRIVATE KEY BLOCK")
    with pytest.raises(BadKeyError, match="private"):
        PublicKey.parse(armor(data, "PUBLIC KEY BLOCK"), "alice")


@pytest.mark.parametrize(
    ("craft", "reason"),
    [
        (abusive_keys.many_user_ids, "more than 8 user ids"),
        (abusive_keys.one_fat_signature, "more than 32 subpackets"),
    ],
    ids=["15000-user-ids", "10000-subpackets"],
)
def test_a_peer_key_shaped_to_cost_cpu_is_refused_before_pgpy_parses_it(
    alice: PrivateKey, craft: Callable[[str], str], reason: str
) -> None:
    with pytest.raises(BadKeyError, match=f"alice's OpenPGP key is refused: .*{reason}"):
        PublicKey.parse(craft(alice.public_armored()), "alice")


def test_the_heaviest_peer_key_within_the_limits_still_parses(alice: PrivateKey) -> None:
    key = PublicKey.parse(abusive_keys.heaviest_allowed(alice.public_armored()), "alice")
    assert key.fingerprint == alice.fingerprint


def test_every_name_in_all_exists() -> None:
    from mailbox_mcp.e2e import armor, keyring, seal

    for module in (openpgp, armor, seal, keyring):
        assert all(hasattr(module, name) for name in module.__all__), module.__name__


def test_every_crypto_error_is_a_bridge_error() -> None:
    for error in (KeyFileError, PassphraseError, BadKeyError, WrongKeyOwner, DecryptError):
        assert issubclass(error, openpgp.CryptoError) and issubclass(error, BridgeError)
    assert openpgp.PeerKeyMissing("bob").code in str(openpgp.PeerKeyMissing("bob"))


# --- messages ---------------------------------------------------------------------------


def test_encrypt_and_sign_then_decrypt_and_verify_gives_the_text_and_a_valid_signature(
    alice: PrivateKey, bob: PrivateKey
) -> None:
    sealed = openpgp.encrypt_and_sign(TEXT, bob.public_key("bob"), alice)
    assert sealed.startswith("-----BEGIN PGP MESSAGE-----\n") and "review the" not in sealed
    text, verification = openpgp.decrypt_and_verify(sealed, bob, alice.public_key("alice"))
    assert text == TEXT
    assert verification.status == "valid" and verification.fingerprint == alice.fingerprint


def test_pgpy_reads_our_armor(alice: PrivateKey, bob: PrivateKey) -> None:
    sealed = openpgp.encrypt_and_sign("hi", bob.public_key("bob"), alice)
    message = pgpy.PGPMessage.from_blob(sealed)  # pgpy's own parser checks the CRC
    assert bob.key.decrypt(message).message == "hi"


def test_an_unsigned_message_verifies_as_none(alice: PrivateKey, bob: PrivateKey) -> None:
    text, verification = openpgp.decrypt_and_verify(
        _unsigned("hi", bob.public_key("bob")), bob, alice.public_key("alice")
    )
    assert text == "hi" and verification.status == "none"


def test_a_signature_by_another_key_than_the_senders_is_invalid(
    alice: PrivateKey, bob: PrivateKey
) -> None:
    mallory = PrivateKey.generate("mallory")
    sealed = openpgp.encrypt_and_sign("from alice, honest", bob.public_key("bob"), mallory)
    _, verification = openpgp.decrypt_and_verify(sealed, bob, alice.public_key("alice"))
    assert verification.status == "invalid" and verification.fingerprint is None


def test_a_signature_over_other_text_is_invalid(alice: PrivateKey, bob: PrivateKey) -> None:
    message = pgpy.PGPMessage.new("pay mallory", compression=CompressionAlgorithm.Uncompressed)
    message |= alice.key.sign(pgpy.PGPMessage.new("pay bob"))
    sealed = armor(bytes(bob.public_key("bob").key.encrypt(message)))
    text, verification = openpgp.decrypt_and_verify(sealed, bob, alice.public_key("alice"))
    assert text == "pay mallory" and verification.status == "invalid"


def test_a_signed_message_from_a_sender_without_a_key_is_invalid(
    alice: PrivateKey, bob: PrivateKey
) -> None:
    sealed = openpgp.encrypt_and_sign("hi", bob.public_key("bob"), alice)
    assert openpgp.decrypt_and_verify(sealed, bob, None)[1].status == "invalid"


@pytest.mark.parametrize("where", [-40, -5, 60])
def test_a_tampered_ciphertext_is_a_decrypt_error(
    alice: PrivateKey, bob: PrivateKey, where: int
) -> None:
    data = bytearray(unarmor(openpgp.encrypt_and_sign(TEXT, bob.public_key("bob"), alice)))
    data[where] ^= 0x01
    with pytest.raises(DecryptError):
        openpgp.decrypt_and_verify(armor(bytes(data)), bob, alice.public_key("alice"))


def test_a_message_for_another_key_is_not_for_us_and_names_both(
    alice: PrivateKey, bob: PrivateKey
) -> None:
    sealed = openpgp.encrypt_and_sign("for alice only", alice.public_key("alice"), bob)
    with pytest.raises(NotForUs) as caught:
        openpgp.decrypt(sealed, bob)
    assert bob.fingerprint in str(caught.value)


@pytest.mark.parametrize(
    "content",
    [
        "",
        "hello, plain text",
        "-----BEGIN PGP MESSAGE-----\n\nAAECAwQF\n-----END PGP MESSAGE-----\n",
        "-----BEGIN PGP MESSAGE-----\n\n%%%\n-----END PGP MESSAGE-----\n",
    ],
    ids=["empty", "plain", "garbage-packets", "not-base64"],
)
def test_anything_but_an_openpgp_message_is_a_decrypt_error(bob: PrivateKey, content: str) -> None:
    with pytest.raises(DecryptError):
        openpgp.decrypt(content, bob)


def test_a_signed_but_unencrypted_message_is_a_decrypt_error(alice: PrivateKey) -> None:
    message = pgpy.PGPMessage.new("hi")
    message |= alice.key.sign(message)
    with pytest.raises(DecryptError, match="not encrypted"):
        openpgp.decrypt(armor(bytes(message)), alice)


@pytest.mark.parametrize("rsa_bits", [None, 2048], ids=["ed25519", "rsa"])
def test_a_closed_key_can_no_longer_decrypt(
    tmp_path: Path, alice: PrivateKey, rsa_bits: int | None
) -> None:
    path = tmp_path / "private.asc"
    PrivateKey.generate("carol", rsa_bits=rsa_bits).write(path, "pw")
    carol = PrivateKey.load(path, "pw")
    sealed = openpgp.encrypt_and_sign("hi", carol.public_key("carol"), alice)
    carol.close()
    with pytest.raises(DecryptError):
        openpgp.decrypt(sealed, carol)
    # nor does a key object built from the secret (the RSA speed-up) outlive it
    assert not any("__privkey__" in vars(m) for m in carol._materials())


def _encrypt(message: pgpy.PGPMessage, to: PrivateKey) -> str:
    with warnings.catch_warnings():  # pgpy: "compression algorithm not in key preferences"
        warnings.simplefilter("ignore", UserWarning)
        return armor(bytes(to.key.pubkey.encrypt(message)))


def _compressed(text: str, algorithm: CompressionAlgorithm, signer: PrivateKey) -> pgpy.PGPMessage:
    message = pgpy.PGPMessage.new(text, compression=algorithm)
    message |= signer.key.sign(message)
    return message


@pytest.mark.parametrize(
    "algorithm",
    [CompressionAlgorithm.ZIP, CompressionAlgorithm.ZLIB, CompressionAlgorithm.BZ2],
    ids=["zip", "zlib", "bzip2"],
)
def test_a_message_that_inflates_past_the_limit_is_refused(
    alice: PrivateKey, bob: PrivateKey, algorithm: CompressionAlgorithm
) -> None:
    bomb = _compressed("0" * (4 * openpgp.MAX_PLAINTEXT_BYTES), algorithm, alice)
    sealed = _encrypt(bomb, bob)
    assert len(sealed) < 64 * 1024  # it fits in one mailbox message
    with pytest.raises(DecryptError, match="inflates"):
        openpgp.decrypt(sealed, bob)


def test_an_unencrypted_compression_bomb_is_refused_while_parsing(alice: PrivateKey) -> None:
    bomb = _compressed("0" * (4 * openpgp.MAX_PLAINTEXT_BYTES), CompressionAlgorithm.ZIP, alice)
    with pytest.raises(DecryptError, match="inflates"):
        openpgp.decrypt(armor(bytes(bomb)), alice)


def test_honestly_compressed_mail_still_reads(alice: PrivateKey, bob: PrivateKey) -> None:
    sealed = _encrypt(_compressed(TEXT * 40, CompressionAlgorithm.ZLIB, alice), bob)
    text, verification = openpgp.decrypt_and_verify(sealed, bob, alice.public_key("alice"))
    assert text == TEXT * 40 and verification.status == "valid"


def test_outside_decrypt_pgpy_inflates_as_it_always_did(alice: PrivateKey) -> None:
    big = _compressed("0" * (2 * openpgp.MAX_PLAINTEXT_BYTES), CompressionAlgorithm.ZIP, alice)
    assert len(pgpy.PGPMessage.from_blob(bytes(big)).message) == 2 * openpgp.MAX_PLAINTEXT_BYTES
